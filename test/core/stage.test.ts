/**
 * A big artifact written while it is hashed (Datastore.stage, core/artifacts.ts storeStaged):
 * the blob that lands is the one its reference names, a blob that exists already is kept (and
 * refreshed) with nothing left beside it, and runs read such artifacts back.
 */
import { existsSync, readdirSync, readFileSync, statSync, utimesSync } from "node:fs";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { wrapDatastore } from "../../core/_datastore.ts";
import { blobKey } from "../../core/_layout.ts";
import { encode, loadArtifact, refOf, STAGE_FROM, stages, storeStaged } from "../../core/artifacts.ts";
import { memoryLayer } from "../../core/spin.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import memoryDatastore from "../../plugins/datastores/memory.ts";
import nodeHost from "../../plugins/host/node.ts";
import { blobFiles, cli, fixture, latestRun, matchesBlobName, ROOT, stepArtifacts, tempStore, waitFor } from "../_helpers.ts";

const MiB = 1024 * 1024;
const host = nodeHost();

/** Every file under `dir` whose name marks an unfinished write. */
function tempFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => basename(f).startsWith(".tmp-"));
}

/** A value of `mb` MiB and a bit (two segments: not one contiguous chunk). */
function bigValue(mb: number, seed: number) {
  const bytes = new Uint8Array(mb * MiB + 12_345);
  for (let i = 0; i < bytes.length; i += 511) bytes[i] = (i * seed) & 0xff;
  return { bytes, tail: new Float64Array(1000).fill(seed) };
}

describe("staged blob writes", () => {
  it("a big value staged and committed reads back, under the reference an unstaged store gives it, with its blob matching its name", async () => {
    const root = tempStore();
    const store = wrapDatastore(fsDatastore({ root, stage: "always" }));
    const value = bigValue(20, 3);
    const encoded = encode("big", value);
    expect(stages(store, encoded.size)).toBe(true);
    const ref = await storeStaged(store, host, encoded);
    expect(ref).toEqual(refOf(host, "big", value).ref);
    const file = join(root, blobKey(ref.hash));
    const bytes = readFileSync(file);
    expect(bytes.byteLength).toBe(ref.size);
    expect(matchesBlobName(bytes, ref.hash)).toBe(true);
    // Compared as bytes: a deep equality of 20 MB element by element exhausts the test's heap.
    const back = (await loadArtifact(store, host, ref, "big")) as typeof value;
    expect(Buffer.compare(back.bytes, value.bytes)).toBe(0);
    expect(Buffer.from(back.tail.buffer, back.tail.byteOffset, back.tail.byteLength).equals(Buffer.from(value.tail.buffer))).toBe(true);
    expect(tempFiles(root)).toEqual([]);
  });

  it("storing the same big value again keeps the blob (refreshed for gc), writes no second copy and leaves no temporary file", async () => {
    const root = tempStore();
    const store = wrapDatastore(fsDatastore({ root, stage: "always" }));
    const value = bigValue(24, 5);
    const ref = await storeStaged(store, host, encode("big", value));
    const file = join(root, blobKey(ref.hash));
    const old = new Date(Date.now() - 3 * 3600_000);
    utimesSync(file, old, old);
    const inode = statSync(file).ino;
    const again = await storeStaged(store, host, encode("big", value));
    expect(again).toEqual(ref);
    // The same file (not replaced by a rename), its time refreshed: gc's grace period counts
    // from this use.
    expect(statSync(file).ino).toBe(inode);
    expect(statSync(file).mtimeMs).toBeGreaterThan(old.getTime() + 3600_000);
    // The staged copy is removed in the thread pool, after the piece in flight.
    expect(await waitFor(() => tempFiles(root).length === 0, 30_000, "the staged file to be removed")).toBe(true);
    expect(blobFiles(root).map((b) => b.path)).toEqual([file]);
  });

  it("only big values on stores that can stage and do not compress are staged", () => {
    const fs = wrapDatastore(fsDatastore({ root: tempStore(), stage: "always" }));
    expect(stages(fs, STAGE_FROM)).toBe(true);
    expect(stages(fs, STAGE_FROM - 1)).toBe(false);
    expect(stages(wrapDatastore(memoryDatastore()), STAGE_FROM)).toBe(false);
    expect(stages({ ...fs, compress: true }, STAGE_FROM)).toBe(false);
    // `spin --no-persist` keeps every write in memory: a staged write would reach the disk.
    expect(stages(memoryLayer(fs), STAGE_FROM)).toBe(false);
  });

  it("a run stores its big artifact through a staged write, reads it back in later steps, and a re-run on the same data keeps the blob", async () => {
    const ds = tempStore();
    const log = join(ds, "stage.log");
    const store = `./test/fixtures/stage-logged-store.ts:dir=${ds},log=${log}`;
    const run = async () => {
      const res = await cli(["run", join(ROOT, "examples", "bigartifact.ts"), "--datastore", store, "--mb", "9"], { timeoutMs: 60_000 });
      expect(res.code, res.stderr).toBe(0);
      const runId = latestRun(ds, "BigArtifactFlow").runId as string;
      const done = JSON.parse(readFileSync(join(ds, "flows", "BigArtifactFlow", "runs", runId, "tasks", "start", "1", "done.json"), "utf8"));
      return { runId, ref: done.artifacts.bytes as { hash: string; size: number } };
    };
    const first = await run();
    // 9 MiB of bytes: staged; the million numbers (8,000,064 bytes) are under STAGE_FROM.
    expect(readFileSync(log, "utf8")).toBe(`commit ${blobKey(first.ref.hash)} new\n`);
    const [end] = await stepArtifacts(ds, "BigArtifactFlow", first.runId, "end");
    let sum = 0;
    for (let i = 0; i < 9 * MiB; i += 4096) sum += i % 251;
    expect(end!.checksum).toBe(sum + 499_999.5);
    expect((end!.bytes as Uint8Array).length).toBe(9 * MiB);
    for (const b of blobFiles(ds)) expect(matchesBlobName(readFileSync(b.path), basename(b.path))).toBe(true);
    expect(tempFiles(ds)).toEqual([]);

    const blobs = blobFiles(ds).length;
    const second = await run();
    expect(second.ref).toEqual(first.ref);
    expect(readFileSync(log, "utf8")).toBe(`commit ${blobKey(first.ref.hash)} new\ncommit ${blobKey(first.ref.hash)} existing\n`);
    expect(blobFiles(ds).length).toBe(blobs);
    expect(tempFiles(ds)).toEqual([]);
  });

  it("a worker that found its big blob in its last step leaves no staged file behind when it exits", async () => {
    // `end` makes the value: the worker's last task, so the worker may exit while the staged
    // copy it discarded is still being removed (the fs store finishes that at exit).
    const ds = tempStore();
    const log = join(ds, "stage.log");
    const store = `./test/fixtures/stage-logged-store.ts:dir=${ds},log=${log}`;
    for (let i = 0; i < 3; i++) {
      const res = await cli(["run", fixture("big-end.ts"), "--datastore", store], { timeoutMs: 60_000 });
      expect(res.code, res.stderr).toBe(0);
      expect(tempFiles(ds)).toEqual([]);
    }
    const lines = readFileSync(log, "utf8").trim().split("\n");
    expect(lines.map((l) => l.split(" ")[2])).toEqual(["new", "existing", "existing"]);
    expect(blobFiles(ds).filter((b) => b.size > 9 * MiB)).toHaveLength(1);
  });
});
