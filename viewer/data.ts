/**
 * The viewer's read layer: runs, tasks, attempts and logs, read straight from the datastore
 * layout (core/_layout.ts). Read-only by construction: it only calls `get`, `list`, `listAll`
 * and `size`. Every name reaching a key was validated by the caller ({@link validName}).
 */
import { checkKey, getJson, listAll, mapLimit, RECORD_MAX } from "../core/_datastore.ts";
import { isTsflowError } from "../core/errors.ts";
import { logSize, readLogTail } from "../core/_logs.ts";
import { attemptKey, doneKey, stepsPrefix, taskKey } from "../core/_layout.ts";
import { type EffectiveStatus, listRunIds as listStoredRunIds, newestFirst, readHeartbeat, readRun } from "../core/_status.ts";
import type { RunDoc, StepSummary } from "../core/client.ts";
import { type CardRef, readCardRefs } from "../core/cards.ts";
import type { DoneRecord } from "../core/task.ts";
import type { ArtifactRef, Datastore, ForeachFrame, Host, TaskError, TaskResult } from "../core/types.ts";

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

export type TaskState = "pending" | "running" | "succeeded" | "failed";

export interface AttemptInfo {
  attempt: number;
  startedAt?: number;
  finishedAt?: number;
  ok?: boolean;
}

export interface TaskRow {
  step: string;
  task: string;
  state: TaskState;
  attempts: AttemptInfo[];
  done?: DoneRecord;
}

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

/**
 * `getJson`, but through `getSync` when the store has one: for thousands of small documents on
 * a local disk a synchronous read is several times faster than a round trip through the
 * thread pool, and it is what keeps a 10,000-task run page under a second.
 */
export async function readJson<T>(store: Datastore, key: string): Promise<T | null> {
  if (!store.getSync) return getJson<T>(store, key, RECORD_MAX);
  // A record over RECORD_MAX is refused before it is read (fs looks at its size first).
  let bytes: Uint8Array | null;
  try {
    bytes = store.getSync(key, { maxBytes: RECORD_MAX });
  } catch (e) {
    if (isTsflowError(e) && e.code === "TooLarge") return getJson<T>(store, key, RECORD_MAX); // named as metadata
    throw e;
  }
  if (bytes === null) return null;
  if (bytes.byteLength > RECORD_MAX) return getJson<T>(store, key, RECORD_MAX); // the same TooLarge error
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch {
    return getJson<T>(store, key); // the same clear error as everywhere else
  }
}
const decoder = new TextDecoder();

/**
 * `done.json` is written once, last, and never changes (a resumed run gets a new id), so it
 * is cached per datastore: a live page over a 10,000-task run re-reads only what is new.
 */
const doneCache = new WeakMap<Datastore, Map<string, DoneRecord>>();
const DONE_CACHE_MAX = 200_000;

function cacheOf(store: Datastore): Map<string, DoneRecord> {
  let c = doneCache.get(store);
  if (!c) doneCache.set(store, (c = new Map()));
  return c;
}
function remember(store: Datastore, key: string, done: DoneRecord | undefined): DoneRecord | undefined {
  if (!done) return undefined;
  const c = cacheOf(store);
  if (c.size >= DONE_CACHE_MAX) c.clear();
  c.set(key, done);
  return done;
}

function readDoneSync(store: Datastore, key: string): DoneRecord | undefined {
  const hit = cacheOf(store).get(key);
  if (hit) return hit;
  try {
    const bytes = store.getSync!(key, { maxBytes: RECORD_MAX });
    if (bytes && bytes.byteLength > RECORD_MAX) return undefined;
    return bytes ? remember(store, key, JSON.parse(decoder.decode(bytes)) as DoneRecord) : undefined;
  } catch {
    return undefined;
  }
}

async function readDone(store: Datastore, key: string): Promise<DoneRecord | undefined> {
  const hit = cacheOf(store).get(key);
  if (hit) return hit;
  return remember(store, key, (await readJson<DoneRecord>(store, key).catch(() => null)) ?? undefined);
}

export async function getRun(store: Datastore, flow: string, runId: string, now = Date.now()): Promise<RunInfo | null> {
  const run = await readRun<RunDoc>(store, flow, runId, { now, host: viewerHost, read: readJson });
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
 * Every task of a run with its state and attempts. Listing is two levels deep only (steps,
 * then task ids): a finished task's `done.json` says which attempt succeeded, so only
 * unfinished or retried tasks need their own directory listed. A 10,000-task foreach is a
 * few listings and 10,000 small reads, not 20,000 directory walks.
 */
export async function getTasks(store: Datastore, flow: string, runId: string, runState: EffectiveStatus, only?: TaskId[]): Promise<TaskRow[]> {
  const prefix = stepsPrefix(flow, runId);
  const ids = only ?? (await listTaskIds(store, flow, runId));
  // With a synchronous store, read every done.json in one loop: 10,000 promises cost more
  // than the reads themselves.
  const doneSync = store.getSync ? ids.map(({ step, task }) => readDoneSync(store, doneKey(flow, runId, step, task))) : undefined;
  const rows = await mapLimit(ids, 32, async ({ step, task }, i): Promise<TaskRow> => {
    const done = doneSync ? doneSync[i] : await readDone(store, doneKey(flow, runId, step, task));
    // The common case, a task that succeeded on its first attempt, needs nothing more.
    if (done?.attempt === 0) return { step, task, state: "succeeded", attempts: done.clonedFrom ? [] : [{ attempt: 0, startedAt: done.startedAt, finishedAt: done.finishedAt, ok: true }], done };
    let nums: number[];
    if (done && done.attempt === 0) nums = done.clonedFrom ? [] : [0];
    else {
      const entries = await store.list(`${prefix}${step}/${task}/`);
      nums = entries
        .filter((e) => /^\d+\/$/.test(e))
        .map((e) => Number(e.slice(0, -1)))
        .sort((x, y) => x - y);
    }
    const attempts = await Promise.all(
      nums.map(async (n): Promise<AttemptInfo> => {
        if (done && done.attempt === n && !done.clonedFrom) return { attempt: n, startedAt: done.startedAt, finishedAt: done.finishedAt, ok: true };
        const [start, result] = await Promise.all([
          readJson<{ startedAt: number }>(store, attemptKey(flow, runId, step, task, n, "start.json")).catch(() => null),
          readJson<TaskResult>(store, attemptKey(flow, runId, step, task, n, "result.json")).catch(() => null),
        ]);
        return { attempt: n, startedAt: result?.startedAt ?? start?.startedAt, finishedAt: result?.finishedAt, ok: result ? result.ok : undefined };
      }),
    );
    const state: TaskState = done ? "succeeded" : runState === "running" && !attempts.some((a) => a.ok === false && a === attempts[attempts.length - 1]) ? (attempts.length > 0 ? "running" : "pending") : "failed";
    return { step, task, state, attempts, done };
  });
  return rows.sort((a, b) => Number(a.task) - Number(b.task) || (a.task < b.task ? -1 : a.task > b.task ? 1 : 0));
}

export interface TaskId {
  step: string;
  task: string;
}

/**
 * {@link listTaskIds}, shared: concurrent requests for one run share one listing, and a
 * finished run's listing (which never changes) is kept for the next request — the listing of
 * a million-task run costs seconds and a few hundred MB, once instead of once per visitor.
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

/** Every task of a run, by listing only (two levels of directories), in task id order. */
export async function listTaskIds(store: Datastore, flow: string, runId: string): Promise<TaskId[]> {
  const prefix = stepsPrefix(flow, runId);
  const steps = (await store.list(prefix)).filter((e) => e.endsWith("/")).map((e) => e.slice(0, -1));
  const ids = (await Promise.all(steps.map(async (step) => (await store.list(`${prefix}${step}/`)).filter((e) => e.endsWith("/")).map((e) => ({ step, task: e.slice(0, -1) }))))).flat();
  return ids.sort((a, b) => Number(a.task) - Number(b.task) || (a.task < b.task ? -1 : a.task > b.task ? 1 : 0));
}

export interface TaskDoc {
  step: string;
  taskId: string;
  parents: string[];
  foreach: ForeachFrame[];
  createdAt: number;
}

export interface TaskDetail {
  doc: TaskDoc | null;
  done: DoneRecord | null;
  attempts: (AttemptInfo & { mode?: string; executor?: string; error?: TaskError; artifacts?: Record<string, ArtifactRef>; cards?: CardRef[] })[];
}

export async function getTask(store: Datastore, flow: string, runId: string, step: string, task: string): Promise<TaskDetail | null> {
  const keys = await store.list(`${stepsPrefix(flow, runId)}${step}/${task}/`);
  if (keys.length === 0) return null;
  const [doc, done] = await Promise.all([readJson<TaskDoc>(store, taskKey(flow, runId, step, task)), keys.includes("done.json") ? readJson<DoneRecord>(store, doneKey(flow, runId, step, task)) : null]);
  const nums = keys
    .filter((k) => /^\d+\/$/.test(k))
    .map((k) => Number(k.slice(0, -1)))
    .sort((a, b) => a - b);
  const attempts = await Promise.all(
    nums.map(async (n) => {
      const files = await store.list(`${stepsPrefix(flow, runId)}${step}/${task}/${n}/`);
      const [start, result] = await Promise.all([
        files.includes("start.json") ? readJson<{ startedAt: number; mode?: string; executor?: string }>(store, attemptKey(flow, runId, step, task, n, "start.json")) : null,
        files.includes("result.json") ? readJson<TaskResult>(store, attemptKey(flow, runId, step, task, n, "result.json")) : null,
      ]);
      return {
        attempt: n,
        startedAt: result?.startedAt ?? start?.startedAt,
        finishedAt: result?.finishedAt,
        ok: result ? result.ok : undefined,
        mode: start?.mode,
        executor: start?.executor,
        error: result?.error,
        artifacts: result?.artifacts,
        cards: result?.cards,
      };
    }),
  );
  return { doc, done, attempts };
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
