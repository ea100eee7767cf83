/**
 * One damaged run.json (issue 19.13) is shown as damaged and skipped by `runs`, `dump`, `gc` and
 * the viewer's run lists; the other runs stay readable; `delete` removes the damaged run.
 */
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { cli, cliRun, STACK_LINE, tempStore } from "../_helpers.ts";

const ds = tempStore();
let good = "";
let bad = "";

beforeAll(async () => {
  for (let i = 0; i < 2; i++) expect((await cliRun("examples/pets.ts", ds)).code).toBe(0);
  [bad, good] = readdirSync(join(ds, "flows", "PetsFlow", "runs")).sort() as [string, string];
  writeFileSync(join(ds, "flows", "PetsFlow", "runs", bad, "run.json"), '{"flow": "PetsFlow", "sta');
  // It ended a while ago: with its status unreadable, only the heartbeat's age says it is not live.
  writeFileSync(join(ds, "flows", "PetsFlow", "runs", bad, "heartbeat"), String(Date.now() - 120_000));
});

describe("a damaged run.json", () => {
  it("runs lists the other runs and names the damaged one", async () => {
    for (const args of [["runs"], ["runs", "PetsFlow"], ["runs", "--all"]]) {
      const r = await cli([...args, "--datastore", ds]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`PetsFlow/${good}`);
      expect(`${r.stdout}${r.stderr}`).toMatch(new RegExp(`PetsFlow/${bad}.*damaged`));
      expect(r.stderr).not.toMatch(STACK_LINE);
    }
  });

  it("dump reads the good run and says which file is damaged for the other", async () => {
    const ok = await cli(["dump", `PetsFlow/${good}/end`, "--datastore", ds]);
    expect(ok.code, ok.stderr).toBe(0);
    const r = await cli(["dump", `PetsFlow/${bad}/end`, "--datastore", ds]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`runs/${bad}/run.json' in datastore .* is damaged`));
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it("the viewer's run lists answer 200, show the good run and name the damaged one", async () => {
    const app = createViewerApp({ store: fsDatastore({ root: ds }), host: nodeHost() });
    for (const path of ["/", "/runs", "/runs?flow=PetsFlow", "/runs?status=succeeded"]) {
      const res = await app.request(`http://127.0.0.1:8324${path}`);
      expect(res.status, path).toBe(200);
      const html = await res.text();
      expect(html, path).toContain(good);
      expect(html, path).toMatch(/damaged/);
    }
    const page = await app.request(`http://127.0.0.1:8324/runs/PetsFlow/${bad}`);
    expect(page.status).toBe(422);
    expect(await page.text()).toMatch(new RegExp(`runs/${bad}/run.json' in datastore .* is damaged`));
  });

  it("gc carries on, and delete removes the damaged run", async () => {
    const gc = await cli(["gc", "--datastore", ds]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stderr).toContain(`PetsFlow/${bad}: run.json is damaged`);
    const del = await cli(["delete", `PetsFlow/${bad}`, "--datastore", ds]);
    expect(del.code, del.stderr).toBe(0);
    expect(existsSync(join(ds, "flows", "PetsFlow", "runs", bad))).toBe(false);
    const runs = await cli(["runs", "--datastore", ds]);
    expect(runs.stdout).toContain(good);
    expect(`${runs.stdout}${runs.stderr}`).not.toContain("damaged");
  });
});
