/**
 * The one reader of a run's task and attempt records (`task.json`, `done.json`,
 * `<attempt>/start.json`, `<attempt>/result.json`), shared by the client (core/client.ts) and the
 * viewer (viewer/data.ts), and the writer of the run index that lets both read a finished run
 * in a few requests instead of a few per task.
 *
 * The run index (`flows/<Flow>/runs/<run>/index.json` and its parts `index/<n>.json`) is
 * written by the orchestrator as the run ends, just before the final `run.json`: the parts
 * while the run goes (each holds finished tasks, up to {@link PART_BYTES}), the manifest last.
 * It is a copy, never the truth: a reader takes it only when the manifest names the same final
 * status and end time as `run.json` (so an index whose run.json write was lost, or a run that
 * was killed, is not used), and otherwise reads the task records one by one, as for runs
 * stored before indexes existed. Nothing writes into a run's tasks after its final status:
 * a resume, a spin or a cached run writes a run of its own, and tags live apart (core/_tags.ts).
 * Runs with no index: abandoned ones (the orchestrator died; resuming writes a new, indexed run)
 * and production runs (Step Functions: no orchestrator process holds the records).
 */
import { getJson, mapLimit, putJson, RECORD_MAX } from "./_datastore.ts";
import { attemptKey, doneKey, runIndexKey, runIndexPartKey, stepPrefix, stepsPrefix, taskKey, taskPrefix } from "./_layout.ts";
import type { CardRef } from "./cards.ts";
import { isTsflowError } from "./errors.ts";
import type { DoneRecord } from "./task.ts";
import type { ArtifactRef, Datastore, ForeachFrame, TaskError, TaskResult } from "./types.ts";

/**
 * The task.json document. A task that recorded itself and succeeded quickly has no task.json:
 * its done.json carries this document (`DoneRecord.doc`), and every reader here falls back to it.
 */
export interface TaskDoc {
  step: string;
  taskId: string;
  parents: string[];
  foreach: ForeachFrame[];
  /** For a step that loops on itself (a switch case): which iteration, when above 0. */
  iteration?: number;
  createdAt?: number;
  /**
   * The first attempt's start, when the task recorded itself (TaskSpec.taskDoc): that attempt
   * then has no `start.json`, and no directory unless it stored logs, cards or a failure.
   */
  start?: { attempt: number; mode?: string; executor?: string; startedAt?: number };
}

/** One attempt of a task as lists and timelines show it. */
export interface AttemptInfo {
  attempt: number;
  startedAt?: number;
  finishedAt?: number;
  /** `undefined` while the attempt runs (or when it ended without any record). */
  ok?: boolean;
}

/** A task as every reader sees it. */
export interface TaskRecord {
  step: string;
  task: string;
  /** task.json, else the doc in done.json; `null` when neither has one or not asked for (`doc: false`). */
  doc: TaskDoc | null;
  /** done.json, when the task succeeded. */
  done: DoneRecord | null;
  /** The attempts that started here, ascending; a cloned task has none of its own. */
  attempts: AttemptInfo[];
  /** The attempt that counts (the successful one, else the last that started) and its result. */
  last: { attempt: number; result: TaskResult | null };
}

/** A task's step and id. */
export interface TaskId {
  step: string;
  task: string;
}

/** What a task's state is in a run whose effective status is `runState`. */
export type TaskState = "pending" | "running" | "succeeded" | "failed";

export function taskState(t: Pick<TaskRecord, "done" | "attempts">, runState: string): TaskState {
  if (t.done) return "succeeded";
  if (runState !== "running") return "failed";
  const last = t.attempts.at(-1);
  if (last?.ok === false) return "failed";
  return t.attempts.length > 0 ? "running" : "pending";
}

const byTaskId = (a: TaskId, b: TaskId) => Number(a.task) - Number(b.task) || (a.task < b.task ? -1 : a.task > b.task ? 1 : 0);
const decoder = new TextDecoder();

// ------------------------------------------------------------------------------ listings

/** The task ids of one step, or of every step of a run, by listing only, in task id order. */
export async function listTaskIds(store: Datastore, flow: string, runId: string, step?: string): Promise<TaskId[]> {
  const steps = step !== undefined ? [step] : (await store.list(stepsPrefix(flow, runId))).filter((e) => e.endsWith("/")).map((e) => e.slice(0, -1));
  const ids = (await Promise.all(steps.map(async (s) => (await store.list(stepPrefix(flow, runId, s))).filter((e) => e.endsWith("/")).map((e) => ({ step: s, task: e.slice(0, -1) }))))).flat();
  return ids.sort(byTaskId);
}

/** The attempt numbers that started (a directory, or the start in task.json or done.json's doc), ascending. */
export async function listAttempts(store: Datastore, flow: string, runId: string, step: string, task: string): Promise<number[]> {
  const entries = await store.list(taskPrefix(flow, runId, step, task));
  const nums = attemptNumbers(entries);
  const doc =
    entries.includes("task.json") ? await readRecord<TaskDoc>(store, taskKey(flow, runId, step, task)).catch(() => null)
    : entries.includes("done.json") ? docOf(await readDone(store, doneKey(flow, runId, step, task), true))
    : null;
  return withStart(nums, startOf(doc));
}

/** The doc a task that recorded itself keeps in its done.json (it may have no task.json). */
export const docOf = (done: DoneRecord | null | undefined): TaskDoc | null => (done?.doc && typeof done.doc === "object" && !done.clonedFrom ? done.doc : null);

/**
 * A done record as readers show it: the result, without the doc it may carry (that is the
 * record's `doc`), so a task reads the same from its files as from the run index.
 */
const resultOf = (done: DoneRecord | null): DoneRecord | null => {
  if (!done || done.doc === undefined) return done;
  const { doc: _doc, ...rest } = done;
  return rest;
};

/**
 * A task's doc: its task.json, else the one in its done.json; `null` when neither has one.
 * For readers of one task (spin, @cached); lists read through {@link readTasks}.
 */
export async function readTaskDoc(store: Datastore, flow: string, runId: string, step: string, task: string): Promise<TaskDoc | null> {
  return (await readRecord<TaskDoc>(store, taskKey(flow, runId, step, task))) ?? docOf(await readDone(store, doneKey(flow, runId, step, task), false));
}

/** The start record a task that recorded itself keeps in its task.json. */
const startOf = (doc: TaskDoc | null | undefined) => (doc?.start && typeof doc.start.attempt === "number" ? doc.start : undefined);
/** Attempt numbers with the one task.json records, when it has no directory. */
const withStart = (nums: number[], start: TaskDoc["start"]) => (start && !nums.includes(start.attempt) ? [start.attempt, ...nums].sort((a, b) => a - b) : nums);

const attemptNumbers = (entries: string[]) =>
  entries
    .filter((e) => /^\d+\/$/.test(e))
    .map((e) => Number(e.slice(0, -1)))
    .sort((a, b) => a - b);

// ------------------------------------------------------------------------------ one record at a time

/**
 * `getJson` capped at {@link RECORD_MAX}, but through `getSync` when the store has one: for
 * thousands of small documents on a local disk a synchronous read is several times faster than
 * a round trip through the thread pool.
 */
export async function readRecord<T>(store: Datastore, key: string): Promise<T | null> {
  if (!store.getSync) return getJson<T>(store, key, RECORD_MAX);
  let bytes: Uint8Array | null;
  try {
    // A record over RECORD_MAX is refused before it is read (fs looks at its size first).
    bytes = store.getSync(key, { maxBytes: RECORD_MAX });
  } catch (e) {
    if (isTsflowError(e) && e.code === "TooLarge") return getJson<T>(store, key, RECORD_MAX); // named as metadata
    throw e;
  }
  // Empty: a record written by one process and synced by another (a task's done.json) that a
  // power loss caught in between; it was never committed (docs/reliability.md, "Power loss").
  if (bytes === null || bytes.byteLength === 0) return null;
  if (bytes.byteLength > RECORD_MAX) return getJson<T>(store, key, RECORD_MAX); // the same TooLarge error
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch {
    return getJson<T>(store, key); // the same clear error as everywhere else
  }
}

/**
 * `done.json` is written once, last, and never changes (a resumed run gets a new id), so it is
 * cached per datastore: a live page over a 10,000-task run re-reads only what is new.
 */
const doneCache = new WeakMap<Datastore, Map<string, DoneRecord>>();
const DONE_CACHE_MAX = 200_000;

function remember(store: Datastore, key: string, done: DoneRecord | null): DoneRecord | null {
  if (!done) return null;
  let c = doneCache.get(store);
  if (!c) doneCache.set(store, (c = new Map()));
  if (c.size >= DONE_CACHE_MAX) c.clear();
  c.set(key, done);
  return done;
}

/** A done record; `null` when missing. A damaged one throws, unless `lenient` (listings skip it). */
async function readDone(store: Datastore, key: string, lenient: boolean): Promise<DoneRecord | null> {
  const hit = doneCache.get(store)?.get(key);
  if (hit) return hit;
  const read = readRecord<DoneRecord>(store, key);
  return remember(store, key, lenient ? await read.catch(() => null) : await read);
}

/** Options of the per-task reads. */
export interface ReadTaskOptions {
  /** Read task.json too (parents, foreach position). Default true; a run page does without. */
  doc?: boolean;
  /**
   * A listing shows a task whose records are damaged as having none (the default); the client
   * asked for one task says what is damaged.
   */
  lenient?: boolean;
}

/**
 * One task from its own records: done.json says which attempt succeeded, so a task that
 * succeeded on its first attempt costs one read (two with task.json); only unfinished or
 * retried tasks have their directory listed and their attempts read. `null` when the task has
 * no records at all.
 */
export async function readTask(store: Datastore, flow: string, runId: string, step: string, task: string, options: ReadTaskOptions = {}, knownDone?: DoneRecord | null): Promise<TaskRecord | null> {
  const lenient = options.lenient ?? true;
  const soft = <T>(p: Promise<T | null>) => (lenient ? p.catch(() => null) : p);
  // A done record that carries the doc spares the read of task.json (most tasks have none then).
  const [file, marker] = await Promise.all([
    options.doc === false || docOf(knownDone) ? null : soft(readRecord<TaskDoc>(store, taskKey(flow, runId, step, task))),
    knownDone !== undefined ? knownDone : readDone(store, doneKey(flow, runId, step, task), lenient),
  ]);
  const doc = options.doc === false ? null : (file ?? docOf(marker));
  const done = resultOf(marker);
  const own = done && !done.clonedFrom ? { attempt: done.attempt, startedAt: done.startedAt, finishedAt: done.finishedAt, ok: true } : undefined;
  // The common case, a task that succeeded on its first attempt, needs nothing more.
  if (done && done.attempt === 0) return { step, task, doc, done, attempts: own ? [own] : [], last: { attempt: 0, result: done } };
  const entries = await store.list(taskPrefix(flow, runId, step, task));
  if (!doc && !done && entries.length === 0) return null;
  const results = new Map<number, TaskResult | null>();
  const nums = attemptNumbers(entries);
  // A task that recorded itself keeps its first attempt's start in task.json (read here when
  // the caller did not ask for it and that attempt has no directory).
  const inDoc = startOf(doc) ?? (options.doc === false && !nums.includes(0) && entries.includes("task.json") ? startOf(await soft(readRecord<TaskDoc>(store, taskKey(flow, runId, step, task)))) : undefined);
  const attempts = await Promise.all(
    withStart(nums, inDoc).map(async (n): Promise<AttemptInfo> => {
      if (own && own.attempt === n) return own;
      if (inDoc?.attempt === n && !nums.includes(n)) return attemptInfo(n, inDoc.startedAt, null);
      const [start, result] = await Promise.all([
        readRecord<{ startedAt?: number }>(store, attemptKey(flow, runId, step, task, n, "start.json")).catch(() => null),
        soft(readRecord<TaskResult>(store, attemptKey(flow, runId, step, task, n, "result.json"))),
      ]);
      results.set(n, result);
      return attemptInfo(n, start?.startedAt, result);
    }),
  );
  if (options.doc !== false && !doc && !done && attempts.length === 0) return null;
  const lastNo = done ? done.attempt : (attempts.at(-1)?.attempt ?? 0);
  return { step, task, doc, done, attempts, last: { attempt: lastNo, result: done ?? results.get(lastNo) ?? null } };
}

const attemptInfo = (attempt: number, startedAt: number | undefined, result: TaskResult | null | undefined): AttemptInfo => ({
  attempt,
  startedAt: result?.startedAt ?? startedAt,
  finishedAt: result?.finishedAt,
  ok: result ? result.ok : undefined,
});

/**
 * Many tasks from their own records, bounded concurrency, in the order given (`null` for a task
 * with no records). With a synchronous store every done.json is read in one loop first: 10,000
 * promises cost more than the reads themselves.
 */
export async function readTasks(store: Datastore, flow: string, runId: string, ids: readonly TaskId[], options: ReadTaskOptions = {}): Promise<(TaskRecord | null)[]> {
  const lenient = options.lenient ?? true;
  const cache = doneCache.get(store);
  const dones = store.getSync
    ? ids.map(({ step, task }) => {
        const key = doneKey(flow, runId, step, task);
        const hit = cache?.get(key);
        if (hit) return hit;
        try {
          const bytes = store.getSync!(key, { maxBytes: RECORD_MAX });
          if (!bytes || bytes.byteLength === 0 || bytes.byteLength > RECORD_MAX) return null;
          return remember(store, key, JSON.parse(decoder.decode(bytes)) as DoneRecord);
        } catch (e) {
          if (lenient) return null;
          throw e;
        }
      })
    : undefined;
  return mapLimit(ids, 32, ({ step, task }, i) => readTask(store, flow, runId, step, task, options, dones?.[i]));
}

/** One attempt in full, for a task's own page: how it ran and what it produced. */
export interface AttemptDetail extends AttemptInfo {
  mode?: string;
  executor?: string;
  error?: TaskError;
  artifacts?: Record<string, ArtifactRef>;
  cards?: CardRef[];
}

/**
 * Every attempt of one task with its start and end records (start.json, result.json). An
 * attempt that committed itself (TaskSpec.commit) has no result.json: its task's `done`
 * record is its result.
 */
export async function readAttemptDetails(
  store: Datastore,
  flow: string,
  runId: string,
  step: string,
  task: string,
  entries?: string[],
  done?: DoneRecord | null,
  doc?: TaskDoc | null,
): Promise<AttemptDetail[]> {
  const dirs = attemptNumbers(entries ?? (await store.list(taskPrefix(flow, runId, step, task))));
  const inDoc = startOf(doc);
  return Promise.all(
    withStart(dirs, inDoc).map(async (n): Promise<AttemptDetail> => {
      const committed = done && !done.clonedFrom && done.attempt === n ? done : null;
      if (inDoc?.attempt === n && !dirs.includes(n)) {
        return { ...attemptInfo(n, inDoc.startedAt, committed), mode: inDoc.mode, executor: inDoc.executor, artifacts: committed?.artifacts, cards: committed?.cards };
      }
      const files = await store.list(`${taskPrefix(flow, runId, step, task)}${n}/`);
      const [start, result] = await Promise.all([
        files.includes("start.json") ? readRecord<{ startedAt?: number; mode?: string; executor?: string }>(store, attemptKey(flow, runId, step, task, n, "start.json")) : null,
        files.includes("result.json") ? readRecord<TaskResult>(store, attemptKey(flow, runId, step, task, n, "result.json")) : committed,
      ]);
      const begun = start ?? (inDoc?.attempt === n ? inDoc : null);
      return { ...attemptInfo(n, begun?.startedAt, result), mode: begun?.mode, executor: begun?.executor, error: result?.error, artifacts: result?.artifacts, cards: result?.cards };
    }),
  );
}

/** One task in full (a task's own page): its records and every attempt's; `null` when it has no records. */
export async function readTaskDetail(store: Datastore, flow: string, runId: string, step: string, task: string): Promise<{ doc: TaskDoc | null; done: DoneRecord | null; attempts: AttemptDetail[] } | null> {
  const keys = await store.list(taskPrefix(flow, runId, step, task));
  if (keys.length === 0) return null;
  const [own, marker] = await Promise.all([
    keys.includes("task.json") ? readRecord<TaskDoc>(store, taskKey(flow, runId, step, task)) : null,
    keys.includes("done.json") ? readRecord<DoneRecord>(store, doneKey(flow, runId, step, task)) : null,
  ]);
  const doc = own ?? docOf(marker);
  const done = resultOf(marker);
  const attempts = await readAttemptDetails(store, flow, runId, step, task, keys, done, doc);
  return { doc, done, attempts };
}

// ------------------------------------------------------------------------------ the run index

/** The manifest of a run index (`index.json`), written after its parts. */
export interface RunIndexManifest {
  version: 1;
  runId: string;
  /** The final status and end time of run.json this index was written with. */
  status: string;
  finishedAt: number;
  /** Tasks in all parts. */
  tasks: number;
  /**
   * Part `n` is `index/<n>.json`; each holds tasks of one step only, so a reader of one step
   * (the end step's artifacts) loads its parts and nothing of a 100,000-task foreach.
   */
  parts: { step: string; tasks: number }[];
}

/**
 * One task in an index part. `attempts` leaves out the attempt done.json already describes (most
 * tasks have no other); `result` is the last attempt's result, kept only for a task that did not
 * succeed.
 */
interface IndexEntry {
  doc: TaskDoc | null;
  done?: DoneRecord;
  attempts?: AttemptInfo[];
  result?: TaskResult;
}

/**
 * A part is written once it holds this many bytes of JSON (the last one with whatever is left):
 * a 10,000-task foreach step fits in one (about 500 bytes a task), a reader's cap (RECORD_MAX)
 * is twice as much, and the orchestrator holds at most this much per step meanwhile.
 */
export const PART_BYTES = 8 << 20;
/** A reader loads at most this many tasks from an index (about 100 MB of records); beyond, task by task. */
export const INDEX_MAX_TASKS = 250_000;

/**
 * The manifest of a finished run's index; `null` when the run has no usable one (none, an older
 * run, damaged, or written for another final record than `run`'s): read task by task then.
 */
export async function readIndexManifest(store: Datastore, flow: string, runId: string, run: { status?: unknown; finishedAt?: unknown }): Promise<RunIndexManifest | null> {
  if ((run.status !== "succeeded" && run.status !== "failed") || typeof run.finishedAt !== "number") return null;
  const m = await getJson<RunIndexManifest>(store, runIndexKey(flow, runId), RECORD_MAX).catch(() => null);
  if (m?.version !== 1 || m.runId !== runId || m.status !== run.status || m.finishedAt !== run.finishedAt) return null;
  if (!Array.isArray(m.parts) || !m.parts.every((p) => typeof p?.step === "string" && Number.isInteger(p.tasks) && p.tasks >= 0)) return null;
  if (m.parts.reduce((n, p) => n + p.tasks, 0) !== m.tasks) return null;
  return m;
}

/**
 * The tasks of an indexed run (of `steps` only, when given), in task id order; `null` when a
 * part is missing or damaged, or they are more than `maxTasks`.
 */
export async function readIndexedTasks(store: Datastore, flow: string, runId: string, manifest: RunIndexManifest, options: { steps?: readonly string[]; maxTasks?: number } = {}): Promise<TaskRecord[] | null> {
  const wanted = manifest.parts.map((p, i) => ({ ...p, i })).filter((p) => !options.steps || options.steps.includes(p.step));
  if (wanted.reduce((n, p) => n + p.tasks, 0) > (options.maxTasks ?? INDEX_MAX_TASKS)) return null;
  const parts = await mapLimit(wanted, 8, (p) => getJson<IndexEntry[]>(store, runIndexPartKey(flow, runId, p.i), RECORD_MAX).catch(() => null));
  const out: TaskRecord[] = [];
  for (const [k, part] of parts.entries()) {
    if (!Array.isArray(part) || part.length !== wanted[k]!.tasks) return null;
    for (const e of part) {
      const t = fromEntry(e);
      if (!t || t.step !== wanted[k]!.step) return null;
      out.push(t);
    }
  }
  return out.sort(byTaskId);
}

/** {@link readIndexManifest} then {@link readIndexedTasks}: every task of a finished run, or `null`. */
export async function readRunIndex(store: Datastore, flow: string, runId: string, run: { status?: unknown; finishedAt?: unknown }, options: { steps?: readonly string[]; maxTasks?: number } = {}): Promise<TaskRecord[] | null> {
  const manifest = await readIndexManifest(store, flow, runId, run);
  return manifest && readIndexedTasks(store, flow, runId, manifest, options);
}

function fromEntry(e: IndexEntry): TaskRecord | null {
  const step = e?.doc?.step;
  const task = e?.doc?.taskId;
  if (typeof step !== "string" || typeof task !== "string") return null;
  const done = e.done ?? null;
  const attempts = [...(e.attempts ?? [])];
  if (done && !done.clonedFrom) attempts.push({ attempt: done.attempt, startedAt: done.startedAt, finishedAt: done.finishedAt, ok: true });
  attempts.sort((a, b) => a.attempt - b.attempt);
  const lastNo = done ? done.attempt : (attempts.at(-1)?.attempt ?? 0);
  return { step, task, doc: e.doc ?? null, done, attempts, last: { attempt: lastNo, result: done ?? e.result ?? null } };
}

/**
 * Collects a run's task records as the orchestrator writes them and stores them as the run
 * index. Memory stays bounded: a finished task is serialized into the current part at once, and
 * a part is written when it holds {@link PART_BYTES}; only tasks still running are held as
 * objects. Failures to write are reported to `onError` and never fail the run (readers then
 * read task by task).
 */
export class RunIndexWriter {
  private readonly pending = new Map<string, { doc: TaskDoc; attempts: AttemptInfo[]; result?: TaskResult }>();
  /** The part being filled, per step. */
  private readonly filling = new Map<string, { texts: string[]; bytes: number }>();
  private readonly parts: RunIndexManifest["parts"] = [];
  private tasks = 0;
  private readonly writes: Promise<boolean>[] = [];

  private readonly onError: (e: unknown) => void;

  constructor(
    private readonly store: Datastore,
    private readonly flow: string,
    private readonly runId: string,
    /** Told of the first failed write only (a storm fails every part alike). */
    onError: (e: unknown) => void = () => {},
  ) {
    let told = false;
    this.onError = (e) => {
      if (!told) onError(e);
      told = true;
    };
  }

  /** task.json was written. */
  begin(doc: TaskDoc): void {
    this.pending.set(`${doc.step}/${doc.taskId}`, { doc, attempts: [] });
  }

  /** An attempt ended without success (its result.json, or the end record the orchestrator wrote, is `result`). */
  attempt(step: string, task: string, attempt: number, startedAt: number, result: TaskResult | null): void {
    const p = this.pending.get(`${step}/${task}`);
    if (!p || result?.ok) return; // a success is described by done.json (or see undone)
    p.attempts.push(attemptInfo(attempt, startedAt, result));
    p.result = result ?? undefined;
  }

  /** done.json was written: the task is over. */
  done(step: string, task: string, done: DoneRecord): void {
    const key = `${step}/${task}`;
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    this.add(step, { doc: p.doc, done, ...(p.attempts.length ? { attempts: p.attempts } : {}) });
  }

  /** An attempt succeeded but its done.json could not be written: it reads as an ended attempt. */
  undone(step: string, task: string, attempt: number, result: TaskResult): void {
    const p = this.pending.get(`${step}/${task}`);
    if (!p) return;
    p.attempts.push(attemptInfo(attempt, result.startedAt, result));
    p.result = result;
  }

  private add(step: string, entry: IndexEntry): void {
    const text = JSON.stringify(entry);
    let part = this.filling.get(step);
    if (!part) this.filling.set(step, (part = { texts: [], bytes: 0 }));
    part.texts.push(text);
    part.bytes += text.length;
    this.tasks++;
    if (part.bytes >= PART_BYTES) this.flush(step);
  }

  private flush(step: string): void {
    const part = this.filling.get(step);
    if (!part || part.texts.length === 0) return;
    this.filling.delete(step);
    const key = runIndexPartKey(this.flow, this.runId, this.parts.length);
    this.parts.push({ step, tasks: part.texts.length });
    this.writes.push(
      this.store.put(key, new TextEncoder().encode(`[${part.texts.join(",")}]`)).then(
        () => true,
        (e) => {
          this.onError(e);
          return false;
        },
      ),
    );
  }

  /**
   * Writes what is left (tasks that never succeeded, as they stand) and the manifest naming the
   * run's final record. Call it before writing that record, so a run that reads as finished
   * has its index already. Resolves whether the index is complete.
   */
  async finish(final: { status: string; finishedAt: number }): Promise<boolean> {
    for (const p of this.pending.values()) this.add(p.doc.step, { doc: p.doc, ...(p.attempts.length ? { attempts: p.attempts } : {}), ...(p.result ? { result: p.result } : {}) });
    this.pending.clear();
    for (const step of [...this.filling.keys()]) this.flush(step);
    if (!(await Promise.all(this.writes)).every(Boolean)) return false;
    const manifest: RunIndexManifest = { version: 1, runId: this.runId, status: final.status, finishedAt: final.finishedAt, tasks: this.tasks, parts: this.parts };
    try {
      await putJson(this.store, runIndexKey(this.flow, this.runId), manifest);
      return true;
    } catch (e) {
      this.onError(e);
      return false;
    }
  }
}
