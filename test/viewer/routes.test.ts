/**
 * The viewer's routes through `app.request()`: traversal attempts never reach a key outside
 * the datastore, user content is escaped, only GET/HEAD answer, previews respect sizes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { checkKey, putJson } from "../../core/_datastore.ts";
import { attemptKey, doneKey, runKey, taskKey } from "../../core/_layout.ts";
import { storeArtifact } from "../../core/artifacts.ts";
import type { Datastore } from "../../core/types.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { tempStore } from "../_helpers.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { exportRun } from "../../viewer/export.ts";

const SECRET = "TOP-SECRET-OUTSIDE-THE-DATASTORE";
const XSS = "<script>alert(1)</script>";
const F = "XFlow";
const R = "1790000000000-abcd";

/** A datastore that records every key it is asked for. */
function spy(inner: Datastore, seen: string[]): Datastore {
  const wrap = <K extends keyof Datastore>(name: K) => {
    const fn = inner[name] as unknown as ((key: string, ...rest: unknown[]) => unknown) | undefined;
    if (!fn) return undefined;
    return (key: string, ...rest: unknown[]) => {
      seen.push(key);
      return fn.call(inner, key, ...rest);
    };
  };
  return { ...inner, name: inner.name, url: inner.url, get: wrap("get")!, getSync: wrap("getSync"), list: wrap("list")!, listAll: wrap("listAll"), size: wrap("size"), getStream: wrap("getStream"), has: wrap("has")! } as Datastore;
}

let root: string;
let app: ReturnType<typeof createViewerApp>;
const seen: string[] = [];

beforeAll(async () => {
  const base = tempStore();
  root = join(base, "store");
  // Things a traversal would love to reach: siblings and parents of the datastore root.
  writeFileSync(join(base, "secret.txt"), SECRET);
  mkdirSync(join(base, "flows", "x", "runs", "y"), { recursive: true });
  writeFileSync(join(base, "flows", "x", "runs", "y", "run.json"), JSON.stringify({ status: SECRET }));
  const host = nodeHost();
  const store = fsDatastore({ root });
  const small = await storeArtifact(store, host, "pets", [{ name: "Rex", kind: XSS }]);
  const big = await storeArtifact(store, host, "big", new Uint8Array(3 << 20));
  const png = await storeArtifact(store, host, "image", Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]));
  await putJson(store, runKey(F, R), {
    flow: F, runId: R, status: "succeeded", createdAt: 1_790_000_000_000, finishedAt: 1_790_000_001_000,
    tags: [`<b>${XSS}</b>`], systemTags: [], parameterValues: { note: XSS },
    graph: { order: ["start", "end"], steps: { start: { type: "linear", next: ["end"] }, end: { type: "end", next: [] } } },
  });
  for (const [step, id] of [["start", "1"], ["end", "2"]] as const) {
    await putJson(store, taskKey(F, R, step, id), { step, taskId: id, parents: [], foreach: [], createdAt: 1_790_000_000_100 });
    await putJson(store, attemptKey(F, R, step, id, 0, "start.json"), { attempt: 0, mode: "run", startedAt: 1_790_000_000_100, executor: "process" });
    await store.put(attemptKey(F, R, step, id, 0, "stdout"), new TextEncoder().encode(`${XSS}\n`));
    await putJson(store, doneKey(F, R, step, id), { ok: true, attempt: 0, artifacts: { pets: small, big, image: png }, next: [], startedAt: 1_790_000_000_100, finishedAt: 1_790_000_000_500 });
  }
  app = createViewerApp({ store: spy(store, seen), host });
});

describe("viewer routes", () => {
  it("serves every page with a Content-Security-Policy and escapes user content", async () => {
    for (const path of ["/", "/runs", `/runs/${F}/${R}`, `/runs/${F}/${R}/start/1`]) {
      const res = await app.request(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
      const html = await res.text();
      expect(html, path).not.toContain(XSS);
      expect(html, path).not.toContain("<b><script>");
    }
    const task = await (await app.request(`/runs/${F}/${R}/start/1`)).text();
    expect(task).toContain("&#60;script&#62;alert(1)&#60;/script&#62;");
    expect(task).toContain("too large to preview");
  });

  it("answers only the expected Host headers when told (DNS rebinding)", async () => {
    const strict = createViewerApp({ store: fsDatastore({ root }), host: nodeHost(), allowedHosts: ["127.0.0.1:8324"] });
    expect((await strict.request("/runs", { headers: { host: "127.0.0.1:8324" } })).status).toBe(200);
    expect((await strict.request("/runs", { headers: { host: "evil.example:8324" } })).status).toBe(403);
  });

  it("answers only GET and HEAD", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) expect((await app.request(`/runs/${F}/${R}`, { method })).status).toBe(405);
    expect((await app.request(`/runs/${F}/${R}`, { method: "HEAD" })).status).toBe(200);
  });

  it("refuses traversal in every path parameter and query and reads nothing outside the datastore", async () => {
    seen.length = 0;
    const attempts = [
      "/runs/..%2F..%2Fsecret.txt/x",
      "/runs/../../secret.txt",
      `/runs/${F}/..%2F..%2F..%2Fsecret.txt`,
      `/runs/${F}/${R}/..%2F..%2F/1`,
      `/runs/${F}/${R}/start/..%2F..%2F..%2F..%2F..%2Fsecret.txt`,
      `/runs/${F}/${R}/start/%2Fetc%2Fpasswd`,
      "/runs/%2Fetc%2Fpasswd/x",
      "/runs/%5C..%5C..%5Csecret.txt/x",
      `/runs/${F}/${R}?step=../../secret`,
      `/runs/${F}/${R}/start/1?attempt=../0`,
      "/runs?flow=../x",
      "/runs?flow=%2Fetc",
      `/artifacts/${F}/${R}/start/1/..%2F..%2Fsecret`,
      `/artifacts/${F}/${R}/start/1/pets?attempt=-1`,
      "/api/live/..%2Fx/y",
      "//etc/passwd",
      "/flows/x/runs/y/run.json",
      "/assets/..%2F..%2Fpackage.json",
    ];
    for (const path of attempts) {
      const res = await app.request(path);
      expect([400, 404], path).toContain(res.status);
      expect(await res.text(), path).not.toContain(SECRET);
    }
    // Dot segments, even encoded, are resolved by the URL parser before routing: this is `/`.
    const dots = await app.request("/runs/%2e%2e/%2e%2e/%2e%2e/secret.txt");
    expect(dots.status).toBe(404);
    expect(await (await app.request("/runs/%2e%2e/%2e%2e")).text()).toContain("<h1>Flows</h1>");
    for (const key of seen) expect(() => checkKey(key === "" ? "x" : key), key).not.toThrow();
  });

  it("streams raw artifacts and serves images and JSON exports", async () => {
    const raw = await app.request(`/artifacts/${F}/${R}/start/1/big?format=raw`);
    expect(raw.status).toBe(200);
    expect(Number(raw.headers.get("content-length"))).toBeGreaterThan(3 << 20);
    expect((await raw.arrayBuffer()).byteLength).toBeGreaterThan(3 << 20);
    const img = await app.request(`/artifacts/${F}/${R}/start/1/image?format=image`);
    expect(img.headers.get("content-type")).toBe("image/png");
    const json = await app.request(`/artifacts/${F}/${R}/start/1/pets?format=json`);
    expect(await json.json()).toEqual([{ name: "Rex", kind: XSS }]);
    expect((await app.request(`/artifacts/${F}/${R}/start/1/nope?format=raw`)).status).toBe(404);
  });

  it("filters and paginates runs", async () => {
    expect(await (await app.request("/runs?status=failed")).text()).toContain("No runs");
    expect(await (await app.request(`/runs?status=succeeded&flow=${F}`)).text()).toContain(R);
    expect((await app.request("/runs?status=bogus")).status).toBe(400);
  });

  it("exports a run as static files with relative links", async () => {
    const files = new Map<string, Uint8Array>();
    await exportRun(fsDatastore({ root }), nodeHost(), F, R, async (path, data) => {
      const chunks: Uint8Array[] = [];
      if (data instanceof Uint8Array) chunks.push(data);
      else for await (const c of data) chunks.push(c);
      files.set(path, Buffer.concat(chunks));
    });
    expect([...files.keys()]).toEqual(expect.arrayContaining(["index.html", "task-start-1.html", "task-end-2.html", "assets/app.css", "assets/app.js", "data/run.json"]));
    const index = Buffer.from(files.get("index.html")!).toString();
    expect(index).toContain('href="task-start-1.html"');
    expect(index).not.toContain('href="/');
    await expect(exportRun(fsDatastore({ root }), nodeHost(), "..", R, async () => {})).rejects.toThrow(/invalid/);
  });
});
