/**
 * The viewer at (reduced) scale through `app.request()`: a run with 3,000 foreach tasks and a
 * datastore with 600 runs. The full-size figures (5,000 runs, 10,000 tasks) are in bench/viewer.ts.
 */
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { writeBigDatastore } from "../../bench/viewer.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { tempStore } from "../_helpers.ts";

let app: ReturnType<typeof createViewerApp>;
let big: { flow: string; bigRun: string };

beforeAll(async () => {
  const root = join(tempStore(), "store");
  big = await writeBigDatastore(root, 600, 3000);
  app = createViewerApp({ store: fsDatastore({ root }), host: nodeHost() });
});

describe("viewer at scale", () => {
  it("renders a 3,000-task run with a compact timeline and paginated task list", async () => {
    const t0 = performance.now();
    const res = await app.request(`/runs/${big.flow}/${big.bigRun}`);
    const html = await res.text();
    const ms = performance.now() - t0;
    expect(res.status).toBe(200);
    expect(html).toContain("3000/3000 tasks");
    expect(html.match(/<rect [^>]*data-href/g)!.length).toBeLessThanOrEqual(3003);
    expect(html.length).toBeLessThan(800_000);
    expect(html.match(/<tr><td><a href="\/runs\/BigFlow/g)!.length).toBe(200);
    expect(html).toContain("tasks 1–200 of 3003");
    expect(ms).toBeLessThan(3000); // loose: CI machines are noisy; the bench holds the real target
  });

  it("paginates and filters 600 runs", async () => {
    const first = await (await app.request("/runs")).text();
    expect(first).toContain("page 1 of 13 (601 runs)");
    const failed = await (await app.request("/runs?status=failed&tag=nightly")).text();
    // Runs i with i % 7 === 0 failed and i % 3 === 0 are tagged nightly: i % 21 === 0, i < 600.
    expect(failed).toContain("(29 runs)");
    expect((await app.request("/runs?page=13")).status).toBe(200);
  });
});
