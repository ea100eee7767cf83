/**
 * Gzipped artifacts on a real S3-compatible store (issue #19 item 14): the s3 datastore
 * compresses compressible artifacts; the viewer's raw download and `--export` give their
 * serialized bytes (what `deserialize` reads), not gzip bytes under the serialized length;
 * a record too big to display is refused from the response's Content-Length, before its body.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, putJson } from "../../core/_datastore.ts";
import { doneKey, runKey } from "../../core/_layout.ts";
import { deserialize } from "../../core/serialize.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { exportRun } from "../../viewer/export.ts";
import { type RunningS3rver, S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";
import { F, R, writeRun } from "./_run.ts";

let server: RunningS3rver;
const text = "artifact text ".repeat(30_000);
const store = () => s3Datastore({ url: "s3://tsflow/viewer", endpoint: server.endpoint, credentials: S3RVER_CREDENTIALS, maxAttempts: 2 });

beforeAll(async () => {
  server = await startS3rver({ buckets: ["tsflow"] });
  await writeRun(store(), { text });
});
afterAll(() => server?.close());

describe("gzipped artifacts on s3", () => {
  it("downloads and exports the serialized value, not gzip bytes", async () => {
    const s = store();
    const done = await getJson<{ artifacts: Record<string, { gzipped?: number }> }>(s, doneKey(F, R, "end", "2"));
    expect(done!.artifacts.text!.gzipped).toBeGreaterThan(0); // stored compressed
    const app = createViewerApp({ store: s, host: nodeHost() });
    const html = await (await app.request(`/runs/${F}/${R}/end/2`)).text();
    expect(html).toContain("artifact text");
    const res = await app.request(`/artifacts/${F}/${R}/end/2/text?format=raw`);
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes[0]).not.toBe(0x1f); // not a gzip stream
    expect(deserialize(bytes)).toBe(text);
    const length = res.headers.get("content-length");
    if (length !== null) expect(Number(length)).toBe(bytes.length);

    const files = new Map<string, Uint8Array>();
    await exportRun(s, nodeHost(), F, R, async (path, data) => {
      const chunks: Uint8Array[] = [];
      if (data instanceof Uint8Array) chunks.push(data);
      else for await (const c of data) chunks.push(c);
      files.set(path, Buffer.concat(chunks));
    });
    const raw = [...files].find(([p]) => p.endsWith(".tsf"));
    expect(raw).toBeDefined();
    expect(deserialize(raw![1])).toBe(text);
  });

  it("refuses a 20 MB run.json from its Content-Length", async () => {
    const s = store();
    await putJson(s, runKey(F, "1790000000001-huge"), { flow: F, runId: "1790000000001-huge", status: "succeeded", createdAt: 1, tags: Array.from({ length: 2_000_000 }, (_, i) => `tag${i}`) });
    const app = createViewerApp({ store: s, host: nodeHost() });
    const res = await app.request(`/runs/${F}/1790000000001-huge`);
    expect(res.status).toBe(413);
    expect(await res.text()).toMatch(/run\.json' in datastore s3:\/\/tsflow\/viewer is too large to load here \(\d+ bytes, limit 16777216\)/);
  });
});
