/**
 * The fs datastore's staged writes (Datastore.stage), on real files: what is left on disk after
 * a commit, a commit to an existing key, an abort in the middle of the write, a disk that fills
 * up during it and a datastore that cannot be written at all. The datastore conformance suite
 * (fs.test.ts) covers what every store's `stage` promises through the key space; these look
 * at the directory itself, where temporary files live.
 */
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { build } from "esbuild";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { wrapDatastore } from "../../core/_datastore.ts";
import { blobKey } from "../../core/_layout.ts";
import { encode, refOf, storeStaged } from "../../core/artifacts.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { exec, ROOT, tempStore, waitFor } from "../_helpers.ts";
import { tryRun } from "../reliability/_util.ts";

const MiB = 1024 * 1024;

/** Everything below `dir`, relative. */
const files = (dir: string) => (readdirSync(dir, { recursive: true }) as string[]).sort();
const temps = (dir: string) => files(dir).filter((f) => basename(f).startsWith(".tmp-"));

/** Descriptors of this process open on a file below `dir` (deleted or not). */
function openBelow(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

function bytes(n: number, seed: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < n; at += 3 * MiB) {
    const c = new Uint8Array(Math.min(3 * MiB, n - at));
    for (let i = 0; i < c.length; i += 997) c[i] = (i + seed) & 0xff;
    out.push(c);
  }
  return out;
}

const joined = (chunks: Uint8Array[]) => Buffer.concat(chunks);

/** A tmpfs mounted for one test; `null` where this machine does not allow mounting. */
async function mountTmpfs(options: string): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), "tsflow-stage-"));
  if (!(await tryRun("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]))) {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  onTestFinished(async () => {
    await tryRun("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
const probe = mkdtempSync(join(tmpdir(), "tsflow-stage-probe-"));
const canMount = await tryRun("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]);
if (canMount) await tryRun("umount", [probe]);
rmSync(probe, { recursive: true, force: true });

describe("fs datastore: staged writes on disk", () => {
  it("a commit renames the staged file to the key: the key's bytes, nothing else in the directory", async () => {
    const root = tempStore();
    const store = fsDatastore({ root, stage: "always" });
    const data = bytes(40 * MiB + 7, 1);
    const staged = (await store.stage!("blobs/", data))!;
    await staged.commit("blobs/ab/key", { immutable: true });
    expect(readFileSync(join(root, "blobs/ab/key")).equals(joined(data))).toBe(true);
    expect(files(root)).toEqual(["blobs", "blobs/ab", "blobs/ab/key"]);
    expect(openBelow(root)).toEqual([]);
  });

  it("a commit to an existing immutable key keeps that file (refreshed) and removes the staged one", async () => {
    const root = tempStore();
    const store = fsDatastore({ root, stage: "always" });
    const first = bytes(5 * MiB, 2);
    await store.put("blobs/cd/key", first, { immutable: true });
    const file = join(root, "blobs/cd/key");
    const old = new Date(Date.now() - 3 * 3600_000);
    utimesSync(file, old, old);
    const inode = statSync(file).ino;
    const staged = (await store.stage!("blobs/", bytes(40 * MiB, 3)))!;
    await staged.commit("blobs/cd/key", { immutable: true });
    expect(statSync(file).ino).toBe(inode);
    expect(statSync(file).mtimeMs).toBeGreaterThan(old.getTime() + 3600_000);
    expect(readFileSync(file).equals(joined(first))).toBe(true);
    // The staged file is removed in the thread pool (after the piece in flight), then closed.
    expect(await waitFor(() => temps(root).length === 0 && openBelow(root).length === 0, 30_000, "the staged file to be removed and closed")).toBe(true);
    expect(files(root)).toEqual(["blobs", "blobs/cd", "blobs/cd/key"]);
  });

  it("an abort in the middle of the write leaves no key and no staged file, and closes it", async () => {
    const root = tempStore();
    const store = fsDatastore({ root, stage: "always" });
    const staged = (await store.stage!("blobs/", bytes(64 * MiB, 4)))!;
    // At least one piece is in flight now (stage issues them before it resolves).
    await staged.abort();
    expect(await waitFor(() => temps(root).length === 0 && openBelow(root).length === 0, 30_000, "the staged file to be removed and closed")).toBe(true);
    expect(files(root)).toEqual(["blobs"]);
  });

  it("a process that exits at once after finding its key removes the staged file on its way out", async () => {
    // The unlink queued in the thread pool waits for the piece in flight; process.exit does not
    // wait for the thread pool, so without the exit hook the staged file would stay.
    const root = tempStore();
    const dir = mkdtempSync(join(tmpdir(), "tsflow-stage-child-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, "child.ts"),
      `import fsDatastore from ${JSON.stringify(join(ROOT, "plugins/datastores/fs.ts"))};
const store = fsDatastore({ root: ${JSON.stringify(root)}, stage: "always" });
await store.put("blobs/ab/key", new Uint8Array(1 << 20).fill(1), { immutable: true });
const staged = await store.stage("blobs/", [new Uint8Array(64 << 20).fill(2)]);
await staged.commit("blobs/ab/key", { immutable: true });
process.exit(0);
`,
    );
    await build({ entryPoints: [join(dir, "child.ts")], outfile: join(dir, "child.mjs"), bundle: true, platform: "node", format: "esm", logLevel: "silent" });
    const res = await exec([process.execPath, join(dir, "child.mjs")]);
    expect(res.code, res.stderr).toBe(0);
    expect(files(root)).toEqual(["blobs", "blobs/ab", "blobs/ab/key"]);
  });

  it.skipIf(!canMount)("a disk that fills up during the write: the commit names the key and 'the disk is full', and leaves neither the key nor the staged file", async () => {
    const root = (await mountTmpfs("size=4m"))!;
    const store = wrapDatastore(fsDatastore({ root, stage: "always" }));
    const staged = (await store.stage!("blobs/", bytes(12 * MiB, 5)))!;
    await expect(staged.commit("blobs/ef/key", { immutable: true })).rejects.toThrow(/\[fs\] cannot write 'blobs\/ef\/key' in .*: the disk is full/);
    expect(await waitFor(() => temps(root).length === 0 && openBelow(root).length === 0, 30_000, "the staged file to be removed and closed")).toBe(true);
    expect(files(root).filter((f) => f.endsWith("key"))).toEqual([]);
    // The space is back: a write of what fits succeeds.
    await store.put("blobs/ef/small", bytes(3 * MiB, 6));
  });

  it("a store told not to stage declines (resolves undefined), and the artifact is hashed, then put, under the same reference", async () => {
    const root = tempStore();
    const store = wrapDatastore(fsDatastore({ root, stage: "never" }));
    expect(await store.stage!("blobs/", bytes(9 * MiB, 7))).toBeUndefined();
    const host = nodeHost();
    const value = new Uint8Array(9 * MiB).fill(7);
    const ref = await storeStaged(store, host, encode("big", value));
    expect(ref).toEqual(refOf(host, "big", value).ref);
    expect(statSync(join(root, blobKey(ref.hash))).size).toBe(ref.size);
    expect(temps(root)).toEqual([]);
  });

  it.skipIf(!canMount)("a datastore that cannot be written: storing a big artifact fails naming its blob, as an unstaged put does", async () => {
    const root = (await mountTmpfs("ro,size=64k"))!;
    const store = wrapDatastore(fsDatastore({ root, stage: "always" }));
    const host = nodeHost();
    const err = await storeStaged(store, host, encode("big", new Uint8Array(9 * MiB))).catch((e: Error) => e);
    expect(String(err)).toMatch(/\[fs\] cannot write 'blobs\/[0-9a-f]{2}\/[0-9a-f]{64}' in .*: the datastore is not writable/);
    expect(files(root)).toEqual([]);
  });
});
