/**
 * The orchestrator: turns the static graph into tasks as the run unfolds, hands each attempt
 * to an executor, applies retries, `@catchError` and timeouts, and records everything in the
 * datastore. It never runs user code itself: a task's artifacts and transition come back
 * through the datastore (or the executor's report), so local workers, containers and Batch
 * jobs are scheduled the same way.
 */
import { getJson, isKeyExists, putJson } from "./_datastore.ts";
import { attemptKey, doneKey, heartbeatKey, runKey, taskKey } from "./_layout.ts";
import { indexRun } from "./_status.ts";
import { LogWriter } from "./_logs.ts";
import { MarkerSyncer } from "./_markers.ts";
import { RunIndexWriter } from "./_tasks.ts";
import { watchSweeps } from "./_sweeps.ts";
import { PARAMETER_ALG, storeArtifact } from "./artifacts.ts";
import { applyConfig, configValues, readConfig, usesConfig } from "./config.ts";
import { TsflowError } from "./errors.ts";
import { type ExitHookOutcome, runExitHooks } from "./exit-hooks.ts";
import type { ParameterSpec } from "./flow.ts";
import { type FlowInfo, type GraphNode, loadFlowInfo, opensSplit } from "./graph.ts";
import { type DoneRecord, errorInfo, type RunRecord, SELF_RECORD_DELAY_MS } from "./task.ts";
import type { ArtifactRef, Bytes, Datastore, Executor, ForeachFrame, Host, Logger, TaskError, TaskExit, TaskResult, TaskSpec } from "./types.ts";
import { VERSION } from "./version.ts";

/** Picks the executor of a step (its `@docker`/`@batch` decorators, `--executor`). */
export type ExecutorSelector = (node: GraphNode, decorators: Record<string, Record<string, unknown>>) => Executor;

/** Live events of a run, for terminals and tests. Every callback is optional. */
export interface RunReporter {
  runStarted?(run: { flow: string; runId: string; steps: string[] }): void;
  /** An attempt started; `mode` is `catch` for @catchError's attempt, which runs no user code. */
  taskStarted?(task: { pathspec: string; step: string; attempt: number; mode?: "run" | "catch" }): void;
  taskOutput?(task: { pathspec: string; step: string }, stream: "stdout" | "stderr", text: string): void;
  /**
   * An attempt ended. `willRetry`: another attempt of the step follows (@retry); `willCatch`:
   * retries are exhausted and @catchError stores the error in `catchVar` and goes on.
   */
  taskFinished?(task: {
    pathspec: string;
    step: string;
    attempt: number;
    ok: boolean;
    error?: TaskError;
    willRetry: boolean;
    willCatch?: boolean;
    catchVar?: string;
    clonedFrom?: string;
    /** A `@cached` step's earlier result was reused (set by the runner). */
    cached?: boolean;
  }): void;
  foreachSplit?(step: string, count: number): void;
  message?(text: string): void;
}

export interface RunOptions {
  flowClass: Function;
  /** Module holding the flow, loaded again by workers. */
  flowFile: string;
  exportName?: string;
  /** The flow built into a plain JS module that local workers import directly. */
  flowModule?: string;
  store: Datastore;
  host: Host;
  executor: Executor | ExecutorSelector;
  /** Parameter values by parameter name, already typed (see {@link resolveParameters}). */
  parameters?: Record<string, unknown>;
  tags?: string[];
  maxWorkers?: number;
  maxNumSplits?: number;
  /** Decorators attached to every step (`--with retry`, `--with batch:memory=8192`). */
  with?: Record<string, Record<string, unknown>>;
  logger?: Logger;
  reporter?: RunReporter;
  /** Aborting stops every task and marks the run failed (Ctrl-C). */
  signal?: AbortSignal;
  freshWorkers?: boolean;
  namespace?: string | null;
  /** Extra fields stored in `run.json` (resume origin, code package…). */
  runRecord?: Record<string, unknown>;
  /**
   * Reuse finished tasks instead of running them (resume): asked for every task before it is
   * scheduled; a returned done record is stored as this run's task without running it.
   */
  reuse?: (task: { step: string; parents: string[]; foreach: ForeachFrame[]; branchPath: string; iteration: number }) => Promise<DoneRecord | undefined>;
  originRunId?: string;
  /**
   * How long a task that records itself runs before it writes its task.json
   * ({@link TaskSpec.recordAfterMs}; default `SELF_RECORD_DELAY_MS`, `TSFLOW_SELF_RECORD_MS`).
   */
  selfRecordMs?: number;
  /**
   * Called once, when no task runs or will run again, before the run's final records are
   * written: the runner lets its executors' workers go then, so their teardown overlaps those
   * writes.
   */
  tasksOver?: () => void;
}

export interface RunResult {
  flow: string;
  runId: string;
  status: "succeeded" | "failed";
  successful: boolean;
  /** The first failure: which task and why. */
  error?: TaskError & { pathspec?: string };
  tasks: number;
  durationMs: number;
  /** How each `@exitHook` function went (absent when the flow has none). */
  exitHooks?: ExitHookOutcome[];
  /** The final run.json as written, for callers that must not depend on reading it back. */
  record: RunRecord & Record<string, unknown>;
}

/** Split/branch position of a task, outermost first. Foreach frames also reach the task. */
interface Frame extends ForeachFrame {
  kind: "static" | "foreach";
  branch: string;
}

interface TaskState {
  id: string;
  step: string;
  parents: string[];
  frames: Frame[];
  /** How many times a switch case looping on this step ran it before, on this path (0 first). */
  iteration: number;
}

const HEARTBEAT_MS = 5000;

/**
 * A new run id: sortable by time, unique without coordination across machines: the clock's
 * millisecond plus 4 random base-36 characters (1.7 million per millisecond). Where the store
 * creates atomically, run.json's create-only write catches the rare tie (see executeRun).
 */
export function newRunId(): string {
  const rand = Math.floor(Math.random() * 36 ** 4)
    .toString(36)
    .padStart(4, "0");
  return `${Date.now()}-${rand}`;
}

/** Runs a flow to the end. Resolves with the run's outcome; rejects only on setup errors. */
export async function executeRun(options: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  const { store, host } = options;
  // Decorator arguments that refer to configs (`@resources({ memory: config.train.memory })`)
  // take this run's values; the parameter values include the configs.
  const info = applyConfig(loadFlowInfo(options.flowClass, options.flowFile), configValues(loadFlowInfo(options.flowClass), options.parameters ?? {}));
  const graph = info.graph;
  const flow = info.name;
  let runId = newRunId();
  const maxWorkers = Math.max(1, options.maxWorkers ?? host.cpus());
  const maxNumSplits = options.maxNumSplits ?? 1000;
  const reporter = options.reporter ?? {};
  const user = host.username();
  const tags = [...new Set(options.tags ?? [])];
  const systemTags = [`user:${user}`, `runtime:${host.runtime}`, `tsflow_version:${VERSION}`];
  for (const t of tags) checkTag(t);

  // Resume passes the origin's parameter refs in `runRecord`: reuse them, store nothing again.
  const reusedParameters = options.runRecord?.parameters as Record<string, ArtifactRef> | undefined;
  const sweeps = reusedParameters ? undefined : await watchSweeps(store);
  const parameters = reusedParameters ?? (await storeParameters(info, options.parameters ?? {}, store, host));
  const record: RunRecord & Record<string, unknown> = {
    flow,
    runId,
    status: "running",
    createdAt: t0,
    user,
    tags,
    systemTags,
    parameters,
    parameterValues: displayValues(info, options.parameters ?? {}),
    flowFile: options.flowFile,
    datastore: store.url,
    runtime: host.runtime,
    version: VERSION,
    graph: summarizeGraph(info),
    ...(host.identity ? { orchestrator: host.identity() } : {}),
    ...(options.originRunId ? { originRunId: options.originRunId } : {}),
    ...options.runRecord,
  };
  const decoratorsOf = (node: GraphNode) => stepDecorators(node, options.with);
  const selectExecutor = typeof options.executor === "function" ? options.executor : () => options.executor as Executor;
  // An executor that cannot carry out some step here (Batch jobs cannot reach a local disk)
  // refuses before a run record exists: no failed run is left behind for a setup mistake.
  const checked = new Set<Executor>();
  for (const node of Object.values(graph.nodes)) {
    const ex = selectExecutor(node, decoratorsOf(node));
    if (checked.has(ex)) continue;
    checked.add(ex);
    await ex.check?.(store);
  }
  // Create-only: two machines drawing the same id in the same millisecond must not share
  // (and overwrite) one run. The loser draws again.
  for (let tries = 1; ; tries++) {
    try {
      await indexRun(store, flow, runId, t0);
      await putJson(store, runKey(flow, runId), record, { ifAbsent: true });
      break;
    } catch (e) {
      if (!isKeyExists(e) || tries >= 5) throw e;
      runId = newRunId();
      record.runId = runId;
    }
  }
  // A gc that swept between storing the parameters and run.json may have taken their blobs.
  if (await sweeps?.swept()) await storeParameters(info, options.parameters ?? {}, store, host);
  await store.put(heartbeatKey(flow, runId), new TextEncoder().encode(String(Date.now())));
  // Every task's records, collected as they are written, for the run index (core/_tasks.ts).
  const index = new RunIndexWriter(store, flow, runId, (e) => (options.logger ?? silentLogger).warn(`cannot write the index of run ${runId} (readers will read its tasks one by one): ${(e as Error)?.message ?? e}`));
  reporter.runStarted?.({ flow, runId, steps: graph.order });

  const controller = new AbortController();
  const onAbort = () => controller.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) controller.abort();
  const heartbeat = setInterval(() => {
    store.put(heartbeatKey(flow, runId), new TextEncoder().encode(String(Date.now()))).catch(() => {});
  }, HEARTBEAT_MS);

  const prepared = new Map<Executor, Promise<void>>();
  const prepare = (ex: Executor) => {
    let p = prepared.get(ex);
    if (!p) {
      p = Promise.resolve(
        ex.prepare?.({
          flowName: flow,
          flowFile: options.flowFile,
          exportName: options.exportName,
          flowModule: options.flowModule,
          runId,
          datastore: store,
          maxWorkers,
          freshWorkers: options.freshWorkers,
          logger: options.logger ?? silentLogger,
        }),
      );
      prepared.set(ex, p);
    }
    return p;
  };
  if (options.with?.catch) {
    const skipped = graph.order.filter((s) => graph.nodes[s]!.foreach || graph.nodes[s]!.condition);
    if (skipped.length > 0) reporter.message?.(`--with catch: not applied to ${skipped.map((s) => `'${s}'`).join(", ")}: a foreach or switch step cannot go on without its list or value`);
  }
  // Warm up the executor of `start` while the rest is set up.
  prepare(selectExecutor(graph.nodes.start!, decoratorsOf(graph.nodes.start!))).catch(() => {});

  let nextTaskId = 1;
  let taskCount = 0;
  let running = 0;
  /** Success markers being written (see runTask): the run is not over while one is. */
  let markers = 0;
  let wake = () => {};
  let failure: RunResult["error"];
  const queue: TaskState[] = [];
  /**
   * Tasks whose parents' markers are not all durable yet: they wait for the next marker flush
   * (core/_markers.ts), outside the queue, so nothing scans them while they wait.
   */
  let held: TaskState[] = [];
  // A store that can sync a key written earlier gets its markers written plainly and synced
  // later, in batches, when a dependent or the run's end needs them; one that cannot makes
  // each marker durable as it writes it (S3: on its answer).
  const markerSync = store.sync
    ? new MarkerSyncer(store, () => {
        const waiting = held;
        held = [];
        for (const task of waiting) (task.parents.every((p) => markerSync!.durable(p)) ? queue : held).push(task);
        wake();
      })
    : undefined;
  const joinBuckets = new Map<string, { parents: Map<string, string>; expected: number; frames: Frame[] }>();

  const fail = (error: TaskError & { pathspec?: string }) => {
    failure ??= error;
    controller.abort();
  };

  const schedule = (step: string, parents: string[], frames: Frame[], iteration = 0) => {
    const task = { id: String(nextTaskId++), step, parents, frames, iteration };
    if (!markerSync || parents.every((p) => markerSync.durable(p))) queue.push(task);
    else {
      held.push(task);
      markerSync.request();
    }
  };

  /**
   * A task's success marker is written (by the orchestrator or the task): the task is reported
   * as finished and its dependents scheduled at once, but they start only once the marker is
   * synced (see `schedule`). The run index records the task once it is durable; a marker that
   * cannot be synced is removed and fails the run naming the task.
   */
  const committed = (task: TaskState, key: string, done: DoneRecord, report: () => void, spec?: TaskSpec) => {
    const pathspec = `${runId}/${task.step}/${task.id}`;
    if (markerSync) {
      markerSync.add({
        pathspec,
        key,
        synced: () => index.done(task.step, task.id, done),
        failed: async (e) => {
          await store.delete(key).catch(() => {});
          // A task that recorded itself may have had its doc in that marker only.
          if (spec) await recordTask(spec, done.startedAt);
          index.undone(task.step, task.id, done.attempt, done);
          fail({ ...errorInfo(e), pathspec });
        },
      });
    } else index.done(task.step, task.id, done);
    report();
    onSuccess(task, done);
  };

  const onSuccess = (task: TaskState, result: TaskResult) => {
    const node = graph.nodes[task.step]!;
    const pathspec = `${runId}/${task.step}/${task.id}`;
    if (node.type === "end") return;
    const frames = task.frames;
    if (node.foreach) {
      const count = result.foreachCount ?? 0;
      if (count > maxNumSplits) {
        fail({ type: "BadTransition", message: `step '${task.step}': foreach over '${node.foreach}' has ${count} items, more than --max-num-splits ${maxNumSplits}`, pathspec });
        return;
      }
      if (count === 0) {
        fail({ type: "BadTransition", message: `step '${task.step}': foreach over '${node.foreach}' has no items, so the flow cannot go on`, pathspec });
        return;
      }
      reporter.foreachSplit?.(node.next[0]!, count);
      for (let i = 0; i < count; i++) {
        schedule(node.next[0]!, [pathspec], [...frames, { kind: "foreach", step: task.step, task: task.id, index: i, count, branch: String(i) }]);
      }
      return;
    }
    const targets = result.next;
    for (const target of targets) {
      const tnode = graph.nodes[target]!;
      let childFrames = frames;
      if (opensSplit(node)) childFrames = [...frames, { kind: "static", step: task.step, task: task.id, index: node.next.indexOf(target), count: node.next.length, branch: target }];
      if (tnode.isJoin && tnode.joins) {
        const top = childFrames.at(-1)!;
        const key = `${target}\0${top.task}`;
        let bucket = joinBuckets.get(key);
        if (!bucket) {
          bucket = { parents: new Map(), expected: top.count, frames: childFrames.slice(0, -1) };
          joinBuckets.set(key, bucket);
        }
        // Inputs are ordered by foreach index, or by branch order for static splits.
        bucket.parents.set(String(top.index).padStart(8, "0"), pathspec);
        if (bucket.parents.size === bucket.expected) {
          joinBuckets.delete(key);
          const ordered = [...bucket.parents.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, p]) => p);
          schedule(target, ordered, bucket.frames);
        }
      } else {
        schedule(target, [pathspec], childFrames, target === task.step ? task.iteration + 1 : 0);
      }
    }
  };

  const runTask = async (task: TaskState): Promise<void> => {
    const node = graph.nodes[task.step]!;
    const decorators = decoratorsOf(node);
    const pathspec = `${runId}/${task.step}/${task.id}`;
    const foreach = task.frames.filter((f) => f.kind === "foreach").map(({ step, task, index, count }) => ({ step, task, index, count }));
    const doc = {
      step: task.step,
      taskId: task.id,
      parents: task.parents,
      foreach,
      ...(task.iteration > 0 ? { iteration: task.iteration } : {}),
      createdAt: Date.now(),
    };
    index.begin(doc);

    if (options.reuse) {
      const branchPath = task.frames.map((f) => `${f.step}:${f.branch}`).join("/");
      const reused = await options.reuse({ step: task.step, parents: task.parents, foreach, branchPath, iteration: task.iteration });
      if (reused) {
        await putJson(store, taskKey(flow, runId, task.step, task.id), doc);
        const key = doneKey(flow, runId, task.step, task.id);
        // The origin's own doc (in its done.json) describes the origin task, not this clone.
        const { doc: _origin, ...clone } = reused;
        await putJson(store, key, clone);
        // A clone's marker counts like a run task's: synced before its dependents start.
        committed(task, key, clone, () => reporter.taskFinished?.({ pathspec, step: task.step, attempt: reused.attempt, ok: true, willRetry: false, clonedFrom: reused.clonedFrom }));
        return;
      }
    }

    const retries = Math.max(0, Number(decorators.retry?.times ?? 0));
    const delayMs = Number(decorators.retry?.minutesBetweenRetries ?? 0) * 60_000;
    // A foreach or switch cannot go on without the list or the value it splits on: @catchError
    // in code is a graph error there, and `--with catch` leaves those steps alone (said at start).
    const catchVar = decorators.catch && !node.foreach && !node.condition ? String(decorators.catch.var ?? "error") : undefined;
    const executor = selectExecutor(node, decorators);
    await prepare(executor);
    // A task that commits itself also records itself: its first attempt writes task.json with its
    // start (TaskSpec.taskDoc), so the orchestrator, the serial part of a big foreach, writes
    // nothing per task on the way out either.
    const selfRecorded = commits(executor);
    if (!selfRecorded) await putJson(store, taskKey(flow, runId, task.step, task.id), doc);

    let lastError: TaskError | undefined;
    // What a failed attempt of a @catchError step stored before it raised (see core/task.ts).
    let lastArtifacts: Record<string, ArtifactRef> | undefined;
    for (let attempt = 0; ; attempt++) {
      const mode: TaskSpec["mode"] = attempt <= retries ? "run" : "catch";
      if (mode === "catch" && !catchVar) break;
      if (controller.signal.aborted) {
        lastError ??= { type: "Cancelled", message: "the run was stopped before this task finished" };
        break;
      }
      const spec: TaskSpec = {
        flowName: flow,
        flowFile: options.flowFile,
        exportName: options.exportName,
        module: options.flowModule,
        datastore: store.location ?? store.url,
        runId,
        step: task.step,
        taskId: task.id,
        attempt,
        parents: task.parents,
        foreach,
        mode,
        ...(mode === "catch" ? { caught: { variable: catchVar!, error: lastError!, ...(lastArtifacts ? { artifacts: lastArtifacts } : {}) } } : {}),
        env: stringRecord(decorators.environment?.vars),
        resources: mergeResources(decorators),
        timeoutSeconds: Number(decorators.timeout?.seconds ?? 0) || undefined,
        decorators: withoutEnvironmentValues(decorators),
        tags: [...tags, ...systemTags],
        originRunId: options.originRunId,
        username: user,
        // Metaflow's default: the namespace of the user who started the run.
        namespace: options.namespace === undefined ? `user:${user}` : options.namespace,
        ...(selfRecorded ? { commit: true } : {}),
        ...(selfRecorded && attempt === 0 ? { taskDoc: { ...doc, start: { attempt, mode, executor: executor.name } }, ...(options.selfRecordMs !== undefined ? { recordAfterMs: options.selfRecordMs } : {}) } : {}),
      };
      const outcome = await runAttempt(spec, executor);
      if (outcome.ok) {
        const done: DoneRecord = { ...outcome.result!, attempt };
        // The success marker is the one record synced to disk before dependents start (written
        // here, or by the task itself when it commits). Its sync is deferred and batched (see
        // `committed`); a store without `sync` makes the write itself durable, which does not
        // hold a worker slot: the next task starts meanwhile.
        const key = doneKey(flow, runId, task.step, task.id);
        const report = () => reporter.taskFinished?.({ pathspec, step: task.step, attempt, ok: true, willRetry: false });
        if (spec.commit) {
          committed(task, key, done, report, spec);
          return;
        }
        markers++;
        putJson(store, key, done, markerSync ? undefined : { durable: true })
          .then(
            () => committed(task, key, done, report),
            (e) => {
              index.undone(task.step, task.id, attempt, done);
              fail({ ...errorInfo(e), pathspec });
            },
          )
          .catch((e) => fail({ ...errorInfo(e), pathspec }))
          .finally(() => {
            markers--;
            wake();
          });
        return;
      }
      lastError = outcome.error;
      lastArtifacts = outcome.artifacts;
      const willRetry = !controller.signal.aborted && attempt < retries;
      const willCatch = !controller.signal.aborted && mode === "run" && attempt === retries && catchVar !== undefined;
      reporter.taskFinished?.({ pathspec, step: task.step, attempt, ok: false, error: lastError, willRetry, ...(willCatch ? { willCatch, catchVar } : {}) });
      if (!willRetry && !willCatch) break;
      if (attempt < retries && delayMs > 0) await sleep(delayMs, controller.signal);
    }
    fail({ ...(lastError ?? { type: "Error", message: "task failed" }), pathspec });
  };

  // A datastore that refuses log writes is reported once per run, not once a second.
  let logWarned = false;
  const logWarning = (pathspec: string, e: unknown) => {
    if (logWarned) return;
    logWarned = true;
    (options.logger ?? silentLogger).warn(`cannot store the output of ${pathspec} (will retry): ${(e as Error)?.message ?? e}`);
  };

  const runAttempt = async (spec: TaskSpec, executor: Executor): Promise<{ ok: boolean; result?: TaskResult; error?: TaskError; artifacts?: Record<string, ArtifactRef> }> => {
    const pathspec = `${spec.runId}/${spec.step}/${spec.taskId}`;
    // One writer per attempt: the orchestrator, unless the task stores its own output (Batch).
    const logs = executor.storesOwnLogs
      ? undefined
      : new LogWriter(store, { flow, run: runId, step: spec.step, task: spec.taskId, attempt: spec.attempt }, { onError: (e) => logWarning(pathspec, e) });
    const startedAt = Date.now();
    if (!spec.taskDoc) await putJson(store, attemptKey(flow, runId, spec.step, spec.taskId, spec.attempt, "start.json"), { attempt: spec.attempt, mode: spec.mode, startedAt, executor: executor.name });
    reporter.taskStarted?.({ pathspec, step: spec.step, attempt: spec.attempt, mode: spec.mode === "catch" ? "catch" : "run" });
    // A task that records itself writes its task.json once it has run SELF_RECORD_DELAY_MS; one
    // whose step blocks its thread (a long synchronous loop) cannot, so the orchestrator records a
    // task still running a while later, unless it finished meanwhile.
    // A remote executor's attempt may wait in a queue (Batch) long before it starts: its job
    // records the task itself once it runs, and the orchestrator does when it ends unrecorded.
    // A task recorded as it starts (recordAfterMs 0) needs none: it wrote task.json before its
    // step ran, and a backstop of 0 ms raced that write with a start of its own.
    let backstop: Promise<void> | undefined;
    const timer = spec.taskDoc && !executor.remote && spec.recordAfterMs !== 0 ? setTimeout(() => (backstop = recordTask(spec, startedAt, true)), 5 * (spec.recordAfterMs ?? SELF_RECORD_DELAY_MS)) : undefined;
    let exit: TaskExit;
    try {
      exit = await executor.run(spec, {
        signal: controller.signal,
        output(stream, chunk) {
          logs?.add(stream, chunk);
          reporter.taskOutput?.({ pathspec, step: spec.step }, stream, new TextDecoder().decode(chunk));
        },
      });
    } catch (e) {
      exit = { completed: false, error: errorInfo(e) };
    }
    clearTimeout(timer);
    await backstop;
    await logs?.close();
    const resultKey = attemptKey(flow, runId, spec.step, spec.taskId, spec.attempt, "result.json");
    if (spec.commit && !exit.completed) {
      // Stopped (a timeout, a cancelled run, a crash) after it committed: it succeeded.
      const done = await getJson<DoneRecord>(store, doneKey(flow, runId, spec.step, spec.taskId)).catch(() => null);
      if (done?.attempt === spec.attempt && done.ok) exit = { completed: true, result: stripAttempt(done) };
    }
    // Gone before it recorded itself (a worker that could not load the flow, a crash): the
    // task's record is written here, so the attempt's end record below has its task.
    if (!exit.completed) await recordTask(spec, startedAt);
    if (spec.commit && exit.completed && !exit.result) {
      // An executor that did not hand the result back: the task's own record says how it went.
      const done = await getJson<DoneRecord>(store, doneKey(flow, runId, spec.step, spec.taskId)).catch(() => null);
      if (done?.attempt === spec.attempt) exit = { completed: true, result: stripAttempt(done) };
    }
    const result = (exit.completed ? exit.result : undefined) ?? (await getJson<TaskResult>(store, resultKey).catch(() => null));
    if (result) index.attempt(spec.step, spec.taskId, spec.attempt, startedAt, result);
    // The task wrote its task.json before its failure's result.json, unless that write failed.
    if (exit.completed && result && !result.ok) await recordTask(spec, startedAt);
    if (exit.completed && result) return result.ok ? { ok: true, result } : { ok: false, error: result.error, artifacts: Object.keys(result.artifacts ?? {}).length ? result.artifacts : undefined };
    // The attempt ended without its own result: killed by @timeout, crashed, or cancelled because
    // the run stopped. Its end record is written here, so every attempt says when and why it ended.
    const error = (exit.completed ? undefined : exit.error) ?? { type: "Executor", message: `task ${pathspec} ended without writing its result` };
    if (!result) {
      const end: TaskResult = { ok: false, error, artifacts: {}, next: [], startedAt, finishedAt: Date.now() };
      await putJson(store, resultKey, end).then(
        () => index.attempt(spec.step, spec.taskId, spec.attempt, startedAt, end),
        (e) => {
          index.attempt(spec.step, spec.taskId, spec.attempt, startedAt, null);
          options.logger?.warn(`cannot write the end record of ${pathspec}: ${(e as Error).message}`);
        },
      );
    }
    return { ok: false, error };
  };

  /**
   * The task.json of a task that records itself (TaskSpec.taskDoc), when it has none: a task
   * that did not succeed, or one still running (`unlessDone`: not when its done.json, which
   * carries the doc, is there already). A no-op for other tasks and when task.json exists.
   */
  const recordTask = async (spec: TaskSpec, startedAt: number, unlessDone = false): Promise<void> => {
    const taskDoc = spec.taskDoc;
    if (!taskDoc) return;
    const key = taskKey(flow, runId, spec.step, spec.taskId);
    if (await store.has(key).catch(() => true)) return;
    if (unlessDone && (await store.has(doneKey(flow, runId, spec.step, spec.taskId)).catch(() => true))) return;
    await putJson(store, key, { ...taskDoc, start: { ...taskDoc.start, startedAt } }).catch(() => {});
  };

  // Tasks commit themselves where the executor hands their result back and the store can make
  // a marker another process wrote durable, or every write is (S3; see TaskSpec.commit).
  const commits = (ex: Executor) => Boolean(ex.commitsTasks && (store.sync || store.durableWrites));

  // Executors with their own capacity, by step (see Executor.capacity).
  const lanes = new Map<Executor, { running: number; capacity: number }>();
  const laneSteps = new Map<string, { running: number; capacity: number }>();
  for (const node of Object.values(graph.nodes)) {
    const ex = selectExecutor(node, decoratorsOf(node));
    if (!ex.capacity) continue;
    let lane = lanes.get(ex);
    if (!lane) lanes.set(ex, (lane = { running: 0, capacity: ex.capacity }));
    laneSteps.set(node.name, lane);
  }
  const laneOf = (step: string) => laneSteps.get(step);

  schedule("start", [], []);
  await new Promise<void>((resolve) => {
    const pump = () => {
      const start = (task: TaskState, lane?: { running: number }) => {
        running++;
        if (lane) lane.running++;
        taskCount++;
        runTask(task)
          .catch((e) => fail({ ...errorInfo(e), pathspec: `${runId}/${task.step}/${task.id}` }))
          .finally(() => {
            running--;
            if (lane) lane.running--;
            pump();
          });
      };
      if (!laneSteps.size) {
        while (!controller.signal.aborted && running < maxWorkers && queue.length > 0) start(queue.shift()!);
      } else {
        // Some steps run on an executor with its own capacity (a cloud queue): their tasks
        // go out up to that capacity, the others up to maxWorkers, each without waiting for
        // the other kind.
        let local = running - [...lanes.values()].reduce((n, l) => n + l.running, 0);
        for (let i = 0; i < queue.length && !controller.signal.aborted; ) {
          const lane = laneOf(queue[i]!.step);
          if (lane ? lane.running >= lane.capacity : local >= maxWorkers) {
            i++;
            continue;
          }
          const [task] = queue.splice(i, 1);
          if (!lane) local++;
          start(task!, lane);
        }
      }
      if (running === 0 && markers === 0 && !markerSync?.busy && ((queue.length === 0 && held.length === 0) || controller.signal.aborted)) resolve();
    };
    controller.signal.addEventListener("abort", () => queueMicrotask(pump));
    wake = pump;
    pump();
  });

  // Markers nothing needed yet (the end step's, a foreach's whose join never came): durable
  // before the final record says whether they count, also when the run failed.
  options.tasksOver?.();
  await markerSync?.flushAll();
  clearInterval(heartbeat);
  options.signal?.removeEventListener("abort", onAbort);
  if (!failure && options.signal?.aborted) failure = { type: "Cancelled", message: "the run was stopped (Ctrl-C)" };
  if (!failure && joinBuckets.size > 0) failure = { type: "Error", message: "some joins never received all their inputs" };
  const status = failure ? "failed" : "succeeded";
  const finishedAt = Date.now();
  const final = { ...record, status, finishedAt, ...(failure ? { error: failure } : {}) };
  // The index first: a run that reads as finished has it already; one whose final record is
  // lost keeps an index naming a status run.json never got, which readers then ignore.
  await index.finish({ status, finishedAt });
  await writeFinalRecord(store, runKey(flow, runId), final);
  // The status is final before any exit hook runs: a hook can report, never change it.
  const report = (m: string) => (reporter.message ? reporter.message(m) : options.logger ? options.logger.warn(m) : console.warn(m));
  const exitHooks = await runExitHooks(options.flowClass, { store, host, flowName: flow, runId, report });
  return { flow, runId, status, successful: !failure, error: failure, tasks: taskCount, durationMs: finishedAt - t0, ...(exitHooks.length ? { exitHooks } : {}), record: final };
}

/** A task's done record as the result of the attempt that wrote it. */
function stripAttempt(done: DoneRecord): TaskResult {
  const { attempt: _attempt, clonedFrom: _cloned, doc: _doc, ...result } = done;
  return result;
}

/**
 * Writes the run's final status. It is the one record that says whether all the work before it
 * counts, so it is tried harder than a task's writes: a store whose retries ran out in a burst of
 * errors gets three more rounds a few seconds apart before the run is reported as failed. (A
 * write whose response was lost may have landed anyway; a later `resume` then finds the run
 * succeeded and says so.)
 */
async function writeFinalRecord(store: Datastore, key: string, doc: unknown): Promise<void> {
  for (let round = 0; ; round++) {
    try {
      return await putJson(store, key, doc);
    } catch (e) {
      if (round >= 3 || isKeyExists(e)) throw e;
      await new Promise((r) => setTimeout(r, 1000 * 2 ** round));
    }
  }
}

/** Turns parameter values into artifacts (stored once, then referenced by every task). */
async function storeParameters(info: FlowInfo, values: Record<string, unknown>, store: Datastore, host: Host): Promise<Record<string, ArtifactRef>> {
  const out: Record<string, ArtifactRef> = {};
  for (const [field, spec] of Object.entries(info.parameters)) {
    // SHA-256 whatever the host prefers: @cached steps key on these hashes (runner/run.ts).
    out[field] = await storeArtifact(store, host, field, values[spec.name], PARAMETER_ALG);
  }
  return out;
}

function displayValues(info: FlowInfo, values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of Object.values(info.parameters)) {
    const v = values[spec.name];
    if (spec.kind === "file") out[spec.name] = typeof v === "string" ? `<${v.length} characters>` : `<${(v as Uint8Array | undefined)?.byteLength ?? 0} bytes>`;
    else out[spec.name] = v === undefined ? null : displayable(v);
  }
  return out;
}

/**
 * A value as run.json can hold it: a JSON parameter nested too deeply for JSON.stringify would
 * otherwise fail the run before it starts (the artifact itself stores fine).
 */
function displayable(v: unknown): unknown {
  try {
    JSON.stringify(v);
    return v;
  } catch (e) {
    return `<not displayable: ${(e as Error).message}>`;
  }
}

/** A compact graph for `run.json`: the viewer and client draw it without loading the code. */
/**
 * The decorators a step runs with: its own options win over `--with`, but environment variables
 * add up. Local runs and Step Functions deployments both go through this one rule.
 */
export function stepDecorators(node: GraphNode, withDecorators: Record<string, Record<string, unknown>> | undefined): Record<string, Record<string, unknown>> {
  const merged = { ...(withDecorators ?? {}), ...node.decorators };
  const withVars = withDecorators?.environment?.vars;
  const stepVars = node.decorators.environment?.vars;
  if (withVars && stepVars) merged.environment = { vars: { ...(withVars as object), ...(stepVars as object) } };
  return merged;
}

export function summarizeGraph(info: FlowInfo) {
  return {
    order: info.graph.order,
    steps: Object.fromEntries(
      info.graph.order.map((name) => {
        const n = info.graph.nodes[name]!;
        return [name, { type: n.type, next: n.next, foreach: n.foreach, condition: n.condition, cases: n.cases, isJoin: n.isJoin, decorators: Object.keys(n.decorators) }];
      }),
    ),
  };
}

function mergeResources(decorators: Record<string, Record<string, unknown>>) {
  const r: { cpu?: number; memory?: number; gpu?: number } = {};
  for (const name of ["resources", "docker", "batch"]) {
    const d = decorators[name];
    if (!d) continue;
    for (const k of ["cpu", "memory", "gpu"] as const) {
      if (d[k] !== undefined) r[k] = Math.max(r[k] ?? 0, Number(d[k]));
    }
  }
  return r;
}

/**
 * The decorators a task spec carries, with `@environment`'s values left out: they travel only
 * in `spec.env`, which executors hand to the task's process environment and never store, while
 * the rest of a spec may be written down (a Batch job's spec too big for its environment goes
 * through the datastore). The variable names stay, for executors that want to know them.
 */
function withoutEnvironmentValues(decorators: Record<string, Record<string, unknown>>): Record<string, Record<string, unknown>> {
  const vars = decorators.environment?.vars;
  if (!vars || typeof vars !== "object") return decorators;
  return { ...decorators, environment: { names: Object.keys(vars) } };
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) out[k] = String(v);
  return out;
}

function checkTag(tag: string) {
  if (tag.length === 0 || tag.length > 256 || /[\n\r]/.test(tag)) throw new TsflowError("BadOption", `tag '${tag.slice(0, 40)}' is invalid: tags are 1 to 256 characters on one line`);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

const silentLogger: Logger = { info() {}, warn() {}, error() {} };

// ---------------------------------------------------------------------------------------
// Parameters from the command line

/**
 * Turns raw values (strings from the command line, or typed values from code) into the typed
 * parameter values of the flow, checking types, choices and required ones. IncludeFile
 * parameters are read here, so the run keeps the file's content.
 */
export async function resolveParameters(info: FlowInfo, raw: Record<string, unknown>, host: Host, configs: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const specs = Object.values(info.parameters);
  const known = new Set(specs.filter((p) => p.kind !== "config").map((p) => p.name));
  const configNames = new Set(specs.filter((p) => p.kind === "config").map((p) => p.name));
  for (const key of Object.keys(raw)) {
    if (configNames.has(key)) throw new TsflowError("BadParameter", `'--${key}' is a config of flow ${info.name}: give it as --config ${key}=FILE (or inline JSON)`);
    if (!known.has(key)) {
      throw new TsflowError("BadParameter", `flow ${info.name} has no parameter '--${key}'${known.size ? ` (it has ${[...known].map((k) => `--${k}`).join(", ")})` : ""}`);
    }
  }
  for (const key of Object.keys(configs)) {
    if (!configNames.has(key)) {
      throw new TsflowError("BadConfig", `flow ${info.name} has no config '${key}'${configNames.size ? ` (it has ${[...configNames].join(", ")})` : " (it declares none)"}`);
    }
  }
  // Configs first: parameter defaults may come from them (`default: config.train.lr`).
  for (const spec of specs) if (spec.kind === "config") out[spec.name] = await readConfig(spec, configs[spec.name], host);
  const resolved = usesConfig(info) ? applyConfig(info, configValues(info, out)) : info;
  for (const spec of Object.values(resolved.parameters)) {
    if (spec.kind === "config") continue;
    out[spec.name] = await resolveOne(spec, raw[spec.name], host);
  }
  return out;
}

async function resolveOne(spec: ParameterSpec, given: unknown, host: Host): Promise<unknown> {
  const opt = `--${spec.name}`;
  if (spec.kind === "file") {
    const path = given ?? spec.default;
    if (path === undefined) {
      if (spec.required) throw new TsflowError("BadParameter", `option ${opt} is required: give the path of the file to include`);
      return undefined;
    }
    let bytes: Bytes;
    try {
      bytes = await host.readFile(String(path));
    } catch (e) {
      throw new TsflowError("BadParameter", `option ${opt}: cannot read file '${path}' (${(e as Error).message})`);
    }
    return spec.text === false ? bytes : new TextDecoder().decode(bytes);
  }
  if (given === undefined) {
    if (spec.required && spec.default === undefined) throw new TsflowError("BadParameter", `option ${opt} is required${spec.help ? ` (${spec.help})` : ""}`);
    // A json parameter's default written as JSON text means the value it spells, exactly as the
    // same text given on the command line would (Metaflow's JSONType default does the same).
    if (spec.type === "json" && typeof spec.default === "string") {
      try {
        return JSON.parse(spec.default, (k, v) => (k === "__proto__" ? undefined : v));
      } catch (e) {
        throw new TsflowError("BadFlow", `the default of json parameter '${spec.name}' is a string that is not JSON: ${(e as Error).message}`);
      }
    }
    return spec.default;
  }
  let value: unknown = given;
  if (typeof given === "string") {
    switch (spec.type) {
      case "number": {
        const n = Number(given);
        if (given.trim() === "" || !Number.isFinite(n)) throw new TsflowError("BadParameter", `option ${opt} must be a number, got '${truncate(given)}'`);
        value = n;
        break;
      }
      case "boolean": {
        const v = given.toLowerCase();
        if (!["true", "false", "1", "0", "yes", "no"].includes(v)) throw new TsflowError("BadParameter", `option ${opt} must be true or false, got '${truncate(given)}'`);
        value = v === "true" || v === "1" || v === "yes";
        break;
      }
      case "json": {
        try {
          value = JSON.parse(given, (k, v) => (k === "__proto__" ? undefined : v));
        } catch (e) {
          throw new TsflowError("BadParameter", `option ${opt} must be JSON: ${(e as Error).message}`);
        }
        break;
      }
      default:
        value = given;
    }
  } else {
    const expected = spec.type === "json" ? undefined : spec.type;
    if (expected && typeof given !== expected) throw new TsflowError("BadParameter", `parameter '${spec.name}' must be a ${expected}, got ${typeof given}`);
  }
  if (spec.choices && !spec.choices.some((c) => c === value)) {
    throw new TsflowError("BadParameter", `option ${opt} must be one of ${spec.choices.map((c) => JSON.stringify(c)).join(", ")}, got ${truncate(JSON.stringify(value))}`);
  }
  return value;
}

function truncate(s: string) {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
