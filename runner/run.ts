/**
 * The Runner API: `runFlow`, `startFlow` and `resumeFlow` (Metaflow's `Runner`), the one path
 * every run takes — `tsflow run`/`resume`, the library, notebooks and tests. What a run needs
 * beyond the core is assembled here: options from the caller, `TSFLOW_*` and the config file;
 * the flow (a class or a file); the datastore (an object or a location); the executor of each
 * step (`@docker`, `@batch`, `--executor`); `@cached`; the resume plan.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { contentHash, PARAMETER_ALG, refOf } from "../core/artifacts.ts";
import { type StepCache, stepCache } from "../core/cache.ts";
import { createClient, Run, type RunDoc } from "../core/client.ts";
import { watchDatastore } from "../core/_datastore.ts";
import { applyConfig, configValues } from "../core/config.ts";
import { TsflowError } from "../core/errors.ts";
import { getStepMeta } from "../core/flow.ts";
import { type FlowInfo, loadFlowInfo } from "../core/graph.ts";
import { executeRun, type RunOptions, type RunReporter, type RunResult, resolveParameters } from "../core/runtime.ts";
import type { ArtifactRef, Datastore, Executor, Host, Logger, TaskError } from "../core/types.ts";
import inlineExecutor from "../plugins/executors/inline.ts";
import nodeHost from "../plugins/host/node.ts";
import { releasePreforkedWorker } from "../plugins/host/self.ts";
import { type ExecutorSet, executorSet } from "./executors.ts";
import { buildFlowModule, loadFlow } from "./load.ts";
import { liveDisplay, progressLine } from "../notebook/live.ts";
import { inNotebookKernel, type NotebookModule, notebookModule } from "./notebook.ts";
import { applyDefaults, parseWith } from "./options.ts";
import { planResume, type ResumePlan, resumeReuse } from "./resume.ts";
import { enterTaskEnvironment } from "./secrets.ts";
import { resolveDatastore } from "./stores.ts";
import { after, trace, tracedReporter, tracing } from "./_trace.ts";

/** A flow: its class, or the file defining it (`"flows/pets.ts"`, with `exportName` when not the default export). */
export type FlowRef<F = unknown> = (abstract new (...args: any[]) => F) | Function | string;

export interface RunFlowOptions {
  /** Parameter values by parameter name (typed, or strings as on the command line). */
  params?: Record<string, unknown>;
  /** Configs by name: a file path, inline JSON text, or the value itself (validated all the same). */
  config?: Record<string, unknown>;
  /**
   * A datastore, or its location: a path, `s3://bucket/prefix`, or a plugin file
   * (`./my-store.ts`, `./my-store.ts:{"dir":"/data"}`). Default: `TSFLOW_DATASTORE`, the config
   * file, else `.tsflow` found upwards.
   */
  datastore?: Datastore | string;
  /** The module defining the flow when a class is given; found from the class when omitted. */
  file?: string;
  /** Named export of the flow class in its file, when it is not the default export. */
  exportName?: string;
  /**
   * The executor of steps without `@docker`/`@batch`: `process` (warm workers; the default when
   * the flow's file is known), `inline` (in this process), `docker`, `batch`, the path of an
   * executor plugin, or an executor object (left open for the caller).
   */
  executor?: string | Executor;
  tags?: string[];
  /** Tasks running at once (default: number of CPUs). */
  maxWorkers?: number;
  /** Largest foreach allowed (default 1000). */
  maxNumSplits?: number;
  /** Decorators attached to every step: `["retry", "timeout:seconds=60"]` as on the command line, or parsed. */
  with?: string[] | Record<string, Record<string, unknown>>;
  /** One process per task instead of warm workers. */
  freshWorkers?: boolean;
  /** Run `@cached` steps even when an earlier result matches. */
  noCache?: boolean;
  /** Where relative paths and the config file are looked up. Default: the working directory. */
  cwd?: string;
  /** Live events (the CLI's terminal); {@link startFlow}'s handle gives them as an async iterator. */
  reporter?: RunReporter;
  /** Warnings of executors and datastores (retries, throttling). Default: none shown. */
  logger?: Logger;
  /** Aborting stops every task and marks the run failed. */
  signal?: AbortSignal;
  /** Called with the flow's static information once it is loaded, before anything runs (the CLI checks its arguments here). */
  validate?(info: FlowInfo): void;
}

export interface ResumeFlowOptions extends Omit<RunFlowOptions, "params" | "config"> {
  /** The run to resume. Default: the latest run of the flow. */
  originRunId?: string;
  /** Re-run from this step (and everything after it). Default: the step that failed. */
  step?: string;
  /** Called with the plan once it is known, before the new run starts. */
  onPlan?(plan: ResumePlan): void;
}

/** A finished run: the client's `Run` plus what only the orchestrator knows. */
export type FinishedRun<F = unknown> = Run<F> & {
  /** Same as `id`. */
  runId: string;
  /** Tasks scheduled (cloned and cached ones included). */
  tasks: number;
  durationMs: number;
  /** Resume only: tasks cloned from the origin run, by step. */
  cloned?: Map<string, number>;
  /** How each `@exitHook` of the flow ended. */
  exitHooks?: RunResult["exitHooks"];
};

type Arg<K extends "runStarted" | "taskStarted" | "taskFinished"> = Parameters<NonNullable<RunReporter[K]>>[0];

/** What {@link startFlow}'s handle yields while the run goes on. */
export type RunEvent =
  | ({ type: "run-started" } & Arg<"runStarted">)
  | ({ type: "task-started" } & Arg<"taskStarted">)
  | { type: "log"; pathspec: string; step: string; stream: "stdout" | "stderr"; line: string }
  | ({ type: "task-finished" } & Arg<"taskFinished">)
  | { type: "foreach"; step: string; count: number }
  | { type: "message"; text: string }
  | { type: "run-finished"; runId: string; successful: boolean; error?: TaskError & { pathspec?: string } };

/** A run started by {@link startFlow}. */
export interface RunHandle<F = unknown> extends AsyncIterable<RunEvent> {
  /** `starting` until `run.json` is written, then `running`, then `succeeded` or `failed`. */
  readonly status: "starting" | "running" | "succeeded" | "failed";
  /** Known once the run has started (see {@link started}). */
  readonly runId: string | undefined;
  /** Resolves with the run id once the run has started; rejects when it cannot start. */
  readonly started: Promise<string>;
  /** Resolves with the finished run (failed runs too); rejects when the run could not start. */
  wait(): Promise<FinishedRun<F>>;
  /** Stops every task; the run ends as failed (`Cancelled`). */
  abort(): void;
  /** Counts so far (what a notebook's progress line shows). */
  readonly progress: RunProgress;
}

/** How far a run started by {@link startFlow} is. */
export interface RunProgress {
  flow: string;
  /** Tasks started, finished (cloned ones included) and failed so far. */
  started: number;
  finished: number;
  failed: number;
  /** Steps with a task running now (a step once per running task). */
  running: string[];
  /** Known once the run is over. */
  durationMs?: number;
}

/** Runs a flow to its end, exactly as `tsflow run` does with the same options, and returns the run. */
export async function runFlow<F>(flow: FlowRef<F>, options: RunFlowOptions = {}): Promise<FinishedRun<F>> {
  return execute<F>(flow, options, undefined);
}

/** Resumes a failed run as `tsflow resume` does: clones the tasks before the failure, re-runs the rest. */
export async function resumeFlow<F>(flow: FlowRef<F>, options: ResumeFlowOptions = {}): Promise<FinishedRun<F>> {
  return execute<F>(flow, options, options);
}

/** Starts a flow and returns at once: events as they come, `wait()`, `abort()`. */
export function startFlow<F>(flow: FlowRef<F>, options: RunFlowOptions = {}): RunHandle<F> {
  const controller = new AbortController();
  if (options.signal) {
    if (options.signal.aborted) controller.abort();
    else options.signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  let status: RunHandle["status"] = "starting";
  let runId: string | undefined;
  let resolveStarted!: (id: string) => void;
  let rejectStarted!: (e: unknown) => void;
  const started = new Promise<string>((res, rej) => {
    resolveStarted = res;
    rejectStarted = rej;
  });
  started.catch(() => {});
  const queues = new Set<{ items: RunEvent[]; wake?: () => void }>();
  let ended = false;
  const emit = (e: RunEvent) => {
    for (const q of queues) {
      q.items.push(e);
      q.wake?.();
    }
  };
  const partial = new Map<string, string>();
  const flushLines = (pathspec: string, step: string, stream: "stdout" | "stderr", text: string, final: boolean) => {
    const key = `${pathspec}\0${stream}`;
    const lines = ((partial.get(key) ?? "") + text).split("\n");
    const rest = lines.pop()!;
    for (const line of lines) emit({ type: "log", pathspec, step, stream, line });
    if (final && rest) emit({ type: "log", pathspec, step, stream, line: rest });
    if (final || !rest) partial.delete(key);
    else partial.set(key, rest);
  };
  const user = options.reporter ?? {};
  const progress: RunProgress = { flow: typeof flow === "string" ? flow : (flow as Function).name, started: 0, finished: 0, failed: 0, running: [] };
  const runningTasks = new Map<string, string>();
  const reporter: RunReporter = {
    runStarted(run) {
      status = "running";
      progress.flow = run.flow;
      runId = run.runId;
      resolveStarted(run.runId);
      emit({ type: "run-started", ...run });
      user.runStarted?.(run);
    },
    taskStarted(task) {
      progress.started++;
      runningTasks.set(task.pathspec, task.step);
      progress.running = [...runningTasks.values()];
      emit({ type: "task-started", ...task });
      user.taskStarted?.(task);
    },
    taskOutput(task, stream, text) {
      flushLines(task.pathspec, task.step, stream, text, false);
      user.taskOutput?.(task, stream, text);
    },
    taskFinished(task) {
      if (!runningTasks.has(task.pathspec)) progress.started++;
      runningTasks.delete(task.pathspec);
      progress.running = [...runningTasks.values()];
      // A failed attempt that will be retried starts (and is counted) again.
      if (task.willRetry) progress.started--;
      else progress.finished++;
      if (!task.ok && !task.willRetry && !task.willCatch) progress.failed++;
      for (const stream of ["stdout", "stderr"] as const) flushLines(task.pathspec, task.step, stream, "", true);
      emit({ type: "task-finished", ...task });
      user.taskFinished?.(task);
    },
    foreachSplit(step, count) {
      emit({ type: "foreach", step, count });
      user.foreachSplit?.(step, count);
    },
    message(text) {
      emit({ type: "message", text });
      user.message?.(text);
    },
  };
  const finish = () => {
    ended = true;
    for (const q of queues) q.wake?.();
  };
  // Displays of the handle (a notebook's progress line) finish their last update before
  // `wait()` resolves, so the cell awaiting it never ends ahead of the final line.
  const beforeSettle: (() => Promise<void>)[] = [];
  const settle = () => Promise.all(beforeSettle.map((f) => f().catch(() => {})));
  const done = execute<F>(flow, { ...options, reporter, signal: controller.signal }, undefined).then(
    async (run) => {
      progress.durationMs = run.durationMs;
      status = run.successful ? "succeeded" : "failed";
      emit({ type: "run-finished", runId: run.id, successful: run.successful, ...(run.error ? { error: run.error } : {}) });
      finish();
      await settle();
      return run;
    },
    async (e) => {
      status = "failed";
      rejectStarted(e);
      finish();
      await settle();
      throw e;
    },
  );
  done.catch(() => {});
  const handle: RunHandle<F> = {
    get progress() {
      return progress;
    },
    get status() {
      return status;
    },
    get runId() {
      return runId;
    },
    started,
    wait: () => done,
    abort: () => controller.abort(),
    [Symbol.asyncIterator](): AsyncIterator<RunEvent> {
      // Each iterator sees the events from its creation on: iterate right after startFlow to see them all.
      const q: { items: RunEvent[]; wake?: () => void } = { items: [] };
      queues.add(q);
      return {
        async next(): Promise<IteratorResult<RunEvent>> {
          for (;;) {
            const item = q.items.shift();
            if (item) return { value: item, done: false };
            if (ended) {
              queues.delete(q);
              return { value: undefined, done: true };
            }
            await new Promise<void>((r) => (q.wake = r));
            q.wake = undefined;
          }
        },
        async return(): Promise<IteratorResult<RunEvent>> {
          queues.delete(q);
          return { value: undefined, done: true };
        },
      };
    },
  };
  // In a notebook the handle is a progress line that updates itself; in a console, that line.
  Object.defineProperties(handle, {
    [Symbol.for("Jupyter.display")]: { value: () => liveDisplay(handle as RunHandle, (f) => beforeSettle.push(f)) },
    [Symbol.for("nodejs.util.inspect.custom")]: { value: () => progressLine(handle as RunHandle) },
    [Symbol.for("Deno.customInspect")]: { value: () => progressLine(handle as RunHandle) },
    toString: { value: () => progressLine(handle as RunHandle) },
  });
  return handle;
}

/** The options of one run, assembled: what `executeRun` gets, and what to close afterwards. */
interface Prepared {
  options: RunOptions;
  cache?: StepCache;
  executors: ExecutorSet;
  plan?: ResumePlan;
}

async function execute<F>(flow: FlowRef<F>, given: RunFlowOptions, resume: ResumeFlowOptions | undefined): Promise<FinishedRun<F>> {
  const options = tracing ? { ...given, reporter: tracedReporter(given.reporter) } : given;
  const prepared = await prepare(flow, options, resume);
  const cloned = new Map<string, number>();
  const { options: runOptions, cache, executors, plan } = prepared;
  let result: RunResult;
  // Closed as soon as the last task is over (see RunOptions.tasksOver), else when the run ends.
  let closing: Promise<void> | undefined;
  const closeExecutors = () => {
    closing ??= executors.close();
    closing.catch(() => {});
    return closing;
  };
  runOptions.tasksOver = () => void closeExecutors();
  try {
    if (plan) {
      const resumeClone = resumeReuse(plan, cloned);
      const cacheReuse = runOptions.reuse;
      const originParams = plan.origin.doc.parameters as Record<string, ArtifactRef> | undefined;
      runOptions.originRunId = plan.origin.id;
      runOptions.reuse = async (task) => (await resumeClone(task)) ?? (await cacheReuse?.(task));
      runOptions.runRecord = { ...(originParams ? { parameters: originParams } : {}), parameterValues: plan.origin.parameters, resumedFrom: plan.step };
      resume?.onPlan?.(plan);
    }
    result = await executeRun(runOptions);
    trace("run finished");
  } finally {
    await closeExecutors();
    await cache?.finish();
    trace("workers closed");
  }
  const client = createClient(runOptions.store, runOptions.host);
  // The run's status is final once run.json is written. Reading it back gives current tags, but a
  // store that fails that read (throttling, an outage) must not turn a finished run into an error:
  // the record just written stands in.
  const run = (await client.Flow.get<F>(result.flow)
    .run(result.runId)
    .catch(() => new Run<F>(result.flow, result.runId, result.record as unknown as RunDoc, undefined, client.context))) as FinishedRun<F>;
  return Object.assign(run, { runId: result.runId, tasks: result.tasks, durationMs: result.durationMs, ...(plan ? { cloned } : {}), ...(result.exitHooks ? { exitHooks: result.exitHooks } : {}) });
}

async function prepare<F>(flow: FlowRef<F>, options: RunFlowOptions, resume: ResumeFlowOptions | undefined): Promise<Prepared> {
  const cwd = options.cwd ?? process.cwd();
  const host = nodeHost();
  const given = {
    datastore: typeof options.datastore === "string" ? options.datastore : undefined,
    executor: typeof options.executor === "string" ? options.executor : undefined,
    maxWorkers: options.maxWorkers,
    maxNumSplits: options.maxNumSplits,
    freshWorkers: options.freshWorkers,
    tags: options.tags ? [...options.tags] : undefined,
    with: Array.isArray(options.with) ? options.with : undefined,
  };
  const flags = await applyDefaults(given, cwd);
  const withDecorators = options.with && !Array.isArray(options.with) ? options.with : parseWith(flags.with ?? []);
  let file = typeof flow === "string" ? flow : (options.file ?? definingFile(flow));
  // A class from a notebook cell has no file: workers import a module rebuilt from the class
  // (runner/notebook.ts), asked for with executor "process" or implied inside a notebook kernel.
  let notebook: NotebookModule | undefined;
  if (!file && typeof flow !== "string" && typeof options.executor !== "object" && (flags.executor === "process" || (flags.executor === undefined && inNotebookKernel()))) {
    notebook = await notebookModule(flow);
    file = notebook.file;
  }
  const defaultName = typeof options.executor === "object" ? options.executor.name : (flags.executor ?? (file ? "process" : "inline"));
  const recordAfterMs = selfRecordMs();
  if (defaultName === "process" && !file) {
    throw new TsflowError("BadOption", `cannot tell which file defines ${(flow as Function).name}; pass { file } or { executor: "inline" }`);
  }
  // Start a local worker while the flow is being built: it is ready when `start` is. Only one:
  // `start` runs alone, and a second process starting beside the first (and this one) on a
  // small machine slows all three; more follow once the graph says tasks can run at once.
  const early = defaultName === "process" ? await executorSet("process", [], {}, { freshWorkers: flags.freshWorkers, cwd }) : undefined;
  trace("worker spawn");
  early?.all()[0]?.warm?.(1);
  if (!early) releasePreforkedWorker();
  let executors: ExecutorSet | undefined = early;
  let cache: StepCache | undefined;
  try {
    const storeArg = typeof options.datastore === "object" ? options.datastore : flags.datastore;
    const [loaded, store] = await Promise.all([
      typeof flow === "string"
        ? after("flow loaded", loadFlow(flow, options.exportName, { cwd }))
        : (async () => {
            // Local workers import the built module this process made; other executors (containers,
            // jobs, a plugin's threads) load the flow file themselves with their own tsflow.
            const known = file;
            const needsModule = known && defaultName === "process" && host.runtime === "node" && !/\.m?js$/.test(known);
            return { flowClass: flow as Function, file: known, exportName: notebook?.exportName ?? options.exportName, module: needsModule ? await buildFlowModule(known) : known };
          })(),
      after("datastore opened", resolveDatastore(storeArg, cwd)),
    ]);
    const { flowClass } = loaded;
    const declared = loadFlowInfo(flowClass, notebook ? "the notebook (a class without a file)" : loaded.file);
    trace("graph read");
    // Without a split or foreach, no two tasks ever run at once: one worker does (and the
    // executors' own warm-up at the run's start is told so).
    const oneAtATime = !Object.values(declared.graph.nodes).some((n) => n.type === "split" || n.type === "foreach");
    // Workers import the flow while this process writes the run's first records.
    const flowToLoad = { flowName: declared.name, flowFile: loaded.file ?? `<inline ${declared.name}>`, exportName: loaded.exportName, flowModule: loaded.module };
    early?.all()[0]?.warm?.(oneAtATime ? 1 : (flags.maxWorkers ?? host.cpus()), flowToLoad);
    options.validate?.(declared);
    let plan: ResumePlan | undefined;
    if (resume) {
      const o = options as RunFlowOptions;
      if ((o.params && Object.keys(o.params).length) || (o.config && Object.keys(o.config).length)) {
        throw new TsflowError("BadParameter", "resume keeps the origin run's parameters and configs; start a new run to change them");
      }
      plan = await planResume(store, host, declared, resume.originRunId, resume.step);
    }
    // Resume brings the origin's values instead of resolving them again. Parameters and configs
    // are checked before anything is stored.
    const parameters = plan ? { ...plan.origin.parameters } : await resolveParameters(declared, options.params ?? {}, host, options.config);
    // Executors are picked from decorators whose arguments may come from the configs.
    const info = applyConfig(declared, configValues(declared, parameters));
    // @cached steps (or --with cached) reuse earlier results unless noCache.
    const cached = Boolean(withDecorators.cached) || Object.values(info.graph.nodes).some((n) => n.decorators.cached);
    if (!options.noCache && cached) {
      // Cache keys from the origin's stored parameters on resume: the values above are for display.
      const paramHashes = plan
        ? Object.fromEntries(Object.entries((plan.origin.doc.parameters ?? {}) as Record<string, ArtifactRef>).map(([k, r]) => [k, contentHash(r)]))
        : await parameterHashes(info, parameters, host);
      // The key covers the whole built module (the flow file and its local imports), not only
      // the step's source: a changed helper or constant must not serve a stale result.
      const codeHash = loaded.module && existsSync(loaded.module) ? createHash("sha256").update(readFileSync(loaded.module)).digest("hex") : undefined;
      cache = stepCache({ store, host, info, withCached: Boolean(withDecorators.cached), paramHashes, codeHash, with: withDecorators });
    }
    const givenExecutors: Executor[] = [];
    if (typeof options.executor === "object") givenExecutors.push(options.executor);
    else if (defaultName === "inline") givenExecutors.push(inlineExecutor({ flowClass, store, host, environment: enterTaskEnvironment }));
    executors = await executorSet(defaultName, Object.values(info.graph.nodes), withDecorators, { freshWorkers: flags.freshWorkers, cwd, reuse: early, given: givenExecutors });
    checkReachable(store, info, executors);
    // The store's slow operations reach the same logger as the executors' warnings.
    watchDatastore(store, options.logger, { slowMs: Number(process.env.TSFLOW_SLOW_STORAGE_MS) || undefined });
    return {
      executors,
      cache,
      plan,
      options: {
        flowClass,
        flowFile: loaded.file ?? `<inline ${info.name}>`,
        exportName: loaded.exportName,
        flowModule: loaded.module,
        store,
        host,
        executor: executors.select,
        parameters,
        tags: flags.tags,
        maxWorkers: oneAtATime ? 1 : flags.maxWorkers,
        maxNumSplits: flags.maxNumSplits,
        with: withDecorators,
        freshWorkers: flags.freshWorkers,
        logger: options.logger,
        reporter: cache ? markCacheHits(options.reporter, cache) : options.reporter,
        signal: options.signal,
        selfRecordMs: recordAfterMs,
        ...(cache ? { reuse: cache.reuse } : {}),
      },
    };
  } catch (e) {
    await executors?.close();
    await cache?.finish();
    throw e;
  }
}

/**
 * `TSFLOW_SELF_RECORD_MS`: how long a task that records itself runs before it writes its
 * task.json (core/task.ts `SELF_RECORD_DELAY_MS`); 0 writes it as the task starts.
 */
function selfRecordMs(): number | undefined {
  const given = process.env.TSFLOW_SELF_RECORD_MS;
  if (given === undefined || given === "") return undefined;
  const ms = Number(given);
  if (!Number.isFinite(ms) || ms < 0) throw new TsflowError("BadOption", `TSFLOW_SELF_RECORD_MS must be a number of milliseconds (0 or more), got '${given}'`);
  return ms;
}

/** A store that lives in this process only (memory) cannot be reached by workers, containers or jobs. */
function checkReachable(store: Datastore, info: FlowInfo, executors: ExecutorSet) {
  if (store.location !== undefined) return;
  for (const node of Object.values(info.graph.nodes)) {
    const ex = executors.select(node, node.decorators);
    if (ex.inProcess) continue;
    throw new TsflowError(
      "BadOption",
      `datastore ${store.url} (${store.name}) lives in this process only, so step '${node.name}' on the ${ex.name} executor cannot reach it: use executor "inline", or a datastore other processes can open (a path, s3://…, a plugin file)`,
    );
  }
}

/** Task events of cache hits say so (`cached: true`), for terminals and event streams. */
function markCacheHits(reporter: RunReporter | undefined, cache: StepCache): RunReporter | undefined {
  if (!reporter?.taskFinished) return reporter;
  const finished = reporter.taskFinished.bind(reporter);
  return Object.assign(Object.create(reporter) as RunReporter, {
    taskFinished: (task: Parameters<NonNullable<RunReporter["taskFinished"]>>[0]) => finished(task.clonedFrom && cache.hits.has(task.clonedFrom) ? { ...task, cached: true } : task),
  });
}

/** Content hashes of the parameter values by field, for cache keys. */
async function parameterHashes(info: FlowInfo, values: Record<string, unknown>, host: Host): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  // SHA-256 whatever the host prefers: cache keys stay the same across hosts and versions.
  for (const [field, spec] of Object.entries(info.parameters)) out[field] = refOf(host, field, values[spec.name], PARAMETER_ALG).ref.hash;
  return out;
}

/**
 * The file that defined the class, read from the stack captured by `@step`. The first frame is
 * tsflow's own `step` (core/flow.ts, or the bundle it is built into): every frame in that file is
 * tsflow's, wherever tsflow is installed — a symlinked checkout (npm link, workspaces) has no
 * `node_modules` in its real path. A candidate must declare a class of the flow's name, so a
 * helper's frame can never make the workers run the wrong module.
 */
function definingFile(flowClass: Function): string | undefined {
  const first = Object.getOwnPropertyNames(flowClass.prototype)
    .map((k) => getStepMeta(Object.getOwnPropertyDescriptor(flowClass.prototype, k)?.value))
    .find((m) => m?.definedAt);
  const files: string[] = [];
  for (const line of first?.definedAt?.split("\n").slice(1) ?? []) {
    const m = /(?:\(|at |@)((?:file:\/\/)?\/[^():]+\.(?:[cm]?[jt]s|tsx)):\d+/.exec(line);
    if (m) files.push(decodeURIComponent(m[1]!.replace(/^file:\/\//, "")));
  }
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  const own = files[0] === undefined ? undefined : real(files[0]);
  const classDecl = new RegExp(`\\bclass\\s+${flowClass.name.replace(/[$]/g, "\\$")}\\b`);
  for (const path of files.slice(1)) {
    if (real(path) === own) continue;
    // Legacy decorators run through a helper (tslib's __decorate, oxc's or a bundler's runtime
    // helper, sometimes a virtual module): that frame is not the flow's file.
    if (path.includes("/node_modules/") || /[\0\s]@|decorate\.[cm]?js$/.test(path) || !existsSync(path)) continue;
    try {
      if (!classDecl.test(readFileSync(path, "utf8"))) continue;
    } catch {
      continue;
    }
    return path;
  }
  return undefined;
}
