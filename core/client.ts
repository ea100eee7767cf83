/**
 * The client API: read runs back as `Flow → Run → Step → Task → Artifact` (Metaflow's shape).
 *
 * Portable: it takes a Datastore and a Host (mod.ts wires the default ones). Nothing is read
 * before it is asked for: listing runs reads the newest run ids from the flow's time index (a
 * few small listings, however many runs), then `run.json` only for the runs actually returned,
 * newest first; an artifact's bytes
 * are loaded only by `value()`/`data()`.
 *
 * Listings (`flow.runs()`, `step.tasks()`) are {@link Listing}s: `for await` them to stop early
 * (nothing more is read), or `await` them for an array.
 */
import { getJson, mapLimit } from "./_datastore.ts";
import { type AttemptRef, readLog, readLogChunks, readLogTail } from "./_logs.ts";
import { doneKey, flowsPrefix, runsPrefix, stepsPrefix } from "./_layout.ts";
import { effectiveStatus, listRunIds, newestFirst, readRun, runIdsNewestFirst } from "./_status.ts";
import { changeTags, checkTag, currentTags } from "./_tags.ts";
import { listAttempts, listTaskIds, readIndexedTasks, readIndexManifest, readTask, readTasks, type RunIndexManifest, type TaskDoc, type TaskRecord } from "./_tasks.ts";
import { type LoadLimits, loadArtifact } from "./artifacts.ts";
import { type CardData, type CardRef, loadCardData, loadCardDocument, readCardRefs } from "./cards.ts";
import { TsflowError } from "./errors.ts";
import { type Artifacts, runningTask } from "./flow.ts";
import type { DoneRecord } from "./task.ts";
import type { ArtifactRef, Datastore, ForeachFrame, Host, TaskError, TaskResult } from "./types.ts";

export type { TaskDoc };

/** The run.json document, as the runtime writes it. */
export interface RunDoc {
  flow: string;
  runId: string;
  status: string;
  createdAt: number;
  finishedAt?: number;
  user?: string;
  tags?: string[];
  systemTags?: string[];
  parameters?: Record<string, ArtifactRef>;
  parameterValues?: Record<string, unknown>;
  originRunId?: string;
  error?: TaskError & { pathspec?: string };
  graph?: { order: string[]; steps: Record<string, StepSummary> };
  [key: string]: unknown;
}

/** One step of the graph summary stored in run.json (see `summarizeGraph` in runtime.ts). */
export interface StepSummary {
  type: string;
  next: string[];
  foreach?: string;
  condition?: string;
  cases?: Record<string, string>;
  isJoin?: boolean;
  decorators?: string[];
}

/** What every client object shares: where to read and which namespace applies. */
export interface ClientContext {
  store(): Promise<Datastore>;
  host: Host;
  /** `undefined` = the default (`user:<current user>`), `null` = every run. */
  namespace: string | null | undefined;
}

/** Artifact values when the flow class is known, else any name. */
export type DataOf<F> = unknown extends F ? Record<string, unknown> : Artifacts<F>;

const PART = /^[A-Za-z0-9_.:@=+-]+$/;

/**
 * Splits and checks a pathspec `Flow[/run[/step[/task]]]` before any key is built from it:
 * no empty parts, no `.`/`..`, no absolute paths, no odd characters.
 */
export function parsePathspec(pathspec: string, min = 1, max = 4): string[] {
  const parts = pathspec.split("/");
  const bad = parts.find((p) => !PART.test(p) || p === "." || p === "..");
  if (pathspec.startsWith("/") || bad !== undefined) {
    throw new TsflowError("BadOption", `pathspec '${pathspec.slice(0, 200)}' is invalid: ${bad === undefined || bad === "" ? "it has an empty part" : `part '${bad.slice(0, 60)}' is not allowed`} (expected Flow/run/step/task)`);
  }
  if (parts.length < min || parts.length > max) {
    const shapes = ["Flow", "Flow/run", "Flow/run/step", "Flow/run/step/task"];
    throw new TsflowError("BadOption", `pathspec '${pathspec}' should look like ${shapes.slice(min - 1, max).join(" or ")}`);
  }
  return parts;
}

/** Run ids newest first: they start with their creation time in ms, so longer is newer, then lexical. */
export { newestFirst };

/** An async listing that can be iterated lazily or awaited as an array. */
export class Listing<T> implements AsyncIterable<T>, PromiseLike<T[]> {
  constructor(private readonly source: () => AsyncGenerator<T>) {}
  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.source();
  }
  /** Everything, as an array. */
  async toArray(): Promise<T[]> {
    const out: T[] = [];
    for await (const x of this.source()) out.push(x);
    return out;
  }
  // biome-ignore lint/suspicious/noThenProperty: awaiting a listing gives its array, on purpose
  then<R1 = T[], R2 = never>(onfulfilled?: ((value: T[]) => R1 | PromiseLike<R1>) | null, onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null): Promise<R1 | R2> {
    return this.toArray().then(onfulfilled, onrejected);
  }
}

/** Options of {@link Flow.runs}. */
export interface RunsOptions {
  /** Only runs carrying every one of these tags (user or system tags). */
  tags?: string[];
  /** At most this many runs. */
  limit?: number;
  /** Only successful runs. */
  successful?: boolean;
  /** Told about each run passed over because its run.json cannot be read (damaged). */
  onDamaged?: (runId: string, error: Error) => void;
}

/** Makes a client over a datastore (or an opener of one, asked on every read; it should cache). */
export function createClient(store: Datastore | (() => Promise<Datastore>), host: Host) {
  const ctx: ClientContext = {
    // A function is asked on every read (it caches what it opens): the default client's answer
    // changes while a task runs, to the datastore of the task's own run.
    store: typeof store === "function" ? store : () => Promise.resolve(store),
    host,
    namespace: undefined,
  };
  return {
    context: ctx,
    Flow: {
      /** A flow by name; typed when the flow class is given: `Flow.get<PetsFlow>("PetsFlow")`. */
      get<F = unknown>(name: string): Flow<F> {
        parsePathspec(name, 1, 1);
        return new Flow<F>(name, ctx);
      },
      /** Every flow with runs in the datastore, by name. */
      async list(): Promise<Flow[]> {
        const s = await ctx.store();
        const entries = await s.list(flowsPrefix());
        return entries.filter((e) => e.endsWith("/") && PART.test(e.slice(0, -1))).map((e) => new Flow(e.slice(0, -1), ctx));
      },
    },
    /**
     * Sets the namespace of later reads and returns the previous one: `user:alice`, any tag, or
     * `null` for every run. The default is `user:<current user>`.
     */
    namespace(ns: string | null): string | null {
      const prev = currentNamespace(ctx);
      ctx.namespace = ns;
      return prev;
    },
    /** The namespace in force. */
    getNamespace: () => currentNamespace(ctx),
    /** Whatever a pathspec names: a Flow, Run, Step or Task (namespace not applied). */
    async get(pathspec: string): Promise<Flow | Run | Step | Task> {
      const [flow, run, step, task] = parsePathspec(pathspec);
      const f = new Flow(flow!, ctx);
      if (run === undefined) {
        await f.ensureExists();
        return f;
      }
      const r = await f.run(run);
      if (step === undefined) return r;
      const st = r.step(step);
      return task === undefined ? st : st.task(task);
    },
  };
}

export type Client = ReturnType<typeof createClient>;

function currentNamespace(ctx: ClientContext): string | null {
  if (ctx.namespace !== undefined) return ctx.namespace;
  // Inside a task the default is the run's namespace, not the account the task runs under (a
  // container or a Batch job is often root).
  const ns = runningTask()?.current.namespace;
  return ns !== undefined ? ns : `user:${ctx.host.username()}`;
}

/** A flow: its runs, newest first. */
export class Flow<F = unknown> {
  readonly pathspec: string;
  constructor(
    readonly name: string,
    private readonly ctx: ClientContext,
  ) {
    this.pathspec = name;
  }

  /** `Flow PetsFlow` */
  toString(): string {
    return `Flow ${this.name}`;
  }

  /** @internal throws when the flow has no runs at all. */
  async ensureExists(): Promise<void> {
    const s = await this.ctx.store();
    const ids = await s.list(runsPrefix(this.name));
    if (ids.length === 0) throw new TsflowError("NotFound", `flow '${this.name}' has no runs in ${s.url}`);
  }

  /** Run ids, newest first (no run.json read). */
  async runIds(): Promise<string[]> {
    return listRunIds(await this.ctx.store(), this.name, (e) => PART.test(e));
  }

  /**
   * Runs newest first, in the current namespace, optionally filtered by tags. Lazy: run.json
   * is read a few at a time ahead of the consumer, only for the runs it reaches.
   */
  runs(options: RunsOptions = {}): Listing<Run<F>> {
    return new Listing(() => this.iterateRuns(options));
  }

  private async *iterateRuns(options: RunsOptions): AsyncGenerator<Run<F>> {
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0) return;
    // Newest first from the flow's time index: the newest runs cost a few small listings
    // however many runs the flow has (core/_status.ts).
    const ids = runIdsNewestFirst(await this.ctx.store(), this.name, (e) => PART.test(e));
    const ns = currentNamespace(this.ctx);
    const wanted = options.tags ?? [];
    let given = 0;
    // Read ahead in small batches: the common asks (latest, newest 20) stop after the first.
    const BATCH = 8;
    for (let done = false; !done; ) {
      const next: string[] = [];
      while (next.length < BATCH) {
        const r = await ids.next();
        if (r.done) {
          done = true;
          break;
        }
        next.push(r.value);
      }
      const batch = await mapLimit(next, BATCH, (id) =>
        this.loadRun(id).catch((e: Error) => {
          // One damaged record must not hide every other run: skip it, say so if asked.
          options.onDamaged?.(id, e);
          return null;
        }),
      );
      for (const run of batch) {
        if (!run) continue;
        const all = [...run.tags, ...run.systemTags];
        if (ns !== null && !all.includes(ns)) continue;
        if (!wanted.every((t) => all.includes(t))) continue;
        if (options.successful && !run.successful) continue;
        yield run;
        if (++given >= limit) return;
      }
    }
  }

  /** A run by id (the namespace does not hide a run asked for by id). */
  async run(id: string): Promise<Run<F>> {
    parsePathspec(id, 1, 1);
    const run = await this.loadRun(id);
    if (!run) {
      const s = await this.ctx.store();
      throw new TsflowError("NotFound", `flow '${this.name}' has no run '${id}' in ${s.url}`);
    }
    return run;
  }

  private async loadRun(id: string): Promise<Run<F> | null> {
    const s = await this.ctx.store();
    const stored = await readRun<RunDoc>(s, this.name, id, { host: this.ctx.host });
    if (!stored) return null;
    return new Run<F>(this.name, id, { ...stored.doc, tags: stored.tags }, stored.heartbeatMs, this.ctx);
  }

  /** The newest run in the namespace, or `null`. */
  async latestRun(): Promise<Run<F> | null> {
    for await (const r of this.runs({ limit: 1 })) return r;
    return null;
  }

  /** The newest successful run in the namespace, or `null`. */
  async latestSuccessfulRun(): Promise<Run<F> | null> {
    for await (const r of this.runs({ limit: 1, successful: true })) return r;
    return null;
  }
}

/** One run of a flow. */
export class Run<F = unknown> {
  readonly id: string;
  readonly pathspec: string;
  /** `running`, `succeeded` or `failed`; a run whose orchestrator died reads as `failed` (see {@link abandoned}). */
  readonly status: "running" | "succeeded" | "failed";
  /** The orchestrator died without writing the final status (heartbeat older than 60 s). */
  readonly abandoned: boolean;
  readonly successful: boolean;
  readonly finished: boolean;
  readonly createdAt: Date;
  readonly finishedAt: Date | undefined;
  /** Parameter values by parameter name, as shown to users (an IncludeFile is `<N characters>`). */
  readonly parameters: Record<string, unknown>;
  /** User tags, current as of reading the run (and after this object's own tag changes). */
  readonly tags: string[];
  readonly systemTags: string[];
  readonly originRunId: string | undefined;
  /** The first failure, with the task's pathspec (`run/step/task`). */
  readonly error: (TaskError & { pathspec?: string }) | undefined;
  /** Steps in graph order. */
  readonly stepNames: string[];

  constructor(
    readonly flow: string,
    id: string,
    /** The run.json document. */
    readonly doc: RunDoc,
    heartbeatMs: number | undefined,
    private readonly ctx: ClientContext,
  ) {
    this.id = id;
    this.pathspec = `${flow}/${id}`;
    const eff = effectiveStatus(doc, heartbeatMs, Date.now(), ctx.host.processAlive?.bind(ctx.host));
    this.abandoned = eff === "abandoned";
    this.status = eff === "abandoned" ? "failed" : eff;
    this.successful = this.status === "succeeded";
    this.finished = this.status !== "running";
    this.createdAt = new Date(doc.createdAt);
    this.finishedAt = typeof doc.finishedAt === "number" ? new Date(doc.finishedAt) : undefined;
    this.parameters = doc.parameterValues ?? {};
    this.tags = doc.tags ?? [];
    this.systemTags = doc.systemTags ?? [];
    this.originRunId = doc.originRunId;
    this.error = doc.error;
    this.stepNames = doc.graph?.order ?? [];
  }

  /** `Run PetsFlow/3 succeeded in 1.2 s (greeting=hi)`: one line, for consoles. */
  toString(): string {
    const took = this.finishedAt ? ` in ${fmtMs(this.finishedAt.getTime() - this.createdAt.getTime())}` : "";
    const params = Object.entries(this.parameters).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
    const p = params.join(", ");
    return `Run ${this.pathspec} ${this.status}${took}${p ? ` (${p.length > 80 ? `${p.slice(0, 77)}…` : p})` : ""}${this.error ? ` — ${this.error.pathspec ?? ""} ${this.error.type}: ${this.error.message.split("\n")[0]}` : ""}`;
  }

  /** A step by name (it may have no tasks yet). */
  step(name: string): Step<F> {
    parsePathspec(name, 1, 1);
    if (this.stepNames.length > 0 && !this.stepNames.includes(name)) {
      throw new TsflowError("NotFound", `run ${this.pathspec} has no step '${name}' (steps: ${this.stepNames.join(", ")})`);
    }
    return new Step<F>(this, name, this.ctx);
  }

  private manifest: Promise<RunIndexManifest | null> | undefined;
  private readonly indexed = new Map<string, Promise<TaskRecord[] | null>>();

  /** @internal The manifest of a finished run's index, read once per Run object; `null` when it has none. */
  indexManifest(): Promise<RunIndexManifest | null> {
    if (!this.finished || this.abandoned) return Promise.resolve(null);
    this.manifest ??= this.ctx.store().then((s) => readIndexManifest(s, this.flow, this.id, this.doc));
    return this.manifest;
  }

  /**
   * @internal A step's tasks from the run index (core/_tasks.ts), read once per Run object;
   * `null` when the run has none (running, abandoned, stored before indexes): read task by task.
   */
  async taskIndex(step: string): Promise<TaskRecord[] | null> {
    let p = this.indexed.get(step);
    if (!p) {
      p = this.indexManifest().then(async (m) => m && readIndexedTasks(await this.ctx.store(), this.flow, this.id, m, { steps: [step] }));
      this.indexed.set(step, p);
    }
    return p;
  }

  /** The steps that have tasks, in graph order. */
  async steps(): Promise<Step<F>[]> {
    const s = await this.ctx.store();
    const index = await this.indexManifest();
    const present = new Set(index ? index.parts.map((p) => p.step) : (await s.list(stepsPrefix(this.flow, this.id))).filter((e) => e.endsWith("/")).map((e) => e.slice(0, -1)));
    const order = this.stepNames.length > 0 ? this.stepNames.filter((n) => present.has(n)) : [...present].sort();
    return order.map((n) => new Step<F>(this, n, this.ctx));
  }

  /** The end step's task (`null` when the run did not get there). */
  async endTask(): Promise<Task<F> | null> {
    const tasks = await new Step<F>(this, "end", this.ctx).tasks();
    return tasks.find((t) => t.successful) ?? null;
  }

  /**
   * Adds user tags (Metaflow's `run.add_tag(s)`), also while the run is going: each change is a
   * document of its own, so the run's end never undoes it (core/_tags.ts). Resolves with the
   * run's tags after the change.
   */
  async addTag(...tags: string[]): Promise<string[]> {
    return this.changeTags(tags, []);
  }

  /** Removes user tags; a tag the run does not have, or a system tag, is an error and nothing changes. */
  async removeTag(...tags: string[]): Promise<string[]> {
    return this.changeTags([], tags);
  }

  /** Replaces user tag `from` by `to` in one change. */
  async replaceTag(from: string, to: string): Promise<string[]> {
    return this.changeTags([to], [from]);
  }

  private async changeTags(add: string[], remove: string[]): Promise<string[]> {
    for (const t of [...add, ...remove]) checkTag(t);
    if (add.length + remove.length === 0) throw new TsflowError("BadOption", `give the tags to change on run ${this.pathspec}`);
    const s = await this.ctx.store();
    const now = await currentTags(s, this.flow, this.id, this.doc.tags);
    const system = remove.filter((t) => this.systemTags.includes(t) && !now.includes(t));
    if (system.length) throw new TsflowError("BadOption", `${system.map((t) => `'${t}'`).join(", ")} ${system.length > 1 ? "are system tags" : "is a system tag"} of ${this.pathspec}, set by tsflow: it cannot be removed`);
    // Removing a tag the run does not have is a typo to point out, not a no-op.
    const missing = remove.filter((t) => !now.includes(t));
    if (missing.length) throw new TsflowError("NotFound", `run ${this.pathspec} has no tag ${missing.map((t) => `'${t}'`).join(", ")} (its tags: ${now.join(", ") || "none"}); nothing was changed`);
    await changeTags(s, this.flow, this.id, { add, remove });
    const next = await currentTags(s, this.flow, this.id, this.doc.tags);
    this.tags.splice(0, this.tags.length, ...next);
    return [...next];
  }

  /** An artifact of the end step, loaded now. */
  async data<K extends keyof DataOf<F> & string>(name: K): Promise<DataOf<F>[K]> {
    const end = await this.endTask();
    if (!end) throw new TsflowError("NotFound", `run ${this.pathspec} has no finished end step (status ${this.status}); read artifacts from a step's tasks instead`);
    return end.data(name);
  }
}

/** One step of a run. */
export class Step<F = unknown> {
  readonly pathspec: string;
  constructor(
    readonly run: Run<F>,
    readonly name: string,
    private readonly ctx: ClientContext,
  ) {
    this.pathspec = `${run.pathspec}/${name}`;
  }

  /** `Step PetsFlow/3/start` */
  toString(): string {
    return `Step ${this.pathspec}`;
  }

  /** The step's tasks from the run index, when the run has one. */
  private async indexed(): Promise<TaskRecord[] | null> {
    return this.run.taskIndex(this.name);
  }

  /** Task ids in numeric order. */
  async taskIds(): Promise<string[]> {
    const index = await this.indexed();
    if (index) return index.map((t) => t.task);
    const ids = await listTaskIds(await this.ctx.store(), this.run.flow, this.run.id, this.name);
    return ids.map((t) => t.task).filter((t) => PART.test(t));
  }

  /** The step's tasks in task-id order (foreach order within one split). */
  tasks(): Listing<Task<F>> {
    const self = this;
    return new Listing(async function* () {
      const index = await self.indexed();
      if (index) {
        for (const t of index) yield new Task<F>(self, t, self.ctx);
        return;
      }
      const s = await self.ctx.store();
      const ids = await self.taskIds();
      for (let i = 0; i < ids.length; i += 64) {
        const batch = await readTasks(s, self.run.flow, self.run.id, ids.slice(i, i + 64).map((task) => ({ step: self.name, task })), { lenient: false });
        for (const t of batch) if (t) yield new Task<F>(self, t, self.ctx);
      }
    });
  }

  /** A task by id. */
  async task(id: string): Promise<Task<F>> {
    parsePathspec(id, 1, 1);
    const t = await this.loadTask(id);
    if (!t) {
      const s = await this.ctx.store();
      throw new TsflowError("NotFound", `step ${this.pathspec} has no task '${id}' in ${s.url}`);
    }
    return t;
  }

  /** The only task of the step; an error naming the choices when there are several or none. */
  async onlyTask(): Promise<Task<F>> {
    const ids = await this.taskIds();
    if (ids.length === 1) return this.task(ids[0]!);
    const s = await this.ctx.store();
    if (ids.length === 0) throw new TsflowError("NotFound", `step ${this.pathspec} has no tasks in ${s.url}`);
    throw new TsflowError("BadOption", `step ${this.pathspec} has ${ids.length} tasks; name one: ${this.pathspec}/${ids[0]} … ${this.pathspec}/${ids.at(-1)}`);
  }

  private async loadTask(id: string): Promise<Task<F> | null> {
    const index = await this.indexed();
    if (index) {
      const t = index.find((x) => x.task === id);
      return t ? new Task<F>(this, t, this.ctx) : null;
    }
    const t = await readTask(await this.ctx.store(), this.run.flow, this.run.id, this.name, id, { lenient: false });
    return t ? new Task<F>(this, t, this.ctx) : null;
  }
}

/** One task: its attempts, logs and artifacts. */
export class Task<F = unknown> {
  readonly pathspec: string;
  /** Index in the innermost foreach, or `undefined` outside a foreach. */
  readonly index: number | undefined;
  readonly foreach: ForeachFrame[];
  /** Pathspecs (`Flow/run/step/task`) of the tasks this one started from. */
  readonly parents: string[];
  readonly successful: boolean;
  /** Set when the task was reused from another run (resume, `@cached`): `run/step/task`. */
  readonly clonedFrom: string | undefined;
  readonly id: string;
  /** The task.json record. */
  readonly doc: TaskDoc;
  /** The done.json record, when the task succeeded. */
  readonly done: DoneRecord | null;
  /** The attempt that counts and its result (done.json when successful). */
  private readonly last: { attempt: number; result: TaskResult | null };
  /** The attempts that started, as read with the task. */
  private readonly started: number[];

  constructor(
    readonly step: Step<F>,
    record: TaskRecord,
    private readonly ctx: ClientContext,
  ) {
    const id = record.task;
    this.id = id;
    this.doc = record.doc ?? { step: step.name, taskId: id, parents: [], foreach: [] };
    const doc = this.doc;
    const done = record.done;
    this.done = done;
    this.last = record.last;
    this.started = record.attempts.map((a) => a.attempt);
    this.pathspec = `${step.pathspec}/${id}`;
    this.foreach = doc.foreach ?? [];
    this.index = this.foreach.at(-1)?.index;
    this.parents = (doc.parents ?? []).map((p) => `${step.run.flow}/${p}`);
    this.successful = done !== null;
    this.clonedFrom = done?.clonedFrom;
  }

  /** `Task PetsFlow/3/start/1 succeeded` */
  toString(): string {
    const e = this.exception;
    return `Task ${this.pathspec} ${this.successful ? "succeeded" : this.finished ? "failed" : "not finished"}${this.clonedFrom ? ` (cloned from ${this.clonedFrom})` : ""}${e ? ` — ${e.type}: ${e.message.split("\n")[0]}` : ""}`;
  }

  /** The attempt that counts: the successful one, else the last that started. */
  get attempt(): number {
    return this.last.attempt;
  }

  /** When the attempt that counts started; `undefined` before it started. */
  get startedAt(): Date | undefined {
    const t = this.last.result?.startedAt;
    return typeof t === "number" ? new Date(t) : undefined;
  }

  /**
   * When the attempt that counts ended — succeeded, failed, or was killed (@timeout), crashed or
   * cancelled: the orchestrator writes the end record of an attempt that could not.
   */
  get finishedAt(): Date | undefined {
    const t = this.last.result?.finishedAt;
    return typeof t === "number" ? new Date(t) : undefined;
  }

  /** Ended: succeeded, failed, or its run is over. */
  get finished(): boolean {
    return this.successful || this.step.run.finished || this.last.result !== null;
  }

  /** Why the task failed, or `undefined`. */
  get exception(): TaskError | undefined {
    if (this.successful) return undefined;
    if (this.last.result?.error) return this.last.result.error;
    const err = this.step.run.error;
    const mine = `${this.step.run.id}/${this.step.name}/${this.id}`;
    return err && err.pathspec === mine ? err : undefined;
  }

  /** Attempt numbers that started, ascending. */
  async attempts(): Promise<number[]> {
    if (this.clonedFrom) return [this.attempt];
    // A finished run's attempts are all known; a running task may start another.
    if (this.step.run.finished) return [...this.started];
    return listAttempts(await this.ctx.store(), this.step.run.flow, this.step.run.id, this.step.name, this.id);
  }

  /** The task's stdout of one attempt (default: the attempt that counts); `""` when none was stored. */
  stdout(attempt?: number): Promise<string> {
    return this.log("stdout", attempt);
  }

  /** The task's stderr of one attempt (default: the attempt that counts). */
  stderr(attempt?: number): Promise<string> {
    return this.log("stderr", attempt);
  }

  /**
   * The task's output of one attempt as it is stored, piece by piece: bounded memory for logs of
   * any size, and readable while the task runs.
   */
  async *logChunks(stream: "stdout" | "stderr", attempt?: number): AsyncGenerator<Uint8Array> {
    const s = await this.ctx.store();
    yield* readLogChunks(s, await this.logRef(attempt), stream);
  }

  /** The last `maxBytes` of one attempt's output, and the log's full size. */
  async logTail(stream: "stdout" | "stderr", maxBytes: number, attempt?: number): Promise<{ text: string; size: number; truncated: boolean }> {
    const s = await this.ctx.store();
    const tail = await readLogTail(s, await this.logRef(attempt), stream, maxBytes);
    return tail ? { text: new TextDecoder().decode(tail.bytes), size: tail.size, truncated: tail.truncated } : { text: "", size: 0, truncated: false };
  }

  private async log(stream: "stdout" | "stderr", attempt?: number): Promise<string> {
    const s = await this.ctx.store();
    const bytes = await readLog(s, await this.logRef(attempt), stream);
    return bytes ? new TextDecoder().decode(bytes) : "";
  }

  /** Where an attempt's logs are: a cloned task's are where it really ran. */
  private async logRef(attempt?: number): Promise<AttemptRef> {
    const s = await this.ctx.store();
    const n = attempt ?? this.attempt;
    // A cloned task ran in its origin run (or that run's origin, after a resume of a resume).
    const flow = this.step.run.flow;
    let [run, step, task] = [this.step.run.id, this.step.name, this.id];
    let from = this.clonedFrom;
    for (let hops = 0; from && hops < 32; hops++) {
      [run, step, task] = from.split("/") as [string, string, string];
      from = (await getJson<DoneRecord>(s, doneKey(flow, run, step, task)).catch(() => null))?.clonedFrom;
    }
    return { flow, run, step, task, attempt: n };
  }

  /** Every artifact of the task (of its successful attempt, else of its last result). */
  async artifacts(): Promise<Artifact[]> {
    const { result } = this.last;
    return Object.entries(result?.artifacts ?? {}).map(([name, ref]) => new Artifact(name, ref, this.pathspec, this.ctx));
  }

  /** One artifact, or `null` when the task has none by that name. */
  async artifact(name: string): Promise<Artifact | null> {
    const { result } = this.last;
    const ref = result?.artifacts?.[name];
    return ref && Object.hasOwn(result!.artifacts, name) ? new Artifact(name, ref, this.pathspec, this.ctx) : null;
  }

  /** An artifact's value, loaded now. */
  async data<K extends keyof DataOf<F> & string>(name: K): Promise<DataOf<F>[K]> {
    const a = await this.artifact(name);
    if (!a) {
      const names = (await this.artifacts()).map((x) => x.name);
      throw new TsflowError("NotFound", `task ${this.pathspec} has no artifact '${name}'${names.length ? ` (it has ${names.join(", ")})` : ""}`);
    }
    return (await a.value()) as DataOf<F>[K];
  }

  /**
   * The task's cards (`@card`), of the attempt that counts: final ones once it ended, live
   * snapshots while it runs. `await card.html()` is a self-contained document.
   */
  async cards(): Promise<Card[]> {
    const s = await this.ctx.store();
    const run = this.step.run;
    const refs = await readCardRefs(s, run.flow, run.id, this.step.name, this.id, this.attempt, this.last.result?.cards);
    return refs.map((r) => new Card(r, this.pathspec, this.ctx));
  }

  /** Pathspecs of the tasks that started from this one (scans the steps after it). */
  async children(): Promise<string[]> {
    const run = this.step.run;
    const node = run.doc.graph?.steps[this.step.name];
    const mine = `${run.id}/${this.step.name}/${this.id}`;
    const out: string[] = [];
    for (const next of node?.next ?? []) {
      for await (const t of run.step(next).tasks()) {
        if (t.doc.parents?.includes(mine)) out.push(t.pathspec);
      }
    }
    return out;
  }
}

/** A stored card of a task: id and type at once; its data and HTML are read on demand. */
export class Card {
  readonly id: string;
  /** `default`, `blank` or a plugin's name. */
  readonly type: string;
  /** `false` for a live snapshot of a task still running. */
  readonly final: boolean;
  /** Set when the card type failed to render (the card then shows the error). */
  readonly error: string | undefined;

  constructor(
    readonly ref: CardRef,
    /** The task's pathspec. */
    readonly task: string,
    private readonly ctx: ClientContext,
  ) {
    this.id = ref.id;
    this.type = ref.type;
    this.final = ref.final;
    this.error = ref.error;
  }

  /** `Card default of PetsFlow/3/start/1` */
  toString(): string {
    return `Card ${this.type}${this.id !== this.type ? ` '${this.id}'` : ""} of ${this.task}${this.final ? "" : " (live)"}`;
  }

  /** The card's data: its components and what it shows of the task. */
  async data(): Promise<CardData> {
    return loadCardData(await this.ctx.store(), this.ctx.host, this.ref);
  }

  /** The card as a self-contained HTML document: it renders offline (charts' scripts inlined). */
  async html(): Promise<string> {
    return loadCardDocument(await this.ctx.store(), this.ctx.host, this.ref, `${this.task} · ${this.id}`);
  }
}

/** A stored artifact: its reference; the value is loaded by {@link value}. */
export class Artifact {
  readonly hash: string;
  readonly size: number;
  readonly type: string;
  constructor(
    readonly name: string,
    readonly ref: ArtifactRef,
    /** The task it belongs to. */
    readonly task: string,
    private readonly ctx: ClientContext,
  ) {
    this.hash = ref.hash;
    this.size = ref.size;
    this.type = ref.type;
  }

  /** `Artifact pets (json, 24 B) of PetsFlow/3/end/5` */
  toString(): string {
    return `Artifact ${this.name} (${this.type}, ${this.size} B) of ${this.task}`;
  }

  /**
   * Loads and verifies the value. `limits.maxBytes` refuses (`TooLarge`) a blob whose real or
   * decompressed size passes it, whatever {@link size} (from the task's record) says.
   */
  async value(limits?: LoadLimits): Promise<unknown> {
    return loadArtifact(await this.ctx.store(), this.ctx.host, this.ref, this.name, this.task, limits);
  }
}

// ---------------------------------------------------------------- display in notebooks and consoles

/** Jupyter kernels (Deno's) display an object through this method: it returns a mimebundle. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display") as never;
/** `console.log`/`util.inspect` read this on Node and Bun, and on Deno too. */
const NODE_INSPECT: unique symbol = Symbol.for("nodejs.util.inspect.custom") as never;
const RENDERER = Symbol.for("tsflow.notebookRenderer");

/** A client object as notebook output: extra mimebundle entries (`text/html`, `image/png`, …). */
export type NotebookRenderer = (obj: Flow | Run | Step | Task | Artifact | Card, store: Datastore, host: Host) => Promise<Record<string, unknown>>;

/**
 * Installs the renderer of client objects in notebooks (mod.ts installs tsflow's: the viewer's
 * DAG, tables, images). The core only knows the hook, so it stays free of any HTML.
 */
export function installNotebookRenderer(renderer: NotebookRenderer | undefined): void {
  (globalThis as Record<symbol, unknown>)[RENDERER] = renderer;
}

async function displayBundle(obj: Flow | Run | Step | Task | Artifact | Card, ctx: ClientContext): Promise<Record<string, unknown>> {
  const text = obj.toString();
  const renderer = (globalThis as Record<symbol, NotebookRenderer | undefined>)[RENDERER];
  if (!renderer) return { "text/plain": text };
  try {
    return { "text/plain": text, ...(await renderer(obj, await ctx.store(), ctx.host)) };
  } catch (e) {
    // A display must not throw in the user's face: the short line and why the rich view failed.
    return { "text/plain": `${text}
(no rich view: ${(e as Error)?.message ?? e})` };
  }
}

/** One short readable line for consoles: never the object's internals (its datastore, its host). */
function inspectable<T extends { toString(): string }>(cls: abstract new (...args: any[]) => T): void {
  Object.defineProperty(cls.prototype, NODE_INSPECT, { value(this: T) { return this.toString(); }, configurable: true });
  Object.defineProperty(cls.prototype, JUPYTER_DISPLAY, {
    value(this: T) {
      return displayBundle(this as never, (this as unknown as { ctx: ClientContext }).ctx);
    },
    configurable: true,
  });
}
for (const cls of [Flow, Run, Step, Task, Artifact, Card]) inspectable(cls as never);

const fmtMs = (ms: number) => (ms < 1000 ? `${Math.round(ms)} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60_000).toFixed(1)} min`);
