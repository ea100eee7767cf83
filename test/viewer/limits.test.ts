/**
 * What one request may make the viewer load (issue #18 item 6; #19 items 4, 9, 14, 17): shared
 * sub-objects, gzip bombs, sizes that lie, huge records, million-task runs — each answered with
 * a bounded page or a clear message. Through `app.request()` on a real fs datastore.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { mapLimit, putJson } from "../../core/_datastore.ts";
import { blobKey, doneKey, runKey, taskKey } from "../../core/_layout.ts";
import { storeArtifact } from "../../core/artifacts.ts";
import { deserialize, serialize } from "../../core/serialize.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { tempStore } from "../_helpers.ts";
import { F, R, spy, writeRun } from "./_run.ts";

const host = nodeHost();
let root: string;
let app: ReturnType<typeof createViewerApp>;
const big = "x".repeat(300_000) + "y".repeat(300_000);

/** `{ l: a, r: a }` 40 times: a few hundred bytes stored, 2^40 paths when walked as a tree. */
function sharedBomb(levels = 40): unknown {
  let a: Record<string, unknown> = { v: 1 };
  for (let i = 0; i < levels; i++) a = { l: a, r: a };
  return a;
}

beforeAll(async () => {
  root = join(tempStore(), "store");
  const store = fsDatastore({ root });
  // A gzip bomb: 300 MB of zeros in ~300 KB, under a reference that claims 100 bytes.
  const bomb = gzipSync(Buffer.alloc(300 << 20));
  const bombHash = createHash("sha256").update(bomb).digest("hex");
  await store.put(blobKey(bombHash), bomb);
  // A blob of 3 MB under a reference that claims 10 bytes.
  const liar = serialize(new Uint8Array(3 << 20).fill(7), "liar");
  const liarHash = createHash("sha256").update(Buffer.concat(liar.chunks)).digest("hex");
  await store.put(blobKey(liarHash), liar.chunks);
  // A compressed artifact, as the s3 datastore stores it.
  const zipped = await storeArtifact({ ...store, compress: true }, host, "zipped", big);
  expect(zipped.gzipped).toBeGreaterThan(0);
  await writeRun(store, { shared: sharedBomb(), rows: [{ id: 1, tree: sharedBomb() }], holes: new Array(5e6), "a b": "spaced", "x/../y": "dotted" }, {
    refs: { gzbomb: { hash: bombHash, size: 100, type: "string", gzipped: bomb.length }, liar: { hash: liarHash, size: 10, type: "Uint8Array" }, zipped },
  });
  app = createViewerApp({ store, host, limits: { runTasks: 50 } });
});

const TASK = `/runs/${F}/${R}/end/2`;
const art = (name: string, format = "raw") => `/artifacts/${F}/${R}/end/2/${encodeURIComponent(name)}?format=${format}`;

describe("viewer limits", () => {
  it("shows shared sub-objects once: the task page and JSON of a 2^40-path value are small", async () => {
    const page = await app.request(TASK);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html.length).toBeLessThan(2_000_000);
    expect(html).toContain("[same as value.l]");
    const json = await app.request(art("shared", "json"));
    expect(json.status).toBe(200);
    const text = await json.text();
    expect(text.length).toBeLessThan(20_000);
    expect(text).toContain("[shared: same as $.l]");
    const holes = await app.request(art("holes", "json"));
    expect(holes.status).toBe(413);
    expect(await holes.text()).toMatch(/too large to show as JSON \(more than 2,000,000 values\)/);
  });

  it("never inflates a gzip bomb and checks a blob's real size, not the one its reference claims", async () => {
    const before = process.memoryUsage().arrayBuffers;
    const html = await (await app.request(TASK)).text();
    const card = (name: string) => html.slice(html.indexOf(`id="artifact-${name}"`), html.indexOf(`id="artifact-${name}"`) + 600);
    expect(card("gzbomb")).toMatch(/does not decompress to its 100 bytes/);
    expect(card("liar")).toMatch(/too large to preview \(artifact &#39;liar&#39;.* is too large to load here \(3145\d+ bytes, limit 524288\)/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(100 << 20);
  });

  it("downloads a gzipped artifact as its serialized bytes, not gzip bytes under the wrong length", async () => {
    const res = await app.request(art("zipped"));
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(deserialize(bytes)).toBe(big);
    const length = res.headers.get("content-length");
    if (length !== null) expect(Number(length)).toBe(bytes.length);
  });

  it("answers artifact names that are not identifiers, and 404 for Object.prototype names", async () => {
    expect(await (await app.request(art("a b", "json"))).json()).toBe("spaced");
    expect(await (await app.request(art("x/../y", "json"))).json()).toBe("dotted");
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const res = await app.request(art(name));
      expect(res.status, name).toBe(404);
    }
    const dl = await app.request(art("a b"));
    expect(dl.headers.get("content-disposition")).toMatch(/^attachment; filename="a_b\.tsf"; filename\*=UTF-8''a%20b\.tsf$/);
  });

  it("refuses a planted huge record with a clear message", async () => {
    const store = fsDatastore({ root });
    await putJson(store, runKey(F, "1790000000001-huge"), { flow: F, runId: "1790000000001-huge", status: "succeeded", createdAt: 1, tags: Array.from({ length: 2_000_000 }, (_, i) => `tag-${i}`) });
    const res = await app.request(`/runs/${F}/1790000000001-huge`);
    expect(res.status).toBe(413);
    expect(await res.text()).toMatch(/run\.json' .* is too large to load here \(\d+ bytes, limit 16777216\)/);
    // The lists skip it and still answer.
    expect((await app.request("/runs")).status).toBe(200);
    expect((await app.request("/")).status).toBe(200);
  });

  it("shows a run with more tasks than one page may read from its listing", async () => {
    const store = fsDatastore({ root });
    const run = "1790000000002-wide";
    await putJson(store, runKey(F, run), { flow: F, runId: run, status: "succeeded", createdAt: 1_790_000_000_000, graph: { order: ["start", "work"], steps: { start: { type: "foreach", foreach: "xs", next: ["work"] }, work: { type: "end", next: [] } } } });
    await mapLimit(
      Array.from({ length: 120 }, (_, i) => i + 1),
      16,
      async (i) => {
        const step = i === 1 ? "start" : "work";
        await putJson(store, taskKey(F, run, step, String(i)), { step, taskId: String(i), parents: [], foreach: [], createdAt: 1 });
        await putJson(store, doneKey(F, run, step, String(i)), { ok: true, attempt: 0, artifacts: {}, next: [], startedAt: 1_790_000_000_000 + i, finishedAt: 1_790_000_000_010 + i });
      },
    );
    const html = await (await app.request(`/runs/${F}/${run}`)).text();
    expect(html).toContain("This run has 120 tasks, more than the 50");
    expect(html).toContain("119 tasks");
    expect(html).not.toContain('class="gantt"');
    expect(html.match(/<tr><td><a href="\/runs\/SecFlow/g)!.length).toBe(120);
    // Visitors of one finished run share its listing (a million-task listing costs seconds).
    const seen: string[] = [];
    const shared = createViewerApp({ store: spy(fsDatastore({ root }), seen), host, limits: { runTasks: 50 } });
    await Promise.all([1, 2, 3].map(() => shared.request(`/runs/${F}/${run}`)));
    await shared.request(`/runs/${F}/${run}?tp=1`);
    expect(seen.filter((k) => k.endsWith("/tasks/work/")).length).toBe(1);
    const second = await (await app.request(`/runs/${F}/${run}?step=work&tp=1`)).text();
    expect(second.match(/<tr><td><a href="\/runs\/SecFlow/g)!.length).toBe(119);
  });
});

describe("records that are JSON bombs", () => {
  it("shows a run whose parameters nest 200,000 levels deep", async () => {
    const store = fsDatastore({ root: join(tempStore(), "store") });
    const text = `{"flow":"${F}","runId":"1790000000003-deep","status":"succeeded","createdAt":1,"parameterValues":{"p":${"[".repeat(200_000)}${"]".repeat(200_000)}}}`;
    await writeRun(store, { x: 1 }, { run: "1790000000003-deep" });
    await store.put(runKey(F, "1790000000003-deep"), new TextEncoder().encode(text));
    const app2 = createViewerApp({ store, host });
    for (const path of [`/runs/${F}/1790000000003-deep`, "/runs", "/"]) {
      const res = await app2.request(path);
      expect(res.status, path).toBe(200);
      expect(await res.text(), path).toContain("[[[[");
    }
  });
});
