/**
 * Tiny artifact values kept inline in their references (#17.0): a task of a number or a short
 * string writes no blob, on a local disk or on S3; the reference keeps its content address, so
 * joins, resume and gc behave as before; every reader (client, dump, viewer, export) reads the
 * value from the reference and checks it against the hash; old references (blobs) read as before.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { getJson, putJson } from "../../core/_datastore.ts";
import { blobKey, doneKey } from "../../core/_layout.ts";
import { INLINE_MAX, inlineBytes, loadArtifact, loadArtifactSync, refOf, storeArtifact } from "../../core/artifacts.ts";
import { createClient } from "../../core/client.ts";
import { serialize } from "../../core/serialize.ts";
import type { ArtifactRef, Datastore } from "../../core/types.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import memoryDatastore from "../../plugins/datastores/memory.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { exportRun } from "../../viewer/export.ts";
import { blobFiles, cli, fixture, STACK_LINE, tempStore } from "../_helpers.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";
import { walk } from "../reliability/_util.ts";

const host = nodeHost();
const FLOW = "InlineValuesFlow";
const FILE = fixture("inline-values.ts");
const runIdOf = (out: string) => /InlineValuesFlow\/(\d{13}-[a-z0-9]{4})/.exec(out)?.[1];

/** The serialized bytes of a value, joined. */
function bytesOf(value: unknown): Uint8Array {
  const { chunks, size } = serialize(value, "v");
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Every reference in a run's records (done.json of each task, run.json's parameters), by task. */
function refsOfRun(ds: string, runId: string): Map<string, Record<string, ArtifactRef>> {
  const out = new Map<string, Record<string, ArtifactRef>>();
  const dir = join(ds, "flows", FLOW, "runs", runId);
  for (const f of walk(dir)) {
    if (f.endsWith("/done.json")) out.set(f.slice(dir.length + 1), JSON.parse(readFileSync(f, "utf8")).artifacts);
    if (f.endsWith("/run.json")) out.set("run.json", JSON.parse(readFileSync(f, "utf8")).parameters);
  }
  return out;
}

/** Calls `change` on every artifact reference in the JSON records under `dir`, then writes them back. */
async function rewriteRefs(dir: string, change: (ref: ArtifactRef) => void) {
  const visit = (x: unknown): void => {
    if (Array.isArray(x)) x.forEach(visit);
    else if (x && typeof x === "object") {
      if (typeof (x as ArtifactRef).hash === "string" && typeof (x as ArtifactRef).type === "string") change(x as ArtifactRef);
      else Object.values(x).forEach(visit);
    }
  };
  for (const f of walk(dir).filter((x) => x.endsWith(".json"))) {
    const doc = JSON.parse(readFileSync(f, "utf8"));
    visit(doc);
    writeFileSync(f, JSON.stringify(doc));
  }
}

/** Each task's values through the client (which verifies every read). */
async function valuesOf(store: Datastore, runId: string) {
  const client = createClient(store, host);
  client.namespace(null);
  const run = await client.Flow.get(FLOW).run(runId);
  const out: Record<string, unknown> = {};
  for (const step of await run.steps()) for (const t of await step.tasks()) for (const a of await t.artifacts()) out[`${step.name}/${t.id}.${a.name}`] = await a.value();
  return out;
}

function expectValues(values: Record<string, unknown>) {
  const at = (step: string, name: string) => Object.entries(values).find(([k]) => k.startsWith(`${step}/`) && k.endsWith(`.${name}`))?.[1];
  expect(at("start", "small")).toBe(41);
  expect(at("start", "label")).toBe("hi");
  expect(at("start", "text")).toBe('é 😀 "quoted" \\ \n\u2028 end');
  const meta = at("join", "meta") as Record<string, unknown>;
  expect(Object.is(meta.zero, -0) && Number.isNaN(meta.nan)).toBe(true);
  expect(meta).toMatchObject({ loss: 0.25, when: new Date(5), tags: new Set(["a"]), n: 10n });
  expect(at("join", "big")).toBe("b".repeat(1000));
  expect(at("join", "bytes")).toEqual(new Uint8Array([1, 2, 3]));
  expect(at("join", "total")).toBe(14);
  expect(Object.entries(values).filter(([k]) => k.startsWith("square/") && k.endsWith(".y")).map(([, v]) => v).sort()).toEqual([1, 4, 9]);
}

describe("tiny artifacts inline in their references", () => {
  it("fs: a task of tiny values writes no blob, a big or binary value still does; the content address is unchanged and every value reads back", async () => {
    const ds = tempStore();
    const r = await cli(["run", FILE, "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    const runId = runIdOf(r.stdout)!;
    const refs = refsOfRun(ds, runId);
    const start = [...refs].find(([k]) => k.startsWith("tasks/start/"))![1];
    // The value's JSON text, readable in done.json; the hash is the one a blob would have had.
    expect(start.small).toEqual({ hash: refOf(host, "small", 41).ref.hash, size: bytesOf(41).byteLength, type: "number", inline: "41" });
    expect(start.text!.inline).toBe(JSON.stringify('é 😀 "quoted" \\ \n\u2028 end'));
    expect(start.meta!.inline).toBeDefined();
    expect(start.big!.inline).toBeUndefined();
    expect(start.bytes!.inline).toBeUndefined(); // binary: a blob whatever its size
    // The only blobs are those of `big` and `bytes`: no foreach item wrote one.
    const blobs = new Set([...refs.values()].flatMap((a) => Object.values(a ?? {})).filter((x) => x.inline === undefined).map((x) => x.hash));
    expect(blobs).toEqual(new Set([start.big!.hash, start.bytes!.hash]));
    expect(new Set(blobFiles(ds).map((b) => b.path.slice(b.path.lastIndexOf("/") + 1)))).toEqual(blobs);
    // A square task: a directory with its records only.
    const square = [...refs].find(([k]) => k.startsWith("tasks/square/"))![1];
    expect(square.y!.inline).toMatch(/^[149]$/);
    expect(square.small).toEqual(start.small); // passed on by reference
    expect(r.stdout).toContain('end read hi 41 14 1000 3 "é 😀 \\"quoted\\" \\\\ \\n\u2028 end" 10');
    expectValues(await valuesOf(fsDatastore({ root: ds }), runId));
    // dump shows them like any artifact.
    const dump = await cli(["dump", `${FLOW}/${runId}/start`, "--datastore", ds]);
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stdout).toMatch(/small .*41/);
  });

  it("s3rver: no blob object for a tiny value; the run index carries them", async () => {
    const s3 = await startS3rver({ buckets: ["inline"] });
    try {
      const env = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: "us-east-1", TSFLOW_S3_ENDPOINT: s3.endpoint };
      const r = await cli(["run", FILE, "--datastore", "s3://inline/ds"], { env, timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('end read hi 41 14 1000 3 "é 😀 \\"quoted\\" \\\\ \\n\u2028 end" 10');
      const runId = runIdOf(r.stdout)!;
      const store = s3Datastore({ url: "s3://inline/ds", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
      const done = (await getJson<{ artifacts: Record<string, ArtifactRef> }>(store, doneKey(FLOW, runId, "start", "1")))!;
      expect(done.artifacts.small!.inline).toBe("41");
      const blobs = (await store.listAll!("blobs/")).map((k) => k.slice(k.lastIndexOf("/") + 1));
      expect(new Set(blobs)).toEqual(new Set([done.artifacts.big!.hash, done.artifacts.bytes!.hash]));
      // Read back through the client: from the run index (one part per step) on S3.
      expectValues(await valuesOf(store, runId));
      await store.close?.();
    } finally {
      await s3.close();
    }
  });

  it("a corrupted inline value is an error naming the artifact: client, dump and a resumed task that reads it", async () => {
    const ds = tempStore();
    const first = await cli(["run", FILE, "--datastore", ds], { env: { TSFLOW_TEST_FAIL_END: "1" } });
    expect(first.code).toBe(1);
    const runId = runIdOf(first.stdout + first.stderr)!;
    // `end` reads `small` from the join's record: change its value, keep its hash (in every
    // record of the run: done.json and the run index's copy, which the client reads).
    const joinTask = walk(join(ds, "flows", FLOW, "runs", runId, "tasks", "join")).find((f) => f.endsWith("done.json"))!.split("/").at(-2);
    let changed = 0;
    await rewriteRefs(join(ds, "flows", FLOW, "runs", runId), (ref) => {
      if (ref.inline !== "41") return;
      ref.inline = "42";
      changed++;
    });
    expect(changed).toBeGreaterThan(2);

    const client = createClient(fsDatastore({ root: ds }), host);
    client.namespace(null);
    const [task] = await (await client.Flow.get(FLOW).run(runId)).step("join").tasks();
    await expect(task!.data("small")).rejects.toThrow(
      new RegExp(`artifact 'small' of ${FLOW}/${runId}/join/${joinTask} is corrupt: its inline value \\(in its task's record\\) does not match its hash [0-9a-f]{12}`),
    );
    expect(await task!.data("total")).toBe(14);

    const dump = await cli(["dump", `${FLOW}/${runId}/join/${joinTask}`, "--datastore", ds]);
    expect(dump.code).not.toBe(0);
    expect(dump.stderr).toMatch(/artifact 'small' .* is corrupt: its inline value/);
    expect(dump.stderr).not.toMatch(STACK_LINE);

    const resumed = await cli(["resume", FILE, "--origin-run-id", runId, "--datastore", ds], { env: { TSFLOW_TEST_FAIL_END: "" } });
    expect(resumed.code).toBe(1);
    expect(resumed.stderr).toMatch(/CorruptArtifact: artifact 'small' of \S+ is corrupt: its inline value/);
  });

  it("resume clones tasks with inline references as they are; a run stored before inline values (blobs) reads and resumes unchanged", async () => {
    const ds = tempStore();
    const first = await cli(["run", FILE, "--datastore", ds], { env: { TSFLOW_TEST_FAIL_END: "1" } });
    expect(first.code).toBe(1);
    const runId = runIdOf(first.stdout + first.stderr)!;
    const blobsBefore = blobFiles(ds).length;
    const resumed = await cli(["resume", FILE, "--origin-run-id", runId, "--datastore", ds], { env: { TSFLOW_TEST_FAIL_END: "" } });
    expect(resumed.code, resumed.stderr).toBe(0);
    const again = runIdOf(resumed.stdout)!;
    expect(resumed.stdout).toContain("end read hi 41 14 1000 3");
    expect(blobFiles(ds).length).toBe(blobsBefore);
    // Cloned records hold the origin's references, inline values included.
    const origin = refsOfRun(ds, runId);
    const clone = refsOfRun(ds, again);
    const startOf = (m: Map<string, Record<string, ArtifactRef>>) => [...m].find(([k]) => k.startsWith("tasks/start/"))![1];
    expect(startOf(clone)).toEqual(startOf(origin));
    expectValues(await valuesOf(fsDatastore({ root: ds }), again));

    // The origin as an older tsflow wrote it: every value in a blob, references without `inline`.
    const store = fsDatastore({ root: ds });
    const dir = join(ds, "flows", FLOW, "runs", runId);
    const blobs: ArtifactRef[] = [];
    await rewriteRefs(dir, (ref) => {
      if (ref.inline === undefined) return;
      blobs.push({ ...ref });
      delete ref.inline;
    });
    for (const ref of blobs) await store.put(blobKey(ref.hash), inlineBytes(ref.inline!));
    expect(walk(dir).some((f) => readFileSync(f, "utf8").includes('"inline"'))).toBe(false);
    expectValues(await valuesOf(store, runId));
    const old = await cli(["resume", FILE, "--origin-run-id", runId, "--datastore", ds], { env: { TSFLOW_TEST_FAIL_END: "" } });
    expect(old.code, old.stderr).toBe(0);
    expect(old.stdout).toContain("end read hi 41 14 1000 3");
    const oldStart = startOf(refsOfRun(ds, runIdOf(old.stdout)!));
    expect(oldStart.small).toEqual({ hash: startOf(origin).small!.hash, size: startOf(origin).small!.size, type: "number" });
  });

  it("the viewer serves an inline artifact (raw, JSON, page) and an export copies it", async () => {
    const ds = tempStore();
    const r = await cli(["run", FILE, "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    const runId = runIdOf(r.stdout)!;
    const store = fsDatastore({ root: ds });
    const app = createViewerApp({ store, host });
    const raw = await app.request(`/artifacts/${FLOW}/${runId}/start/1/small?format=raw`);
    expect(raw.status).toBe(200);
    const bytes = new Uint8Array(await raw.arrayBuffer());
    expect(bytes).toEqual(bytesOf(41));
    expect(raw.headers.get("Content-Length")).toBe(String(bytes.byteLength));
    const json = await app.request(`/artifacts/${FLOW}/${runId}/start/1/text?format=json`);
    expect(await json.json()).toBe('é 😀 "quoted" \\ \n\u2028 end');
    const page = await (await app.request(`/runs/${FLOW}/${runId}/start/1`)).text();
    expect(page).toContain("quoted");
    expect(page).not.toContain("is missing");
    const files = new Map<string, Uint8Array>();
    await exportRun(store, host, FLOW, runId, async (path, data) => {
      const parts: Uint8Array[] = [];
      if (data instanceof Uint8Array) parts.push(data);
      else for await (const c of data) parts.push(c);
      files.set(path, new Uint8Array(Buffer.concat(parts)));
    });
    const smallHash = refOf(host, "small", 41).ref.hash;
    expect(files.get(`data/${smallHash}.tsf`)).toEqual(bytesOf(41));
  });

  it("gc: an inline reference marks no blob, so an old blob of the same value goes, and every value still reads", async () => {
    const ds = tempStore();
    const r = await cli(["run", FILE, "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    const runId = runIdOf(r.stdout)!;
    const store = fsDatastore({ root: ds });
    // A blob of `small`'s value, as a run stored before inline values left it.
    const small = refOf(host, "small", 41).ref;
    await store.put(blobKey(small.hash), bytesOf(41));
    const gc = await cli(["gc", "--grace", "0", "--datastore", ds]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/3 blobs: 2 referenced.*deleted 1 /);
    expect(blobFiles(ds).some((b) => b.path.endsWith(small.hash))).toBe(false);
    expectValues(await valuesOf(store, runId));
  });
});

describe("inline references, in process", () => {
  it("keeps exactly the small values without binary data inline, and their bytes come back exactly", async () => {
    const value = fc.oneof(
      fc.anything({ maxDepth: 2, maxKeys: 4, withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withBoxedValues: true }),
      fc.string({ unit: "binary", maxLength: 120 }),
      fc.double(),
    );
    await fc.assert(
      fc.asyncProperty(value, async (v) => {
        const store = memoryDatastore();
        const bytes = bytesOf(v);
        const headerLen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
        const segments = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))).s.length;
        const ref = await storeArtifact(store, host, "v", v);
        expect(ref.hash).toBe(refOf(host, "v", v).ref.hash);
        const blobs = await store.listAll!("blobs/");
        if (bytes.byteLength <= INLINE_MAX && segments === 0 && 8 + headerLen === bytes.byteLength) {
          expect(ref.inline).toBeDefined();
          expect(inlineBytes(ref.inline!)).toEqual(bytes);
          expect(blobs).toEqual([]);
        } else {
          expect(ref.inline).toBeUndefined();
          expect(blobs).toEqual([blobKey(ref.hash)]);
        }
        // What comes back serializes to the same bytes; the synchronous reader of an inline
        // value needs no store that reads synchronously (this one cannot).
        const back = await loadArtifact(store, host, ref, "v");
        expect(bytesOf(back)).toEqual(bytes);
        if (ref.inline !== undefined) expect(bytesOf(loadArtifactSync(store, host, ref, "v"))).toEqual(bytes);
      }),
      process.env.TSFLOW_SOAK === "1" ? { numRuns: 5_000 } : { numRuns: 300, seed: 20261130 },
    );
  });

  it("takes values up to INLINE_MAX serialized bytes", async () => {
    const store = memoryDatastore();
    // "TSF1", the header's length and {"v":"…","s":[]}: 8 + 15 bytes around the string.
    const fits = "x".repeat(INLINE_MAX - 23);
    expect(bytesOf(fits).byteLength).toBe(INLINE_MAX);
    expect((await storeArtifact(store, host, "a", fits)).inline).toBe(JSON.stringify(fits));
    expect((await storeArtifact(store, host, "a", `${fits}x`)).inline).toBeUndefined();
  });

  it("a reference whose inline value does not match its hash, or is not text, is corrupt; TooLarge applies as to blobs", async () => {
    const store = memoryDatastore({ url: "memory://inline" });
    const ref = await storeArtifact(store, host, "loss", 0.25);
    expect(await loadArtifact(store, host, ref, "loss", "F/1/train/2")).toBe(0.25);
    const bad = { ...ref, inline: "0.5" };
    for (const load of [() => loadArtifact(store, host, bad, "loss", "F/1/train/2"), async () => loadArtifactSync(store, host, bad, "loss", "F/1/train/2")]) {
      await expect(load()).rejects.toThrow(/^artifact 'loss' of F\/1\/train\/2 is corrupt: its inline value \(in its task's record\) does not match its hash [0-9a-f]{12}… \(got [0-9a-f]{12}…\)$/);
    }
    const notText = { ...ref, inline: 0.25 } as unknown as ArtifactRef;
    await expect(loadArtifact(store, host, notText, "loss")).rejects.toThrow("artifact 'loss' is corrupt: its inline value in its task's record is not text");
    await expect(loadArtifact(store, host, ref, "loss", "", { maxBytes: 4 })).rejects.toThrow(/artifact 'loss' is too large to load here/);
    // A done.json carries it like any reference.
    await putJson(store, doneKey("F", "1", "train", "2"), { ok: true, artifacts: { loss: ref }, next: [], attempt: 0, startedAt: 0, finishedAt: 0 });
    const done = await getJson<{ artifacts: Record<string, ArtifactRef> }>(store, doneKey("F", "1", "train", "2"));
    expect(await loadArtifact(store, host, done!.artifacts.loss!, "loss")).toBe(0.25);
  });
});
