/**
 * The fs datastore's power-loss policy (docs/reliability.md, "Power loss"): a `durable` put is
 * synced with its directory before it resolves; other writes are not; `sync`/`syncMany` make
 * keys written earlier durable (a run's markers, in batches: a big batch with one syncfs).
 * The syncs are counted on Node's real `fs.fdatasync` and `fs.fsync` (the store calls them on
 * descriptors; `syncBuiltinESMExports` makes its `node:fs` imports see the counting ones), and
 * the `sync -f` children on the real `child_process.spawn`.
 */
import childProcess from "node:child_process";
import fs from "node:fs";
import * as fsp from "node:fs/promises";
import { syncBuiltinESMExports } from "node:module";
import os, { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { wrapDatastore } from "../../core/_datastore.ts";
import { listAttempts, readTaskDetail, readTasks, taskState } from "../../core/_tasks.ts";
import { runFlow } from "../../mod.ts";

let root: string;
const calls = { datasync: 0, sync: 0 };
/** `sync` children spawned (their arguments). */
const spawned: string[][] = [];
let restore: () => void;

beforeAll(async () => {
  root = await fsp.mkdtemp(join(tmpdir(), "tsflow-fsync-"));
  const { fdatasync, fsync } = fs;
  fs.fdatasync = ((...args: Parameters<typeof fdatasync>) => {
    calls.datasync++;
    return fdatasync(...args);
  }) as typeof fdatasync;
  fs.fsync = ((...args: Parameters<typeof fsync>) => {
    calls.sync++;
    return fsync(...args);
  }) as typeof fsync;
  const { spawn } = childProcess;
  childProcess.spawn = ((...args: Parameters<typeof spawn>) => {
    if (args[0] === "sync") spawned.push([...((args[1] as string[]) ?? [])]);
    return (spawn as (...a: unknown[]) => ReturnType<typeof spawn>)(...args);
  }) as typeof spawn;
  syncBuiltinESMExports();
  restore = () => {
    Object.assign(fs, { fdatasync, fsync });
    Object.assign(childProcess, { spawn });
    syncBuiltinESMExports();
  };
});
afterAll(async () => {
  restore?.();
  await fsp.rm(root, { recursive: true, force: true });
});

const reset = () => {
  Object.assign(calls, { datasync: 0, sync: 0 });
  spawned.length = 0;
};
/** syncfs through `sync -f` is used on Linux 5.8+ (plugins/datastores/fs.ts). */
const syncfs = process.platform === "linux" && (([a = 0, b = 0]) => a > 5 || (a === 5 && b >= 8))(os.release().split(".").map(Number));
const keys = (n: number) => Array.from({ length: n }, (_, i) => `m/${i}/done.json`);

describe("fs datastore fsync policy", () => {
  it("syncs a durable put and its directory, and nothing else", async () => {
    const store = fsDatastore({ root: join(root, "a") });
    reset();
    await store.put("x/plain.json", new TextEncoder().encode("{}"));
    expect(calls).toEqual({ datasync: 0, sync: 0 });
    await store.put("x/done.json", new TextEncoder().encode("{}"), { durable: true });
    expect(calls).toEqual({ datasync: 1, sync: 1 });
    expect(new TextDecoder().decode((await store.get("x/done.json"))!)).toBe("{}");
  });

  it("syncs nothing with fsync: 'none'", async () => {
    const store = fsDatastore({ root: join(root, "b"), fsync: "none" });
    reset();
    await store.put("x/done.json", new TextEncoder().encode("{}"), { durable: true });
    expect(calls).toEqual({ datasync: 0, sync: 0 });
  });

  it("syncs one marker per successful task of a run", async () => {
    const { default: ForeachFlow } = await import("../../examples/foreach.ts");
    const store = fsDatastore({ root: join(root, "c") });
    reset();
    const run = await runFlow(ForeachFlow, { file: new URL("../../examples/foreach.ts", import.meta.url).pathname, executor: "inline", datastore: store, params: { n: 3 } });
    expect(run.error).toBeUndefined();
    expect(calls).toEqual({ datasync: run.tasks, sync: run.tasks });
  });

  it("sync(key) syncs a key written earlier and its directory; a missing key is an error naming it", async () => {
    const store = fsDatastore({ root: join(root, "e") });
    await store.put("x/done.json", new TextEncoder().encode("{}"));
    reset();
    await store.sync!("x/done.json");
    expect(calls).toEqual({ datasync: 1, sync: 1 });
    await expect(store.sync!("x/missing.json")).rejects.toThrow(/\[fs\] cannot sync 'x\/missing.json'/);
    const none = fsDatastore({ root: join(root, "e"), fsync: "none" });
    reset();
    await none.sync!("x/done.json");
    expect(calls).toEqual({ datasync: 0, sync: 0 });
    await expect(none.sync!("x/missing.json")).rejects.toThrow(/\[fs\] cannot sync 'x\/missing.json'/);
  });

  it.skipIf(!syncfs)("syncMany of many keys flushes their filesystem once (sync -f), of a few syncs each key; a missing key is an error naming it", async () => {
    const dir = join(root, "g");
    const store = fsDatastore({ root: dir });
    for (const k of keys(70)) await store.put(k, new TextEncoder().encode("{}"));
    reset();
    await store.syncMany!(keys(70));
    expect(spawned).toEqual([["-f", dir]]);
    // No file synced; the root directory once after the syncfs, for the disk's cache (fs.ts).
    expect(calls).toEqual({ datasync: 0, sync: 1 });
    reset();
    await store.syncMany!(keys(3));
    expect(spawned).toEqual([]);
    expect(calls).toEqual({ datasync: 3, sync: 3 });
    reset();
    await expect(store.syncMany!([...keys(70), "m/missing/done.json"])).rejects.toThrow(/\[fs\] cannot sync 'm\/missing\/done.json'/);
    expect(spawned).toEqual([]);
    const none = fsDatastore({ root: dir, fsync: "none" });
    reset();
    await none.syncMany!(keys(70));
    await expect(none.syncMany!(["m/1/done.json", "m/missing/done.json"])).rejects.toThrow(/cannot sync 'm\/missing\/done.json'/);
    expect({ ...calls, spawned }).toEqual({ datasync: 0, sync: 0, spawned: [] });
  });

  it.skipIf(!syncfs)("without a `sync` command a big batch is synced key by key, and the store stops trying it", async () => {
    const dir = join(root, "g");
    const store = fsDatastore({ root: dir });
    const empty = await fsp.mkdtemp(join(tmpdir(), "tsflow-nopath-"));
    const path = process.env.PATH;
    process.env.PATH = empty;
    try {
      reset();
      await store.syncMany!(keys(70));
      expect(spawned).toEqual([["-f", dir]]);
      expect(calls).toEqual({ datasync: 70, sync: 70 });
      reset();
      await store.syncMany!(keys(70));
      expect({ ...calls, spawned }).toEqual({ datasync: 70, sync: 70, spawned: [] });
    } finally {
      process.env.PATH = path;
      await fsp.rm(empty, { recursive: true, force: true });
    }
  });

  it.skipIf(!syncfs)("a run syncs a big foreach's markers in batches: 64 with one syncfs as soon as they are pending, the rest when the join needs them", async () => {
    const { default: ForeachFlow } = await import("../../examples/foreach.ts");
    const store = fsDatastore({ root: join(root, "h") });
    reset();
    const run = await runFlow(ForeachFlow, { file: new URL("../../examples/foreach.ts", import.meta.url).pathname, executor: "inline", datastore: store, params: { n: 70 } });
    expect(run.error).toBeUndefined();
    // The first 64 bodies in one syncfs (core/_markers.ts, EAGER) and a sync of the root; the
    // last 6, start, join and end file by file.
    expect(spawned).toEqual([["-f", join(root, "h")]]);
    expect(calls).toEqual({ datasync: 9, sync: 10 });
  });

  it("on the process executor each task's worker writes its marker (no result.json) and the orchestrator syncs it", async () => {
    const file = new URL("../../examples/foreach.ts", import.meta.url).pathname;
    const { default: ForeachFlow } = await import("../../examples/foreach.ts");
    const store = fsDatastore({ root: join(root, "f") });
    reset();
    // No task here runs long enough to write task.json, even on a loaded machine.
    process.env.TSFLOW_SELF_RECORD_MS = "60000";
    const run = await runFlow(ForeachFlow, { file, executor: "process", datastore: store, params: { n: 3 }, maxWorkers: 2 }).finally(() => delete process.env.TSFLOW_SELF_RECORD_MS);
    expect(run.error).toBeUndefined();
    // The workers (other processes) sync nothing; this process syncs every marker, file and directory.
    expect(calls).toEqual({ datasync: run.tasks, sync: run.tasks });
    const tasks = join(root, "f", "flows", "ForeachFlow", "runs", run.runId, "tasks");
    const written = (await fsp.readdir(tasks, { recursive: true })).map(String).sort();
    expect(written.filter((f) => f.endsWith("done.json"))).toHaveLength(run.tasks);
    expect(written.filter((f) => f.endsWith("result.json"))).toEqual([]);
    // Each task recorded itself in its marker: its doc with its first attempt's start, no
    // task.json, no start.json, and no attempt directory for a task that printed nothing (all but end).
    expect(written.filter((f) => f.endsWith("task.json") || f.endsWith("start.json"))).toEqual([]);
    expect(written.filter((f) => /\/\d+\/\d+$/.test(f))).toEqual([`end${sep}${run.tasks}${sep}0`]);
    const doc = JSON.parse(await fsp.readFile(join(tasks, "join", String(run.tasks - 1), "done.json"), "utf8")).doc;
    expect(doc.start).toMatchObject({ attempt: 0, mode: "run", executor: "process", startedAt: expect.any(Number) });
    // Every reader finds the attempt's result in the marker.
    const detail = await readTaskDetail(wrapDatastore(store), "ForeachFlow", run.runId, "join", String(run.tasks - 1));
    expect(detail?.attempts).toMatchObject([{ attempt: 0, ok: true, executor: "process", artifacts: { total: { type: "number" } } }]);
    // A task still running (no marker yet, the task.json a longer task writes) reads as running.
    await fsp.writeFile(join(tasks, "join", String(run.tasks - 1), "task.json"), JSON.stringify(doc));
    await fsp.rm(join(tasks, "join", String(run.tasks - 1), "done.json"));
    const [running] = await readTasks(wrapDatastore(store), "ForeachFlow", run.runId, [{ step: "join", task: String(run.tasks - 1) }], { doc: false });
    expect(running?.attempts).toEqual([{ attempt: 0, startedAt: doc.start.startedAt, finishedAt: undefined, ok: undefined }]);
    expect(taskState(running!, "running")).toBe("running");
    expect(await listAttempts(wrapDatastore(store), "ForeachFlow", run.runId, "join", String(run.tasks - 1))).toEqual([0]);
  });

  it("refuses an unknown TSFLOW_FSYNC naming it", () => {
    const saved = process.env.TSFLOW_FSYNC;
    process.env.TSFLOW_FSYNC = "always";
    try {
      expect(() => fsDatastore({ root: join(root, "d") })).toThrow(/TSFLOW_FSYNC='always' is not a policy: use 'markers'/);
    } finally {
      if (saved === undefined) delete process.env.TSFLOW_FSYNC;
      else process.env.TSFLOW_FSYNC = saved;
    }
  });
});
