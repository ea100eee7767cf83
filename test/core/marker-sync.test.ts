/**
 * Deferred, batched marker syncs (docs/reliability.md, "Power loss"; core/_markers.ts): a task's
 * success marker is synced when something needs it — a dependent about to start (a foreach's
 * join: all its inputs at once) or the run's final record — never after. Real runs on the
 * process executor (real workers writing their own markers) over the real fs store; a wrapper
 * records, in the order they happen in the orchestrator, each sync call with its keys (when it
 * resolved), each task dispatched, and the final run record. Nothing here depends on timing or
 * on which task ran first.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { resumeFlow, runFlow } from "tsflow";
import { describe, expect, it } from "vitest";
import { doneKey } from "../../core/_layout.ts";
import { MarkerSyncer } from "../../core/_markers.ts";
import type { Datastore } from "../../core/types.ts";
import ForeachFlow from "../../examples/foreach.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import ResumeForeachFlow from "../fixtures/resume-foreach.ts";
import { fixture, ROOT, tempStore } from "../_helpers.ts";

const FLOW = join(ROOT, "examples", "foreach.ts");

type Event = { synced: string[]; call: "sync" | "syncMany" } | { started: string } | { final: string };

/** The fs store at `root`, recording `events`; `broken` keys fail to sync, as an I/O error would. */
function recording(root: string, events: Event[], broken: Set<string> = new Set()): Datastore {
  const fs = fsDatastore({ root });
  const refuse = (key: string) => Promise.reject(new Error(`I/O error syncing ${key}`));
  return {
    ...fs,
    async put(key, data, options) {
      await fs.put(key, data, options);
      if (/^flows\/[^/]+\/runs\/[^/]+\/run\.json$/.test(key)) {
        const status = JSON.parse(new TextDecoder().decode(data as Uint8Array)).status;
        if (status !== "running") events.push({ final: status });
      }
    },
    async sync(key) {
      await (broken.has(key) ? refuse(key) : fs.sync!(key));
      events.push({ synced: [key], call: "sync" });
    },
    async syncMany(keys) {
      const bad = keys.find((k) => broken.has(k));
      await (bad ? refuse(bad) : fs.syncMany!(keys));
      events.push({ synced: [...keys], call: "syncMany" });
    },
  };
}

async function run(events: Event[], broken?: (runId: string) => Set<string>) {
  const root = tempStore();
  const brokenKeys = new Set<string>();
  const store = recording(root, events, brokenKeys);
  const result = await runFlow(ForeachFlow, {
    file: FLOW,
    executor: "process",
    datastore: store,
    params: { n: 5 },
    maxWorkers: 2,
    reporter: {
      runStarted: ({ runId }) => {
        for (const k of broken?.(runId) ?? []) brokenKeys.add(k);
      },
      taskStarted: ({ pathspec }) => events.push({ started: pathspec }),
    },
  });
  return { root, result };
}

const marker = (runId: string, pathspec: string) => {
  const [, step, task] = pathspec.split("/");
  return doneKey("ForeachFlow", runId, step!, task!);
};

describe("success markers are synced when needed, in batches", () => {
  it("a join starts once all its inputs' markers are synced, in one call; the final record comes after the last sync", async () => {
    const events: Event[] = [];
    const { result } = await run(events);
    expect(result.error).toBeUndefined();
    const runId = result.runId;
    const started = events.flatMap((e) => ("started" in e ? [e.started] : []));
    const of = (step: string) => started.filter((p) => p.split("/")[1] === step);
    expect(of("square_it")).toHaveLength(5);
    const syncs = events.flatMap((e) => ("synced" in e ? [e] : []));
    // start's marker when the bodies are scheduled, the 5 bodies' when the join is, the join's
    // when end is, end's before the final record: four calls, each marker exactly once.
    expect(syncs.map((s) => s.call)).toEqual(["syncMany", "syncMany", "syncMany", "syncMany"]);
    expect(syncs.map((s) => s.synced.length)).toEqual([1, 5, 1, 1]);
    expect(syncs[1]!.synced.sort()).toEqual(of("square_it").map((p) => marker(runId, p)).sort());
    expect(syncs.flatMap((s) => s.synced).sort()).toEqual(started.map((p) => marker(runId, p)).sort());
    // Each task is dispatched after its parents' markers were synced.
    const parents: Record<string, string[]> = { start: [], square_it: of("start"), join: of("square_it"), end: of("join") };
    for (const pathspec of started) {
      const at = events.findIndex((e) => "started" in e && e.started === pathspec);
      const syncedBefore = new Set(events.slice(0, at).flatMap((e) => ("synced" in e ? e.synced : [])));
      for (const p of parents[pathspec.split("/")[1]!]!) expect(syncedBefore.has(marker(runId, p)), `${p}'s marker synced before ${pathspec} started`).toBe(true);
    }
    // The final record is the last thing written, after every marker is synced.
    expect(events.at(-1)).toEqual({ final: "succeeded" });
    expect(events.filter((e) => "final" in e)).toHaveLength(1);
  });

  it("a marker that cannot be synced fails the run naming its task; the marker is removed, the join never starts, the others are still synced before the final record", async () => {
    const events: Event[] = [];
    // The body of item 3 (task ids: start 1, bodies 2-6) cannot be made durable.
    const { root, result } = await run(events, (runId) => new Set([doneKey("ForeachFlow", runId, "square_it", "5")]));
    const runId = result.runId;
    expect(result.successful).toBe(false);
    expect(result.error).toMatchObject({ pathspec: `${runId}/square_it/5` });
    expect(result.error?.message).toContain(`I/O error syncing ${doneKey("ForeachFlow", runId, "square_it", "5")}`);
    const started = events.flatMap((e) => ("started" in e ? [e.started] : []));
    expect(started.filter((p) => p.includes("/join/"))).toEqual([]);
    expect(existsSync(join(root, doneKey("ForeachFlow", runId, "square_it", "5")))).toBe(false);
    // The batch failed, so each of its markers was tried on its own: the four others count.
    const single = events.flatMap((e) => ("synced" in e && e.call === "sync" ? e.synced : []));
    const others = ["2", "3", "4", "6"].map((t) => doneKey("ForeachFlow", runId, "square_it", t));
    expect(single.sort()).toEqual(others);
    for (const k of others) expect(existsSync(join(root, k))).toBe(true);
    expect(events.at(-1)).toEqual({ final: "failed" });
  });

  it("resume syncs its clones' markers like run tasks': the join starts after its cloned inputs' markers are synced", async () => {
    const root = tempStore();
    process.env.TSFLOW_TEST_FAIL_JOIN = "1";
    let failed: Awaited<ReturnType<typeof runFlow<ResumeForeachFlow>>>;
    try {
      failed = await runFlow(ResumeForeachFlow, { datastore: root, file: fixture("resume-foreach.ts"), executor: "inline", params: { count: 4 } });
    } finally {
      delete process.env.TSFLOW_TEST_FAIL_JOIN;
    }
    expect(failed.successful).toBe(false);
    const events: Event[] = [];
    const resumed = await resumeFlow(ResumeForeachFlow, {
      datastore: recording(root, events),
      file: fixture("resume-foreach.ts"),
      originRunId: failed.runId,
      executor: "process",
      reporter: { taskStarted: ({ pathspec }) => events.push({ started: pathspec }) },
    });
    expect(resumed.error).toBeUndefined();
    const started = events.flatMap((e) => ("started" in e ? [e.started] : []));
    // Only the join and end ran; start and the four bodies were cloned.
    expect(started.map((p) => p.split("/")[1])).toEqual(["join", "end"]);
    const syncs = events.flatMap((e) => ("synced" in e ? [e.synced] : []));
    expect(syncs.map((k) => k.length)).toEqual([1, 4, 1, 1]);
    const bodies = syncs[1]!.map((k) => k.split("/").slice(-3, -1).join("/"));
    expect(bodies.every((b) => b.startsWith("body/"))).toBe(true);
    const joinAt = events.findIndex((e) => "started" in e && e.started.includes("/join/"));
    expect(events.findIndex((e) => "synced" in e && e.synced.length === 4)).toBeLessThan(joinAt);
    expect(events.at(-1)).toEqual({ final: "succeeded" });
  });

  it("group commit: markers and requests that come while a flush runs go together in the next one", async () => {
    const fs = fsDatastore({ root: tempStore() });
    const batches: string[][] = [];
    // The first flush is held until released, so the others come while it runs.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const store: Datastore = {
      ...fs,
      async syncMany(keys) {
        if (batches.push([...keys]) === 1) await gate;
        await fs.syncMany!(keys);
      },
    };
    let flushes = 0;
    const syncer = new MarkerSyncer(store, () => flushes++);
    const synced: string[] = [];
    const add = async (name: string) => {
      await fs.put(`m/${name}/done.json`, new TextEncoder().encode("{}"));
      syncer.add({ pathspec: name, key: `m/${name}/done.json`, synced: () => synced.push(name), failed: async (e) => Promise.reject(e) });
    };
    await add("a");
    syncer.request();
    expect(syncer.busy).toBe(true);
    for (const name of ["b", "c", "d"]) {
      await add(name);
      syncer.request();
    }
    expect(["a", "b", "c", "d"].map((n) => syncer.durable(n))).toEqual([false, false, false, false]);
    release();
    await syncer.flushAll();
    expect(batches).toEqual([["m/a/done.json"], ["m/b/done.json", "m/c/done.json", "m/d/done.json"]]);
    expect(synced).toEqual(["a", "b", "c", "d"]);
    expect(flushes).toBe(2);
    expect(["a", "b", "c", "d"].every((n) => syncer.durable(n))).toBe(true);
    expect(syncer.busy).toBe(false);
  });

  it("early flushes grow with the run: 64 markers at a time up to 1,024 synced, then 1/16 of those synced, so their number grows with ln(N), not N", async () => {
    // The real fs store, without the disk flushes (fsync 'none' still checks every key exists).
    const fs = fsDatastore({ root: tempStore(), fsync: "none" });
    const batches: number[] = [];
    const store: Datastore = {
      ...fs,
      async syncMany(keys) {
        batches.push(keys.length);
        await fs.syncMany!(keys);
      },
    };
    let onFlushed = () => {};
    const syncer = new MarkerSyncer(store, () => onFlushed());
    const n = 3000;
    for (let i = 0; i < n; i++) {
      const key = `m/${i}.json`;
      await fs.put(key, new TextEncoder().encode("{}"));
      syncer.add({ pathspec: String(i), key, synced: () => {}, failed: async (e) => Promise.reject(e) });
      // One marker at a time, each early flush over before the next marker: nothing is needed
      // here, so every flush but flushAll's is an early one, of exactly the threshold.
      if (syncer.busy) await new Promise<void>((r) => (onFlushed = r));
    }
    await syncer.flushAll();
    expect(batches.reduce((a, b) => a + b, 0)).toBe(n);
    let flushed = 0;
    for (const [i, size] of batches.slice(0, -1).entries()) {
      expect(size, `early flush ${i} after ${flushed} markers`).toBe(Math.max(64, Math.floor(flushed / 16)));
      flushed += size;
    }
    expect(batches.slice(0, 16)).toEqual(Array(16).fill(64));
    // A fixed 64 made 47 flushes of 3,000 markers; 16 + ln(3000/1024)/ln(17/16) ≈ 34.
    expect(batches.length).toBeLessThanOrEqual(35);
  });
});
