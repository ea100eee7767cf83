/**
 * gc beside a live run (issue 19.2). A run stores a value whose blob a deleted run left behind
 * (old, unreferenced), and a gc runs while the task has put its blobs but not yet written the
 * result.json that references them. The window is held open deterministically: by a store
 * wrapper for the fs runs, by an HTTP proxy in front of s3rver for the Batch run. Whatever gc's
 * grace period, the run must succeed and every artifact must load afterwards.
 */
import { existsSync, readdirSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { runFlow } from "tsflow";
import { describe, expect, it } from "vitest";
import { putJson } from "../../core/_datastore.ts";
import { blobKey, doneKey, heartbeatKey, runKey } from "../../core/_layout.ts";
import { watchSweeps } from "../../core/_sweeps.ts";
import { INLINE_MAX, loadArtifact, refOf, storeArtifact } from "../../core/artifacts.ts";
import { collectGarbage } from "../../core/gc.ts";
import { createClient } from "../../core/client.ts";
import type { Datastore } from "../../core/types.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import memoryDatastore from "../../plugins/datastores/memory.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import nodeHost from "../../plugins/host/node.ts";
import { cli, fixture, tempStore } from "../_helpers.ts";
import { S3RVER_CREDENTIALS, startHoldingProxy, startS3rver } from "../_s3rver.ts";
import { startBatchServer } from "../batch-server/server.ts";
import { NODE_IMAGE } from "../executors/_docker.ts";
import GcRaceFlow, { CONSTANT } from "../fixtures/gc-race.ts";
import GcRaceCardFlow from "../fixtures/gc-race-card.ts";
import { walk } from "../reliability/_util.ts";

const host = nodeHost();
const constantHash = refOf(host, "constant", CONSTANT).ref.hash;
const runIdOf = (out: string) => /Run GcRaceFlow\/(\S+) (succeeded|failed)/.exec(out)?.[1];

/** `inner`, except that the put of a key matching `hold` waits for `release()`. */
function holding(inner: Datastore, hold: (key: string) => boolean) {
  let release!: () => void;
  let reached!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const arrived = new Promise<void>((r) => (reached = r));
  const store: Datastore = {
    ...inner,
    async put(key, data, options) {
      if (hold(key)) {
        reached();
        await gate;
      }
      return inner.put(key, data, options);
    },
  };
  return { store, reached: arrived, release };
}

/** Sets the time of every blob file to three hours ago. */
function ageBlobs(root: string) {
  const old = Date.now() / 1000 - 3 * 3600;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else utimesSync(p, old, old);
    }
  };
  walk(join(root, "blobs"));
}

/** Loads every artifact of every task of the run. */
async function loadEverything(store: Datastore, runId: string) {
  const client = createClient(store, host);
  client.namespace(null);
  const run = await client.Flow.get("GcRaceFlow").run(runId);
  const values: Record<string, unknown> = {};
  for (const step of await run.steps()) for (const t of await step.tasks()) for (const a of await t.artifacts()) values[`${step.name}.${a.name}`] = await a.value();
  return values;
}

describe("gc beside a live run", () => {
  for (const grace of ["1h", "0"]) {
    it(`fs, --grace ${grace}: a blob put (or found) by a task before its result.json survives`, async () => {
      const ds = tempStore();
      const first = await cli(["run", fixture("gc-race.ts"), "--datastore", ds]);
      expect(first.code, first.stderr).toBe(0);
      expect((await cli(["delete", `GcRaceFlow/${runIdOf(first.stdout)}`, "--datastore", ds])).code).toBe(0);
      ageBlobs(ds);

      const held = holding(fsDatastore({ root: ds }), (key) => /\/tasks\/start\/1\/0\/result\.json$/.test(key));
      const running = runFlow(GcRaceFlow, { datastore: held.store, executor: "inline" });
      await held.reached;
      const gc = await cli(["gc", "--grace", grace, "--datastore", ds]);
      expect(gc.code, gc.stderr).toBe(0);
      expect(gc.stdout).toMatch(/\(1 running\)/);
      // With a grace period the put refreshed the old blob, so gc kept it; without one gc took
      // it, and the task puts it again before its result counts.
      expect(existsSync(join(ds, blobKey(constantHash)))).toBe(grace !== "0");
      held.release();
      const run = await running;
      expect(run.error).toBeUndefined();
      const values = await loadEverything(fsDatastore({ root: ds }), run.runId);
      expect(values["start.constant"]).toBe(CONSTANT);
      expect(values["end.constant"]).toBe(CONSTANT);
    });
  }

  it("fs: a gc while the first run starts (its time-index entry filed, not yet its run.json) finds a datastore, not a stranger's directory", async () => {
    // The very first writes of a run to a new datastore: gc beside them refused the location
    // ("not a tsflow datastore", exit 2), as it refuses a project directory.
    const ds = tempStore();
    const held = holding(fsDatastore({ root: ds }), (key) => /^flows\/GcRaceFlow\/runs\/[^/]+\/run\.json$/.test(key));
    const running = runFlow(GcRaceFlow, { datastore: held.store, executor: "inline" });
    try {
      await held.reached;
      expect(existsSync(join(ds, "flows", "GcRaceFlow", "bytime"))).toBe(true);
      const gc = await cli(["gc", "--grace", "0", "--datastore", ds]);
      expect(gc.code, gc.stderr).toBe(0);
    } finally {
      held.release();
    }
    const run = await running;
    expect(run.error).toBeUndefined();
    expect((await loadEverything(fsDatastore({ root: ds }), run.runId))["end.constant"]).toBe(CONSTANT);
  });

  it("fs, --grace 0: a task's card blobs survive too (they are rendered again)", async () => {
    const ds = tempStore();
    // A datastore with some history, so gc runs on a real one.
    expect((await cli(["run", fixture("gc-race.ts"), "--datastore", ds])).code).toBe(0);
    const held = holding(fsDatastore({ root: ds }), (key) => /\/tasks\/start\/1\/0\/result\.json$/.test(key));
    const running = runFlow(GcRaceCardFlow, { datastore: held.store, executor: "inline" });
    await held.reached;
    const gc = await cli(["gc", "--grace", "0", "--datastore", ds]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/deleted [1-9]/);
    held.release();
    const run = await running;
    expect(run.error).toBeUndefined();
    const client = createClient(fsDatastore({ root: ds }), host);
    client.namespace(null);
    const [task] = await (await client.Flow.get("GcRaceCardFlow").run(run.runId)).step("start").tasks();
    const [c] = await task!.cards();
    expect(await c!.html()).toContain("a card that must survive gc");
    expect(await task!.data("value")).toMatch(/^fresh /);
  });

  it("s3rver + AWS Batch (local server), --grace 0: the task's blobs survive a gc in its window", async () => {
    const [s3, server] = await Promise.all([startS3rver({ buckets: ["gc"] }), startBatchServer({ executor: "process", transitionMs: 20 })]);
    // The job's task commits itself: its done.json is the record that references its blobs.
    const proxy = await startHoldingProxy(s3.port, (method, path) => method === "PUT" && path.includes("/tasks/start/1/done.json"));
    const awsEnv = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: "us-east-1" };
    const batchEnv = { TSFLOW_BATCH_ENDPOINT: server.url, TSFLOW_BATCH_QUEUE: "default", TSFLOW_BATCH_IMAGE: NODE_IMAGE };
    // Jobs of the local Batch server get this process's AWS credentials (standing for their role).
    const saved = { ...process.env };
    Object.assign(process.env, awsEnv);
    const where = ["--datastore", "s3://gc/live"];
    try {
      const first = await cli(["run", fixture("gc-race.ts"), ...where, "--executor", "batch"], { env: { ...awsEnv, ...batchEnv, TSFLOW_S3_ENDPOINT: s3.endpoint }, timeoutMs: 120_000 });
      expect(first.code, first.stderr).toBe(0);
      const del = await cli(["delete", `GcRaceFlow/${runIdOf(first.stdout)}`, ...where], { env: { ...awsEnv, TSFLOW_S3_ENDPOINT: s3.endpoint } });
      expect(del.code, del.stderr).toBe(0);

      // The second run (orchestrator and jobs) reaches S3 through the proxy, which holds the
      // start task's done.json until gc has run.
      const second = cli(["run", fixture("gc-race.ts"), ...where, "--executor", "batch"], { env: { ...awsEnv, ...batchEnv, TSFLOW_S3_ENDPOINT: proxy.endpoint }, timeoutMs: 120_000 });
      await proxy.reached;
      const gc = await cli(["gc", "--grace", "0", ...where], { env: { ...awsEnv, TSFLOW_S3_ENDPOINT: s3.endpoint } });
      expect(gc.code, gc.stderr).toBe(0);
      expect(gc.stdout).toMatch(/\(1 running\)/);
      expect(walk(s3.dir).some((f) => f.includes(constantHash))).toBe(false);
      proxy.release();
      const r = await second;
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`end read: ${CONSTANT}`);
      const store = s3Datastore({ url: "s3://gc/live", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
      const values = await loadEverything(store, runIdOf(r.stdout)!);
      expect(values["start.constant"]).toBe(CONSTANT);
      await store.close?.();
    } finally {
      process.env = saved;
      await proxy.close();
      await Promise.all([server.close(), s3.close()]);
    }
  }, 240_000);
});

describe("the sweep protocol (core/_sweeps.ts) with a real gc", () => {
  /** A writer's blob X, put but not yet referenced by its running run. */
  async function writer(store: Datastore) {
    await putJson(store, runKey("W", "1-live"), { flow: "W", runId: "1-live", status: "running", createdAt: Date.now(), parameters: {} });
    await store.put(heartbeatKey("W", "1-live"), new TextEncoder().encode(String(Date.now())));
    const watch = await watchSweeps(store);
    // Big enough for a blob (a tiny value is kept inline in its reference, with no blob at all).
    const value = `value ${Math.random()} ${"·".repeat(INLINE_MAX)}`;
    const ref = await storeArtifact(store, host, "x", value);
    const publish = () => putJson(store, doneKey("W", "1-live", "s", "1"), { ok: true, artifacts: { x: ref }, next: [], attempt: 0, startedAt: 0, finishedAt: 0 });
    return { watch, ref, value, publish };
  }

  it("a gc still marking when the writer publishes marks it again before sweeping: nothing to redo", async () => {
    const inner = memoryDatastore();
    const held = holding(inner, (key) => /^gc\/.*\.sweep$/.test(key));
    const w = await writer(inner);
    const gc = collectGarbage(held.store, { graceMs: 0 });
    await held.reached; // gc has marked without the writer's reference
    await w.publish();
    expect(await w.watch.swept()).toBe(false);
    held.release();
    expect((await gc).deleted).toEqual([]);
    expect(await inner.has(blobKey(w.ref.hash))).toBe(true);
  });

  it("a writer's next task starts from its last listing: a gc that ran in between is seen, and what it took is put again", async () => {
    const store = memoryDatastore();
    const first = await writer(store);
    await first.publish();
    expect(await first.watch.swept()).toBe(false);
    // The next task's watch begins with that listing (a worker lists once per task).
    const next = first.watch.continued();
    const value = `value ${Math.random()} ${"·".repeat(INLINE_MAX)}`;
    const ref = await storeArtifact(store, host, "y", value);
    // A whole gc between the task's put and its publication takes the unreferenced blob.
    expect((await collectGarbage(store, { graceMs: 0 })).deleted).toContain(blobKey(ref.hash));
    await putJson(store, doneKey("W", "1-live", "s", "2"), { ok: true, artifacts: { y: ref }, next: [], attempt: 0, startedAt: 0, finishedAt: 0 });
    expect(await next.swept()).toBe(true);
    await storeArtifact(store, host, "y", value);
    expect(await loadArtifact(store, host, ref, "y")).toBe(value);
  });

  it("a gc sweeping when the writer publishes is waited for, and what it took is put again", async () => {
    const inner = memoryDatastore();
    const w = await writer(inner);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let deleting!: () => void;
    const reached = new Promise<void>((r) => (deleting = r));
    const store: Datastore = {
      ...inner,
      async delete(key) {
        if (key.startsWith("blobs/")) {
          deleting();
          await gate;
        }
        return inner.delete(key);
      },
    };
    const gc = collectGarbage(store, { graceMs: 0 });
    await reached; // gc is deleting X
    await w.publish();
    let answered = false;
    const swept = w.watch.swept().then((v) => {
      answered = true;
      return v;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    release();
    expect((await gc).deleted).toEqual([blobKey(w.ref.hash)]);
    expect(await swept).toBe(true);
    // The writer's part: put it again; then it is there for its readers.
    expect(await inner.has(blobKey(w.ref.hash))).toBe(false);
    await storeArtifact(inner, host, "x", w.value);
    expect(await loadArtifact(inner, host, w.ref, "x")).toBe(w.value);
  });
});
