/**
 * The viewer's read layer: runs, tasks, attempts and logs, read straight from the datastore
 * layout (core/_layout.ts). Read-only by construction: it only calls `get`, `list`, `listAll`
 * and `size`. Every name reaching a key was validated by the caller ({@link validName}).
 */
import { checkKey, listAll, mapLimit } from "../core/_datastore.ts";
import { logSize, readLogTail } from "../core/_logs.ts";
import { stepsPrefix } from "../core/_layout.ts";
import { type EffectiveStatus, listRunIds as listStoredRunIds, newestFirst, readHeartbeat, readRun } from "../core/_status.ts";
import { type AttemptInfo, listTaskIds, readRecord, readRunIndex, readTaskDetail, readTasks, type TaskId, type TaskRecord, type TaskState, taskState } from "../core/_tasks.ts";
import type { RunDoc, StepSummary } from "../core/client.ts";
import { readCardRefs } from "../core/cards.ts";
import type { DoneRecord } from "../core/task.ts";
import type { Datastore, Host } from "../core/types.ts";

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:@=+-]{0,199}$/;

/** A flow, run, step or task name as it may appear in a URL; `checkKey` is the second fence. */
export function validName(s: string | undefined): s is string {
  if (typeof s !== "string" || !NAME.test(s) || s.includes("..")) return false;
  try {
    checkKey(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * An artifact name as it may appear in a URL. Artifact names are JSON keys of `done.json`,
 * never datastore keys (`this["a b"]` is a legal artifact), so any printable name up to 1,000
 * characters is fine; lookups use own properties only (`constructor` is not an artifact).
 */
export const validArtifact = (s: string | undefined): s is string => typeof s === "string" && s.length > 0 && s.length <= 1000 && !/[\u0000-\u001f\u007f]/.test(s);

export type { RunDoc, StepSummary };

export interface RunInfo extends RunDoc {
  /** {@link effectiveStatus}: `abandoned` when the orchestrator died. */
  state: EffectiveStatus;
}

export type { AttemptInfo, TaskId, TaskState };

/** A task as the run page lists it: its state in the run, its attempts, its done record. */
export interface TaskRow {
  step: string;
  task: string;
  state: TaskState;
  attempts: AttemptInfo[];
  done?: DoneRecord;
}

const toRow = (t: TaskRecord, runState: EffectiveStatus): TaskRow => ({ step: t.step, task: t.task, state: taskState(t, runState), attempts: t.attempts, ...(t.done ? { done: t.done } : {}) });

export async function listFlows(store: Datastore): Promise<string[]> {
  const entries = await store.list("flows/");
  return entries.filter((e) => e.endsWith("/")).map((e) => e.slice(0, -1)).filter(validName);
}

/** Run ids of a flow, newest first (ids start with their creation time in ms). */
export function listRunIds(store: Datastore, flow: string): Promise<string[]> {
  return listStoredRunIds(store, flow, validName);
}

export { newestFirst };

/**
 * Whose processes the viewer can see: on the machine that ran a flow, a run whose orchestrator
 * died reads as abandoned at once, as it does in the client. Set by `createViewerApp`.
 */
let viewerHost: Pick<Host, "processAlive"> | undefined;
export function setViewerHost(host: Pick<Host, "processAlive"> | undefined): void {
  viewerHost = host;
}

export async function getRun(store: Datastore, flow: string, runId: string, now = Date.now()): Promise<RunInfo | null> {
  const run = await readRun<RunDoc>(store, flow, runId, { now, host: viewerHost, read: readRecord });
  if (!run) return null;
  return { ...run.doc, tags: run.tags, flow, runId, state: run.status };
}

/** Many runs at once, bounded concurrency; missing or damaged ones are skipped (damaged ones named in `damaged`). */
export async function getRuns(store: Datastore, refs: { flow: string; runId: string }[], damaged?: string[]): Promise<RunInfo[]> {
  const now = Date.now();
  const runs = await mapLimit(refs, 64, (r) =>
    getRun(store, r.flow, r.runId, now).catch(() => {
      damaged?.push(`${r.flow}/${r.runId}`);
      return null;
    }),
  );
  return runs.filter((r): r is RunInfo => r !== null);
}

/**
 * The tasks of a run for its page: from the run index when the run has one (a finished run: a
 * few reads, shared between requests), else listed (two levels of directories) and read task
 * by task when there are at most `max` (`rows: null` beyond: the page shows the listing).
 */
export async function runTasks(store: Datastore, run: RunInfo, max = Number.POSITIVE_INFINITY): Promise<{ ids: TaskId[]; rows: TaskRow[] | null }> {
  const indexed = await sharedIndex(store, run, max);
  if (indexed) return { ids: indexed, rows: indexed.map((t) => toRow(t, run.state)) };
  const ids = await sharedTaskIds(store, run.flow, run.runId, run.state !== "running");
  if (ids.length > max) return { ids, rows: null };
  return { ids, rows: await getTasks(store, run, ids) };
}

/** Tasks of a run with their state and attempts: every one, or those of `only` (in task id order). */
export async function getTasks(store: Datastore, run: RunInfo, only?: TaskId[]): Promise<TaskRow[]> {
  if (!only) return (await runTasks(store, run)).rows!;
  const records = await readTasks(store, run.flow, run.runId, only, { doc: false });
  const rows: TaskRow[] = [];
  for (const [i, t] of records.entries()) rows.push(t ? toRow(t, run.state) : { ...only[i]!, state: taskState({ done: null, attempts: [] }, run.state), attempts: [] });
  return rows.sort((a, b) => Number(a.task) - Number(b.task) || (a.task < b.task ? -1 : a.task > b.task ? 1 : 0));
}

/**
 * A finished run's index, shared: concurrent requests share one read, and the last few runs'
 * records are kept (an index never changes once its run.json names it: the key holds the final
 * status and end time).
 */
function sharedIndex(store: Datastore, run: RunInfo, max: number): Promise<TaskRecord[] | null> {
  if (run.status !== "succeeded" && run.status !== "failed") return Promise.resolve(null);
  let byRun = indexCache.get(store);
  if (!byRun) indexCache.set(store, (byRun = new Map()));
  const key = `${run.flow}/${run.runId}/${run.status}/${run.finishedAt}/${max}`;
  let p = byRun.get(key);
  if (p) byRun.delete(key); // most recently used last
  else p = readRunIndex(store, run.flow, run.runId, run, { maxTasks: max });
  byRun.set(key, p);
  p.then((r) => {
    if (!r) byRun.delete(key);
  }, () => byRun.delete(key));
  while (byRun.size > IDS_CACHE_RUNS) byRun.delete(byRun.keys().next().value!);
  return p.catch(() => null);
}
const indexCache = new WeakMap<Datastore, Map<string, Promise<TaskRecord[] | null>>>();

/**
 * The task ids of a run by listing, shared: concurrent requests for one run share one listing,
 * and a finished run's listing (which never changes) is kept for the next request — the listing
 * of a million-task run costs seconds and a few hundred MB, once instead of once per visitor.
 */
export function sharedTaskIds(store: Datastore, flow: string, runId: string, finished: boolean): Promise<TaskId[]> {
  let byRun = idsCache.get(store);
  if (!byRun) idsCache.set(store, (byRun = new Map()));
  const key = `${flow}/${runId}`;
  const hit = byRun.get(key);
  if (hit) {
    byRun.delete(key);
    byRun.set(key, hit); // most recently used last
    return hit;
  }
  const p = listTaskIds(store, flow, runId);
  byRun.set(key, p);
  const forget = () => {
    if (byRun.get(key) === p) byRun.delete(key);
  };
  p.then(() => {
    if (!finished) forget();
  }, forget);
  while (byRun.size > IDS_CACHE_RUNS) byRun.delete(byRun.keys().next().value!);
  return p;
}
const idsCache = new WeakMap<Datastore, Map<string, Promise<TaskId[]>>>();
const IDS_CACHE_RUNS = 4;

export { listTaskIds };

export type TaskDetail = NonNullable<Awaited<ReturnType<typeof readTaskDetail>>>;

export function getTask(store: Datastore, flow: string, runId: string, step: string, task: string): Promise<TaskDetail | null> {
  return readTaskDetail(store, flow, runId, step, task);
}

/** The last `max` bytes of a log, and its full size, reading only the chunks the tail needs. */
export async function getLog(store: Datastore, flow: string, runId: string, step: string, task: string, attempt: number, stream: "stdout" | "stderr", max = 256 * 1024): Promise<{ text: string; size: number; truncated: boolean } | null> {
  const tail = await readLogTail(store, { flow, run: runId, step, task, attempt }, stream, max);
  if (!tail) return null;
  return { text: new TextDecoder().decode(tail.bytes), size: tail.size, truncated: tail.truncated };
}

/**
 * A cheap fingerprint of what a live page shows: the run's status and the number and sizes of
 * its task files. The browser polls it and refreshes the page only when it changes.
 */
export async function fingerprint(store: Datastore, flow: string, runId: string, step?: string, task?: string): Promise<{ sig: string; live: boolean }> {
  const run = await getRun(store, flow, runId);
  if (!run) return { sig: "missing", live: false };
  let sig = `${run.state}`;
  if (step && task) {
    const detail = await getTask(store, flow, runId, step, task);
    for (const a of detail?.attempts ?? []) {
      const sizes = await Promise.all((["stdout", "stderr"] as const).map((s) => logSize(store, { flow, run: runId, step, task, attempt: a.attempt }, s)));
      sig += `|${a.attempt}:${a.ok}:${sizes.join(",")}`;
    }
    sig += `|${detail?.done ? "done" : ""}`;
    // Live cards change without any log line: their versions are part of the fingerprint.
    const last = detail?.attempts.at(-1);
    if (last && !detail?.done) sig += `|cards:${(await readCardRefs(store, flow, runId, step, task, last.attempt, last.cards)).map((c) => `${c.id}@${c.html ?? c.data}`).join(",")}`;
  } else {
    // Up to a few hundred tasks, every file counts (a task starting or finishing changes the
    // page at once). Beyond, a recursive listing would cost more than the page it saves, so
    // task counts and the 5-second heartbeat pace the refresh.
    const prefix = stepsPrefix(flow, runId);
    const steps = (await store.list(prefix)).filter((e) => e.endsWith("/"));
    const counts = await Promise.all(steps.map(async (s) => (await store.list(prefix + s)).length));
    const tasks = counts.reduce((a, b) => a + b, 0);
    sig += `|${steps.join(",")}|${counts.join(",")}`;
    sig += tasks <= 500 ? `|${(await listAll(store, prefix)).length}` : `|${await readHeartbeat(store, flow, runId)}`;
  }
  return { sig, live: run.state === "running" };
}
