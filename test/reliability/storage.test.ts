/**
 * Storage faults: a full disk, a read-only datastore, a corrupted blob, a truncated metadata
 * file, an S3 server that goes away mid-run. Each must give a clear error naming the file or
 * key, a non-zero exit, and nothing that looks like a successful task.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { getJson, wrapDatastore } from "../../core/_datastore.ts";
import { doneKey, runKey } from "../../core/_layout.ts";
import { readTasks } from "../../core/_tasks.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { cli, cliRun, fixture, spawnCli, tempStore, waitFor } from "../_helpers.ts";
import { startS3rver } from "../_s3rver.ts";
import { checkConsistency, countDone, rfixture, runDirs, sleep, tryRun, walk } from "./_util.ts";

/** A tmpfs mounted for one test; `null` when this machine does not allow mounting. */
async function mountTmpfs(options: string): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), "tsflow-tmpfs-"));
  if (!(await tryRun("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]))) {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  const remove = async () => {
    await tryRun("umount", [dir]);
    rmSync(dir, { recursive: true, force: true });
  };
  // Inside a test afterAll would never run (vitest ignores it there) and the mount would leak.
  try {
    onTestFinished(remove);
  } catch {
    afterAll(remove);
  }
  return dir;
}

const canMount = (await mountTmpfs("size=64k")) !== null;

// A 2 MB artifact is hashed, then put; a 12 MB one is staged (written while it is hashed, when a
// CPU is idle): either way the disk filling up fails the task cleanly.
describe.each([
  { tmpfs: "1m", mb: "2", how: "a full disk (1 MB tmpfs)" },
  { tmpfs: "4m", mb: "12", how: "a full disk under a 12 MB artifact on a 4 MB tmpfs (staged, written while hashed, when a CPU is idle)" },
])("$how", ({ tmpfs, mb }) => {
  it.skipIf(!canMount)("fails the task with 'the disk is full' naming the blob, exit 1, no done marker for it, no temporary file", async () => {
    const root = (await mountTmpfs(`size=${tmpfs}`))!;
    const r = await cliRun(rfixture("big-artifact.ts"), root, "--mb", mb);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[fs\] cannot write 'blobs\/[0-9a-f]{2}\/[0-9a-f]{64}' in .*: the disk is full/);
    expect(r.stderr).toMatch(/start\/1/);
    const c = await checkConsistency(root);
    expect(c.problems).toEqual([]);
    expect(walk(root).some((f) => f.includes("/tasks/start/") && f.endsWith("done.json"))).toBe(false);
    expect(c.tempFiles).toBe(0);
  });
});

describe("a disk that fills up mid-run (a step fills the 1 MB tmpfs)", () => {
  it.skipIf(!canMount)("result.json and run.json cannot be written: both named, exit 1, no done marker", async () => {
    const root = (await mountTmpfs("size=1m"))!;
    const r = await cliRun(rfixture("fill-disk.ts"), root);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/\[fs\] cannot write 'flows\/FillDiskFlow\/runs\/[^/]+\/tasks\/start\/1\/0\/result\.json' in .*: the disk is full/);
    expect(r.stderr).toMatch(/\[fs\] cannot write 'flows\/FillDiskFlow\/runs\/[^/]+\/run\.json' in .*: the disk is full/);
    expect(r.stdout).not.toMatch(/succeeded/);
    expect(countDone(root)).toBe(0);
    expect((await checkConsistency(root)).problems).toEqual([]);
  });
});

describe("a read-only datastore", () => {
  it.skipIf(!canMount)("refuses to start the run with 'not writable' naming the first record it could not write, exit 1", async () => {
    const root = (await mountTmpfs("ro,size=64k"))!;
    const r = await cliRun(fixture("linear.ts"), root);
    expect(r.code).toBe(1);
    // The first write of a run: its parameters' blobs, its entry in the flow's time index (filed
    // before run.json), or run.json.
    expect(r.stderr).toMatch(/\[fs\] cannot write '(flows\/LinearFlow\/runs\/[^']+\/run\.json|flows\/LinearFlow\/bytime\/[^']+|blobs\/[^']+)' in .*: the datastore is not writable/);
    expect(r.stdout).not.toMatch(/succeeded/);
  });
});

describe("a corrupted blob", () => {
  it("the step reading it fails naming the artifact; the run fails", async () => {
    const root = tempStore();
    const r = await cliRun(rfixture("corrupt-blob.ts"), root);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CorruptArtifact: artifact 'payload' of \S+\/(start\/1|tamper\/2) is corrupt: blob blobs\/[0-9a-f]{2}\/[0-9a-f]{64}/);
    expect(r.stderr).toMatch(/CorruptBlobFlow\/\S+\/end\/3/);
    expect(walk(root).some((f) => f.includes("/tasks/end/") && f.endsWith("done.json"))).toBe(false);
    expect((await checkConsistency(root)).problems.join("\n")).toMatch(/blob .* does not match its hash/);
  });
});

describe("a truncated metadata file", () => {
  it("run.json cut in half: the next task fails naming the key, exit 1", async () => {
    const root = tempStore();
    const r = await cliRun(rfixture("truncate-run.ts"), root, "--fresh-workers");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/metadata 'flows\/TruncateRunFlow\/runs\/[^/]+\/run\.json' in datastore .* is damaged/);
    expect(walk(root).some((f) => f.includes("/tasks/end/") && f.endsWith("done.json"))).toBe(false);
  });

  it("done.json cut in half: reading it names the key", async () => {
    const root = tempStore();
    expect((await cliRun(fixture("linear.ts"), root)).code).toBe(0);
    const runId = runDirs(root, "LinearFlow")[0]!;
    const file = join(root, doneKey("LinearFlow", runId, "start", "1"));
    const text = readFileSync(file, "utf8");
    writeFileSync(file, text.slice(0, text.length >> 1));
    const store = fsDatastore({ root });
    await expect(getJson(store, doneKey("LinearFlow", runId, "start", "1"))).rejects.toThrow(/metadata 'flows\/LinearFlow\/runs\/[^/]+\/tasks\/start\/1\/done\.json' .* is damaged/);
    writeFileSync(join(root, runKey("LinearFlow", runId)), "{\"flow\":");
    await expect(getJson(store, runKey("LinearFlow", runId))).rejects.toThrow(/run\.json' .* is damaged/);
  });
});

describe("a success marker a power loss emptied before its sync", () => {
  // A task that records itself writes its task.json once it has run TSFLOW_SELF_RECORD_MS, or
  // never when it succeeds sooner (its record is in done.json): both cases, each made certain.
  const emptied = async (selfRecordMs: string) => {
    const root = tempStore();
    expect((await cli(["run", fixture("linear.ts"), "--datastore", root], { env: { TSFLOW_SELF_RECORD_MS: selfRecordMs } })).code).toBe(0);
    const runId = runDirs(root, "LinearFlow")[0]!;
    // What ext4 can leave of a new file renamed into place but not yet synced.
    writeFileSync(join(root, doneKey("LinearFlow", runId, "end", "3")), "");
    const store = wrapDatastore(fsDatastore({ root }));
    return readTasks(store, "LinearFlow", runId, [{ step: "start", task: "1" }, { step: "end", task: "3" }], { lenient: false });
  };

  it("reads as no marker (the task did not commit): the client and resume's reader see it unfinished, not damaged", async () => {
    const [start, end] = await emptied("0");
    expect(start?.done?.ok).toBe(true);
    expect(end?.done).toBeNull();
    expect(end?.attempts.map((a) => a.attempt)).toEqual([0]);
  });

  it("of a quick task that wrote no task.json: the task reads as never started, not damaged", async () => {
    const [start, end] = await emptied("60000");
    expect(start?.done?.ok).toBe(true);
    expect(end).toBeNull();
  });
});

describe("an S3 server that stops mid-run", () => {
  it("SIGSTOP for 3 s then SIGCONT: the run waits and succeeds", async () => {
    const s3 = await startS3rver({ buckets: ["rel"] });
    try {
      const env = { TSFLOW_S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };
      const run = spawnCli(["run", rfixture("slow-foreach.ts"), "--datastore", "s3://rel/stop", "--n", "6", "--ms", "200", "--max-workers", "2"], env);
      await waitFor(() => /\/work\/\d+\] start/.test(run.stdout()), 30_000, "a work task to start");
      process.kill(s3.pid, "SIGSTOP");
      await sleep(3_000);
      process.kill(s3.pid, "SIGCONT");
      const { code } = await run.exited;
      expect(code, run.stderr()).toBe(0);
    } finally {
      process.kill(s3.pid, "SIGCONT");
      await s3.close();
    }
  });

  it("killed: the run fails naming the S3 key and the unreachable endpoint, exit non-zero", async () => {
    const s3 = await startS3rver({ buckets: ["rel"] });
    const env = { TSFLOW_S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_MAX_ATTEMPTS: "2", TSFLOW_S3_OUTAGE_SECONDS: "0" };
    const run = spawnCli(["run", rfixture("slow-foreach.ts"), "--datastore", "s3://rel/kill", "--n", "6", "--ms", "300", "--max-workers", "2"], env);
    try {
      await waitFor(() => /\/work\/\d+\] start/.test(run.stdout()), 30_000, "a work task to start");
      process.kill(s3.pid, "SIGKILL");
      const { code } = await run.exited;
      expect(code).not.toBe(0);
      expect(run.stderr()).toMatch(/\[s3\] cannot (write|read|check) '[^']+' in s3:\/\/rel\/kill: cannot reach the S3 endpoint http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
      expect(run.stdout()).not.toMatch(/succeeded/);
    } finally {
      run.child.kill("SIGKILL");
      await s3.close().catch(() => {});
    }
  });
});
