/**
 * `spin`: re-run one task of a past run with its exact inputs — its parents' artifacts, its
 * foreach input and index, the run's parameters and configs — and the step's *current* code.
 * It is how one step of a big flow is debugged or unit-tested in seconds.
 *
 * Nothing of the past run is copied: the spun task lives in a new run (tagged `spin`, with
 * `spinOf` in its run.json) whose task spec points at the origin's tasks (`parents`, and
 * `run` on its foreach frame), so it reads exactly what the original read and nothing else.
 * Without persisting, every write goes to an in-memory layer over the datastore and is dropped.
 */
import { getJson, putJson } from "./_datastore.ts";
import { SWEEPS_PREFIX } from "./_sweeps.ts";
import { attemptKey, doneKey, runKey, taskKey } from "./_layout.ts";
import { indexRun } from "./_status.ts";
import { docOf } from "./_tasks.ts";
import { contentHash, loadArtifact } from "./artifacts.ts";
import type { TaskDoc } from "./client.ts";
import { applyConfig, configValues } from "./config.ts";
import { TsflowError } from "./errors.ts";
import { loadFlowInfo } from "./graph.ts";
import { newRunId, summarizeGraph } from "./runtime.ts";
import { type DoneRecord, executeTask, type RunRecord } from "./task.ts";
import type { ArtifactRef, Bytes, Datastore, Host, TaskError, TaskSpec } from "./types.ts";
import { VERSION } from "./version.ts";

export interface SpinOptions {
  store: Datastore;
  host: Host;
  /** The flow class with the step's current code. */
  flowClass: Function;
  /** The task to re-run: `Flow/run/step/task` or `run/step/task`. */
  pathspec: string;
  /** Values replacing the task's inputs of the same name (artifacts or parameters). */
  overrides?: Record<string, unknown>;
  /** Store the new task as a run (default true); false keeps nothing. */
  persist?: boolean;
  /** Extra tags of the spin run (it always has `spin`). */
  tags?: string[];
  /**
   * Runs the task inside its process environment (`@environment`, `@secrets`): calls `run` with
   * a function masking secret values in the task's error. Default: runs it as is.
   */
  around?: <T>(spec: TaskSpec, run: (redact?: (text: string) => string) => Promise<T>) => Promise<T>;
  /** The task's output, once it has ended, stored with the spun task when persisting. */
  logs?: () => { stdout: Bytes[]; stderr: Bytes[] };
}

/** How an artifact of the spun task compares with the original task's. */
export type ArtifactChange = "new" | "changed" | "same" | "removed";

export interface SpinResult {
  /** The task that was re-run: `Flow/run/step/task`. */
  origin: string;
  /** The new task: `Flow/spinRun/step/1` (in the datastore only when persisted). */
  pathspec: string;
  runId: string;
  persisted: boolean;
  ok: boolean;
  error?: TaskError;
  /** Every artifact of the new task, by reference. */
  refs: Record<string, ArtifactRef>;
  /** Values of what the task produced: artifacts that differ from its inputs (overrides included). */
  artifacts: Record<string, unknown>;
  /** Each artifact against the original task's (empty when the original had not succeeded). */
  diff: Record<string, ArtifactChange>;
  /** The original task's artifacts, by reference (empty when it had not succeeded). */
  originalRefs: Record<string, ArtifactRef>;
  durationMs: number;
  /** Loads any artifact of the new task. */
  data(name: string): Promise<unknown>;
}

/** Re-runs one past task; resolves with what it produced (a step error is in `error`, not thrown). */
export async function spinTask(options: SpinOptions): Promise<SpinResult> {
  const t0 = Date.now();
  const { host, flowClass } = options;
  const info = loadFlowInfo(flowClass);
  const parts = options.pathspec.split("/").filter(Boolean);
  if (parts.length !== 3 && parts.length !== 4) {
    throw new TsflowError("BadOption", `spin takes a task pathspec Flow/run/step/task (or run/step/task), got '${options.pathspec}'`);
  }
  const [flow, run, step, task] = parts.length === 4 ? (parts as [string, string, string, string]) : ([info.name, ...parts] as [string, string, string, string]);
  if (flow !== info.name) throw new TsflowError("BadOption", `pathspec ${options.pathspec} names flow ${flow}, but the flow file defines ${info.name}`);
  const node = info.graph.nodes[step];
  if (!node) throw new TsflowError("NotFound", `flow ${flow} has no step '${step}' in its current code (steps: ${info.graph.order.join(", ")})`);
  const base = options.store;
  const [origin, file, original] = await Promise.all([
    getJson<RunRecord & { parameterValues?: unknown; flowFile?: string }>(base, runKey(flow, run)),
    getJson<TaskDoc>(base, taskKey(flow, run, step, task)),
    getJson<DoneRecord>(base, doneKey(flow, run, step, task)),
  ]);
  // A task that recorded itself and succeeded quickly keeps its doc in done.json only.
  const doc = file ?? docOf(original);
  if (!origin) throw new TsflowError("NotFound", `run ${flow}/${run} is not in datastore ${base.url}`);
  if (!doc) throw new TsflowError("NotFound", `task ${flow}/${run}/${step}/${task} is not in datastore ${base.url}`);

  const persist = options.persist ?? true;
  const store = persist ? base : memoryLayer(base);
  const runId = newRunId();
  const taskId = "1";
  const user = host.username();
  const originPath = `${flow}/${run}/${step}/${task}`;
  // The origin's own pathspec when it is a clone (resume, @cached): its inputs are the clone's.
  const record = {
    flow,
    runId,
    status: "running",
    createdAt: t0,
    user,
    tags: [...new Set(["spin", ...(options.tags ?? [])])],
    systemTags: [`user:${user}`, `runtime:${host.runtime}`, `tsflow_version:${VERSION}`],
    parameters: origin.parameters,
    parameterValues: origin.parameterValues,
    flowFile: origin.flowFile,
    datastore: base.url,
    runtime: host.runtime,
    version: VERSION,
    graph: summarizeGraph(info),
    originRunId: run,
    spinOf: originPath,
  };
  await indexRun(store, flow, runId, t0);
  await putJson(store, runKey(flow, runId), record);
  const foreach = (doc.foreach ?? []).map((f) => ({ ...f, run: f.run ?? run }));
  await putJson(store, taskKey(flow, runId, step, taskId), { step, taskId, parents: doc.parents, foreach, createdAt: Date.now(), spinOf: originPath });
  await putJson(store, attemptKey(flow, runId, step, taskId, 0, "start.json"), { attempt: 0, mode: "run", startedAt: Date.now(), executor: "spin" });
  // Decorator arguments that came from configs take the origin run's values.
  const decorators = applyConfig(info, configValues(info, (origin.parameterValues ?? {}) as Record<string, unknown>)).graph.nodes[step]!.decorators;
  const vars = decorators.environment?.vars as Record<string, unknown> | undefined;
  const spec: TaskSpec = {
    flowName: flow,
    flowFile: origin.flowFile ?? `<spin ${flow}>`,
    datastore: base.url,
    runId,
    step,
    taskId,
    attempt: 0,
    parents: doc.parents,
    foreach,
    mode: "run",
    env: Object.fromEntries(Object.entries(vars ?? {}).map(([k, v]) => [k, String(v)])),
    resources: {},
    decorators,
    tags: [...record.tags, ...record.systemTags],
    originRunId: run,
    username: user,
  };
  const around = options.around ?? ((_spec, run) => run());
  const result = await around(spec, (redact) => executeTask(spec, { store, host, flowClass, overrides: options.overrides, redact }));
  const logs = options.logs?.();
  if (logs) {
    for (const stream of ["stdout", "stderr"] as const) if (logs[stream].length) await store.put(attemptKey(flow, runId, step, taskId, 0, stream), logs[stream]);
  }
  if (result.ok) await putJson(store, doneKey(flow, runId, step, taskId), { ...result, attempt: 0 } satisfies DoneRecord);
  await putJson(store, runKey(flow, runId), { ...record, status: result.ok ? "succeeded" : "failed", finishedAt: Date.now(), ...(result.ok ? {} : { error: { ...result.error, pathspec: `${runId}/${step}/${taskId}` } }) });

  const refs = result.artifacts;
  const diff: Record<string, ArtifactChange> = {};
  if (original) {
    for (const [name, ref] of Object.entries(refs)) diff[name] = !original.artifacts[name] ? "new" : contentHash(original.artifacts[name]!) === contentHash(ref) ? "same" : "changed";
    for (const name of Object.keys(original.artifacts)) if (!refs[name]) diff[name] = "removed";
  }
  // What the task produced: not what it passed on by reference from its inputs or the run.
  const passed = new Set<string>();
  const params = origin.parameters ?? {};
  for (const [name, ref] of Object.entries(refs)) if (params[name]?.hash === ref.hash && !options.overrides?.[name]) passed.add(name);
  if (doc.parents.length === 1 && !node.isJoin) {
    const parent = await parentRefs(base, flow, doc.parents[0]!);
    for (const [name, ref] of Object.entries(refs)) if (parent[name]?.hash === ref.hash && !(options.overrides && name in options.overrides)) passed.add(name);
  }
  const artifacts: Record<string, unknown> = {};
  for (const [name, ref] of Object.entries(refs)) if (!passed.has(name)) artifacts[name] = await loadArtifact(store, host, ref, name, `${flow}/${runId}/${step}/${taskId}`);
  return {
    origin: originPath,
    pathspec: `${flow}/${runId}/${step}/${taskId}`,
    runId,
    persisted: persist,
    ok: result.ok,
    ...(result.error ? { error: result.error } : {}),
    refs,
    artifacts,
    diff,
    originalRefs: original?.artifacts ?? {},
    durationMs: Date.now() - t0,
    async data(name) {
      const ref = refs[name];
      if (!ref) throw new TsflowError("NotFound", `the spun task ${flow}/${runId}/${step}/${taskId} has no artifact '${name}' (it has ${Object.keys(refs).join(", ") || "none"})`);
      return loadArtifact(store, host, ref, name, `${flow}/${runId}/${step}/${taskId}`);
    },
  };
}

/** The artifact refs of a parent task; its done.json was read by the task already (a warm cache on most stores). */
async function parentRefs(store: Datastore, flow: string, pathspec: string): Promise<Record<string, ArtifactRef>> {
  const [run, step, task] = pathspec.split("/") as [string, string, string];
  return (await getJson<DoneRecord>(store, doneKey(flow, run, step, task)))?.artifacts ?? {};
}

/** Reads through to `base`, keeps every write in memory: `spin --no-persist`. */
export function memoryLayer(base: Datastore): Datastore {
  const mem = new Map<string, Bytes>();
  const join = (data: Bytes | readonly Bytes[]): Bytes => {
    if (data instanceof Uint8Array) return data.slice();
    const out = new Uint8Array(data.reduce((n, c) => n + c.byteLength, 0));
    let at = 0;
    for (const c of data) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  };
  const layer: Datastore = {
    name: `${base.name}+memory`,
    url: base.url,
    ...(base.compress ? { compress: true } : {}),
    async get(key) {
      return mem.get(key) ?? base.get(key);
    },
    async put(key, data) {
      mem.set(key, join(data));
    },
    async has(key) {
      return mem.has(key) || base.has(key);
    },
    async list(prefix) {
      // A gc's markers (core/_sweeps.ts) guard blobs written to the store; this layer writes
      // none there, so the task's gc watch needs no look at the real ones.
      if (prefix === SWEEPS_PREFIX) return [];
      const own = [...mem.keys()].filter((k) => k.startsWith(prefix)).map((k) => (k.slice(prefix.length).includes("/") ? `${k.slice(prefix.length).split("/")[0]}/` : k.slice(prefix.length)));
      return [...new Set([...(await base.list(prefix)), ...own])].sort();
    },
    async delete(key) {
      mem.delete(key);
    },
  };
  if (base.getSync) layer.getSync = (key) => mem.get(key) ?? base.getSync!(key);
  return layer;
}
