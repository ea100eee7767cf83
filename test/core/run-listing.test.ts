/**
 * Listing runs costs the same with 100 or 100,000 runs (issue 17.1): the newest runs come from
 * the flow's time index (core/_status.ts), never from a listing of every run. The index is a
 * copy, checked against the runs themselves: a stale entry (the run deleted behind its back) is
 * passed over, a run without an entry (stored before the index existed, or by another writer)
 * still lists after the indexed ones, an abandoned run lists as failed, a resumed run lists as
 * the new run it is, and `tsflow delete` removes the entry with the run.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { resumeFlow, runFlow } from "tsflow";
import { describe, expect, it } from "vitest";
import { putJson } from "../../core/_datastore.ts";
import { runIdOfTimeLeaf, runKey, runsPrefix, runTimeKey } from "../../core/_layout.ts";
import { indexRun } from "../../core/_status.ts";
import { createClient } from "../../core/client.ts";
import { deleteRun } from "../../core/gc.ts";
import type { Datastore } from "../../core/types.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { fixture, tempStore } from "../_helpers.ts";
import ResumeForeachFlow from "../fixtures/resume-foreach.ts";

const host = nodeHost();
const FLOW = "ListedFlow";
const DAY = 86_400_000;

/** The fs store over `root`, recording every prefix it lists. */
function listing(root: string): { store: Datastore; lists: string[] } {
  const fs = fsDatastore({ root });
  const lists: string[] = [];
  const list = (p: string) => {
    lists.push(p);
    return fs.list(p);
  };
  return { store: { ...fs, list }, lists };
}

/** A run record as the runtime writes it (status, times, the current user's namespace). */
async function writeRun(store: Datastore, id: string, createdAt: number, status: string, options: { index?: boolean } = {}) {
  if (options.index !== false) await indexRun(store, FLOW, id, createdAt);
  await putJson(store, runKey(FLOW, id), { flow: FLOW, runId: id, status, createdAt, finishedAt: createdAt + 5, tags: [], systemTags: [`user:${host.username()}`], parameterValues: {} });
}

describe("run listings from the time index", () => {
  it("the newest runs, across days and months, without listing every run", async () => {
    const root = tempStore();
    const { store, lists } = listing(root);
    const t0 = 1_790_000_000_000;
    // 300 runs over ~600 days: many periods of both index levels; the newest 5 failed.
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const at = t0 + i * 2 * DAY + (i % 7) * 1000;
      const id = `${at}-r${String(i).padStart(3, "0")}`;
      ids.push(id);
      await writeRun(store, id, at, i >= 295 ? "failed" : "succeeded");
    }
    const newest = [...ids].reverse();
    const client = createClient(store, host);
    const flow = client.Flow.get(FLOW);
    lists.length = 0;
    expect((await flow.runs({ limit: 20 })).map((r) => r.id)).toEqual(newest.slice(0, 20));
    expect((await flow.latestSuccessfulRun())?.id).toBe(newest[5]);
    expect((await flow.latestRun())?.id).toBe(newest[0]);
    // Only the time index was listed: never runs/ itself (that is the listing that grows).
    expect(lists.length).toBeGreaterThan(0);
    expect(lists.filter((p) => p === runsPrefix(FLOW))).toEqual([]);
    // All of them, in order, each once.
    expect((await flow.runs()).map((r) => r.id)).toEqual(newest);
  });

  it("a run without an entry (stored before the index) lists after the indexed ones; a stale entry is passed over", async () => {
    const root = tempStore();
    const { store } = listing(root);
    const t0 = 1_790_000_000_000;
    await writeRun(store, `${t0}-old1`, t0, "succeeded", { index: false });
    await writeRun(store, `${t0 + 1000}-old2`, t0 + 1000, "failed", { index: false });
    await writeRun(store, `${t0 + DAY}-new1`, t0 + DAY, "succeeded");
    await writeRun(store, `${t0 + 2 * DAY}-new2`, t0 + 2 * DAY, "failed");
    // An entry whose run is gone (deleted by hand, or a create that never happened).
    await indexRun(store, FLOW, `${t0 + 3 * DAY}-gone`, t0 + 3 * DAY);
    const flow = createClient(store, host).Flow.get(FLOW);
    expect((await flow.runs()).map((r) => r.id)).toEqual([`${t0 + 2 * DAY}-new2`, `${t0 + DAY}-new1`, `${t0 + 1000}-old2`, `${t0}-old1`]);
    expect((await flow.latestRun())?.id).toBe(`${t0 + 2 * DAY}-new2`);
    expect((await flow.latestSuccessfulRun())?.id).toBe(`${t0 + DAY}-new1`);
    // With no indexed run successful, the search goes on into the runs the index lacks.
    rmSync(join(root, "flows", FLOW, "runs", `${t0 + DAY}-new1`), { recursive: true });
    expect((await flow.latestSuccessfulRun())?.id).toBe(`${t0}-old1`);
    // A datastore with no index at all lists as before.
    rmSync(join(root, "flows", FLOW, "bytime"), { recursive: true });
    expect((await flow.runs()).map((r) => r.id)).toEqual([`${t0 + 2 * DAY}-new2`, `${t0 + 1000}-old2`, `${t0}-old1`]);
  });

  it("an abandoned run (running, its orchestrator gone) lists as the newest, failed, and latestSuccessfulRun looks past it", async () => {
    const root = tempStore();
    const { store } = listing(root);
    const t0 = Date.now() - 10 * 60_000;
    await writeRun(store, `${t0}-good`, t0, "succeeded");
    await writeRun(store, `${t0 + 1000}-dead`, t0 + 1000, "running");
    const flow = createClient(store, host).Flow.get(FLOW);
    const latest = (await flow.latestRun())!;
    expect(latest.id).toBe(`${t0 + 1000}-dead`);
    expect([latest.status, latest.abandoned]).toEqual(["failed", true]);
    expect((await flow.latestSuccessfulRun())?.id).toBe(`${t0}-good`);
  });

  it("an id that does not start with its time (a scheduled execution's name) is filed under createdAt", async () => {
    const root = tempStore();
    const { store } = listing(root);
    const t0 = 1_790_000_000_000;
    const uuid = "3f2c8a9e-1b7d-4c2e-9f00-0123456789ab";
    expect(runIdOfTimeLeaf(runTimeKey(FLOW, uuid, t0 + 500).split("/").at(-1)!)).toBe(uuid);
    await writeRun(store, `${t0}-aaaa`, t0, "succeeded");
    await writeRun(store, uuid, t0 + 500, "succeeded");
    await writeRun(store, `${t0 + 1000}-bbbb`, t0 + 1000, "succeeded");
    const flow = createClient(store, host).Flow.get(FLOW);
    expect((await flow.runs()).map((r) => r.id)).toEqual([`${t0 + 1000}-bbbb`, uuid, `${t0}-aaaa`]);
  });

  it("real runs: a failed run and its resume list newest first; delete removes the run's entry", async () => {
    const ds = tempStore();
    const { store, lists } = listing(ds);
    const file = fixture("resume-foreach.ts");
    process.env.TSFLOW_TEST_FAIL_JOIN = "1";
    const failed = await runFlow(ResumeForeachFlow, { datastore: ds, file, executor: "inline", params: { count: 2 } }).finally(() => {
      delete process.env.TSFLOW_TEST_FAIL_JOIN;
    });
    expect(failed.successful).toBe(false);
    const resumed = await resumeFlow(ResumeForeachFlow, { datastore: ds, file, executor: "inline", originRunId: failed.runId });
    expect(resumed.successful).toBe(true);
    const flow = createClient(store, host).Flow.get("ResumeForeachFlow");
    expect((await flow.runs()).map((r) => r.id)).toEqual([resumed.runId, failed.runId]);
    lists.length = 0;
    expect((await flow.latestSuccessfulRun())?.id).toBe(resumed.runId);
    expect((await flow.latestRun())?.id).toBe(resumed.runId);
    // Both runs have their entry; deleting the resumed run removes its entry with it.
    const created = (id: string) => Number(id.split("-")[0]);
    const entry = (id: string) => runTimeKey("ResumeForeachFlow", id, created(id));
    expect(await store.has(entry(failed.runId))).toBe(true);
    expect(await store.has(entry(resumed.runId))).toBe(true);
    const report = await deleteRun(store, "ResumeForeachFlow", resumed.runId);
    expect(report.deleted).toContain(entry(resumed.runId));
    expect(await store.has(entry(resumed.runId))).toBe(false);
    expect((await flow.runs()).map((r) => r.id)).toEqual([failed.runId]);
    expect(await flow.latestSuccessfulRun()).toBeNull();
  });
});
