/**
 * The job side of a Step Functions deployment: `tsflow __worker` started by a
 * `batch:submitJob.sync` state with `TSFLOW_SFN` (the deployment, see compile.ts) in its
 * environment. No orchestrator process exists, so each job does for its own task what
 * core/runtime.ts does for a local run:
 *
 * - `start` writes `run.json` (parameters stored as artifacts, the state machine and execution
 *   ARNs recorded, production tags), once, whatever its retries;
 * - every task derives its id (the step's position, then its foreach indexes: `4-0-2`), its
 *   parents and foreach frames from the static graph and the done markers already in the
 *   datastore, writes `task.json` and `<attempt>/start.json`, runs the very task entry of
 *   `--executor batch` (cli/task.ts: same code package, logs stored while it runs), then writes
 *   `done.json` on success, and publishes what the state machine needs next: the item indexes of
 *   a foreach, the condition value of a switch;
 * - a failed attempt exits non-zero so the state's `Retry`/`Catch` decide; `catch` mode stores the
 *   last error in the `@catchError` variable; `fail` mode marks the run failed; `end` marks it
 *   succeeded.
 */
import { getJson, putJson } from "../../core/_datastore.ts";
import { attemptKey, doneKey, runKey, taskKey, taskPrefix } from "../../core/_layout.ts";
import { indexRun } from "../../core/_status.ts";
import { PARAMETER_ALG, storeArtifact } from "../../core/artifacts.ts";
import { TsflowError } from "../../core/errors.ts";
import type { FlowInfo } from "../../core/graph.ts";
import { loadFlowInfo } from "../../core/graph.ts";
import { resolveParameters, summarizeGraph } from "../../core/runtime.ts";
import { type DoneRecord, errorInfo, type RunRecord } from "../../core/task.ts";
import type { ArtifactRef, Datastore, ForeachFrame, TaskError, TaskResult, TaskSpec } from "../../core/types.ts";
import { VERSION } from "../../core/version.ts";
import s3Datastore from "../datastores/s3.ts";
import nodeHost from "../host/node.ts";
import { type DeploymentConfig, ITEMS_FILE, loops, productionTaskId, SWITCH_FILE } from "./compile.ts";

const env = process.env;

/** Fields a production run adds to run.json. */
export interface ProductionRecord {
  stepFunctions: { stateMachineArn: string; executionArn: string; stateMachine: string };
}

/** `arn:…:execution:NAME:EXEC` → `arn:…:stateMachine:NAME`. */
export function stateMachineArnOf(executionArn: string): string {
  return executionArn.replace(":execution:", ":stateMachine:").replace(/:[^:]+$/, "");
}

const indexesOf = (path: string) => (path === "" ? [] : path.slice(1).split("-").map(Number));
const pathOf = (indexes: number[]) => indexes.map((i) => `-${i}`).join("");

export async function sfnTaskMain(): Promise<number> {
  const config = JSON.parse(env.TSFLOW_SFN!) as DeploymentConfig;
  const mode = env.TSFLOW_SFN_MODE as "run" | "catch" | "fail";
  const runId = env.TSFLOW_SFN_RUN!;
  const store = s3Datastore({ url: config.datastore });
  try {
    const { packageModule } = await import("../../runner/load.ts");
    const { loadFlow } = await import("../../runner/load.ts");
    const module = await packageModule({ flowFile: config.flowFile } as TaskSpec, store);
    const { flowClass } = await loadFlow(config.flowFile, config.exportName, { flowName: config.flow, module });
    const info = loadFlowInfo(flowClass);
    if (mode === "fail") {
      await markFailed(store, info, runId, env.TSFLOW_SFN_ERROR ?? "States.TaskFailed");
      return 0;
    }
    const step = env.TSFLOW_SFN_STEP!;
    const path = env.TSFLOW_SFN_PATH ?? "";
    if (!info.graph.nodes[step]) throw new TsflowError("NotFound", `flow ${info.name} has no step '${step}': the code package differs from the deployed state machine`);
    const run = (step === "start" && mode === "run" ? await ensureRun(store, info, config, runId) : await getJson(store, runKey(info.name, runId))) as
      | (RunRecord & { tags: string[]; systemTags: string[] })
      | null;
    if (!run) throw new TsflowError("NotFound", `run ${info.name}/${runId} has no run.json in ${store.url}: its start task never ran`);

    const lap = Number(env.TSFLOW_SFN_LAP ?? 0);
    const taskId = productionTaskId(info, step, path, lap);
    const indexes = indexesOf(path);
    const { parents, foreach } = await locate(store, info, runId, step, indexes, lap);
    // As the local runtime merges them: the step's own decorators win over `--with`, variables add up.
    const own = info.graph.nodes[step]!.decorators;
    const decorators = { ...(config.with ?? {}), ...own };
    if (config.with?.environment && own.environment) decorators.environment = { vars: { ...(config.with.environment.vars as object), ...(own.environment.vars as object) } };
    const retries = Math.max(0, Math.floor(Number(decorators.retry?.times ?? 0)));
    const attempt = mode === "catch" ? retries + 1 : Number(env.TSFLOW_SFN_ATTEMPT ?? 0);

    let caught: TaskSpec["caught"];
    if (mode === "catch") {
      const last = await getJson<TaskResult>(store, attemptKey(info.name, runId, step, taskId, retries, "result.json"));
      const error: TaskError = last?.error ?? {
        type: env.TSFLOW_SFN_ERROR === "States.Timeout" ? "Timeout" : "WorkerCrashed",
        message: `attempt ${retries} of step '${step}' ended without a result (${env.TSFLOW_SFN_ERROR ?? "its Batch job failed"}): a timeout (@timeout) or a crash`,
      };
      caught = { variable: String(decorators.catch?.var ?? "error"), error };
    }
    const spec: TaskSpec = {
      flowName: info.name,
      flowFile: config.flowFile,
      exportName: config.exportName,
      datastore: config.datastore,
      runId,
      step,
      taskId,
      attempt,
      parents,
      foreach,
      mode: mode === "catch" ? "catch" : "run",
      ...(caught ? { caught } : {}),
      // @environment is already the job's own environment (the state's ContainerOverrides).
      env: {},
      resources: {},
      timeoutSeconds: Number(decorators.timeout?.seconds ?? 0) || undefined,
      decorators,
      tags: [...(run.tags ?? []), ...(run.systemTags ?? [])],
      username: String(run.user ?? "production"),
      namespace: config.productionTag,
    };
    await Promise.all([
      putJson(store, taskKey(info.name, runId, step, taskId), { step, taskId, parents, foreach, createdAt: Date.now() }),
      putJson(store, attemptKey(info.name, runId, step, taskId, attempt, "start.json"), { attempt, mode: spec.mode, startedAt: Date.now(), executor: "step-functions" }),
    ]);
    // The task entry of --executor batch, unchanged: it reads the spec from the environment.
    env.TSFLOW_TASK_SPEC = JSON.stringify(spec);
    const { taskMain } = await import("../../runner/task.ts");
    const code = await taskMain();
    const result = await getJson<TaskResult>(store, attemptKey(info.name, runId, step, taskId, attempt, "result.json"));
    if (code !== 0 || !result) return code || 1;
    if (!result.ok) {
      process.stderr.write(`[tsflow] ${info.name}/${runId}/${step}/${taskId} attempt ${attempt} failed: ${result.error?.type}: ${result.error?.message}\n`);
      return 1;
    }
    const prefix = taskPrefix(info.name, runId, step, taskId);
    if (result.foreachCount !== undefined) {
      const node = info.graph.nodes[step]!;
      const problem =
        result.foreachCount === 0
          ? `step '${step}': foreach over '${node.foreach}' has no items, so the flow cannot go on`
          : result.foreachCount > config.maxNumSplits
            ? `step '${step}': foreach over '${node.foreach}' has ${result.foreachCount} items, more than --max-num-splits ${config.maxNumSplits}`
            : undefined;
      if (problem) {
        // The task itself ran: record why the run cannot go on, so `fail` mode keeps this reason.
        await putJson(store, runKey(info.name, runId), { ...run, error: { type: "BadTransition", message: problem, pathspec: `${runId}/${step}/${taskId}` } });
        process.stderr.write(`[tsflow] ${problem}\n`);
        return 1;
      }
      await store.put(`${prefix}${ITEMS_FILE}`, new TextEncoder().encode(JSON.stringify(Array.from({ length: result.foreachCount }, (_, i) => i))));
    }
    if (result.condition !== undefined) await store.put(`${prefix}${SWITCH_FILE}`, new TextEncoder().encode(JSON.stringify({ condition: result.condition })));
    const done: DoneRecord = { ...result, attempt };
    await putJson(store, doneKey(info.name, runId, step, taskId), done);
    if (step === "end") {
      const latest = (await getJson<Record<string, unknown>>(store, runKey(info.name, runId))) ?? run;
      await putJson(store, runKey(info.name, runId), { ...latest, status: "succeeded", finishedAt: Date.now() });
    }
    return 0;
  } catch (e) {
    const info = errorInfo(e);
    process.stderr.write(`[tsflow] step-functions task ${config.flow}/${runId}/${env.TSFLOW_SFN_STEP ?? "(failure record)"} could not run: ${info.type}: ${info.message}\n`);
    return 1;
  } finally {
    await store.close?.();
  }
}

/** Writes run.json at the first attempt of `start` (a retry of `start` finds it and keeps it). */
async function ensureRun(store: Datastore, info: FlowInfo, config: DeploymentConfig, runId: string): Promise<Record<string, unknown>> {
  const existing = await getJson<Record<string, unknown>>(store, runKey(info.name, runId));
  if (existing) return existing;
  const host = nodeHost();
  const given = JSON.parse(env.TSFLOW_SFN_PARAMS || "{}") as Record<string, unknown>;
  // IncludeFile parameters were read and stored at create time: the job has no such file.
  const plain = { ...info, parameters: Object.fromEntries(Object.entries(info.parameters).filter(([, p]) => p.kind !== "file")) };
  const values = await resolveParameters(plain, { ...config.parameters, ...given }, host);
  const parameters: Record<string, ArtifactRef> = {};
  const parameterValues: Record<string, unknown> = {};
  for (const [field, p] of Object.entries(info.parameters)) {
    const file = config.files?.[field];
    if (p.kind === "file") {
      if (file) parameters[field] = file;
      else parameters[field] = await storeArtifact(store, host, field, undefined, PARAMETER_ALG);
      parameterValues[p.name] = file ? `<${file.size} bytes, stored at create time>` : null;
      continue;
    }
    parameters[field] = await storeArtifact(store, host, field, values[p.name], PARAMETER_ALG);
    parameterValues[p.name] = values[p.name] === undefined ? null : values[p.name];
  }
  const executionArn = env.TSFLOW_SFN_EXECUTION ?? "";
  const project = config.project ? [`project:${config.project.name}`, `project_branch:${config.project.branch}`] : [];
  const record: RunRecord & ProductionRecord & Record<string, unknown> = {
    flow: info.name,
    runId,
    status: "running",
    createdAt: Date.now(),
    user: config.deployer ?? "production",
    tags: config.tags,
    systemTags: [...(config.deployer ? [`user:${config.deployer}`] : []), config.productionTag, ...project, `runtime:${host.runtime}`, `tsflow_version:${VERSION}`, "executor:step-functions"],
    parameters,
    parameterValues,
    flowFile: config.flowFile,
    datastore: store.url,
    runtime: host.runtime,
    version: VERSION,
    graph: summarizeGraph(info),
    stepFunctions: { stateMachine: config.stateMachine, stateMachineArn: stateMachineArnOf(executionArn), executionArn },
  };
  await indexRun(store, info.name, runId, record.createdAt as number);
  await putJson(store, runKey(info.name, runId), record);
  return record;
}

/**
 * Parents and foreach frames of a task at foreach position `indexes`, from the static graph and
 * the done markers of this run: exactly what the local orchestrator would have handed it.
 */
async function locate(store: Datastore, info: FlowInfo, runId: string, step: string, indexes: number[], lap: number): Promise<{ parents: string[]; foreach: ForeachFrame[] }> {
  const nodes = info.graph.nodes;
  const depth = (s: string) => nodes[s]!.splitParents.filter((p) => nodes[p]!.foreach).length;
  const at = (s: string, idx: number[], k = 0) => productionTaskId(info, s, pathOf(idx.slice(0, depth(s))), k);
  const isDone = (s: string, idx: number[], k = 0) => store.has(doneKey(info.name, runId, s, at(s, idx, k)));
  /** The finished task of `s` at this position: for a loop, its last lap. */
  const finished = async (s: string, idx: number[]): Promise<string | undefined> => {
    if (!loops(info, s)) return (await isDone(s, idx)) ? at(s, idx) : undefined;
    let last: number | undefined;
    for (let k = 0; await isDone(s, idx, k); k++) last = k;
    return last === undefined ? undefined : at(s, idx, last);
  };
  const done = (s: string, idx: number[]) => getJson<DoneRecord>(store, doneKey(info.name, runId, s, at(s, idx)));
  const node = nodes[step]!;

  const foreach: ForeachFrame[] = [];
  for (const split of node.splitParents.filter((p) => nodes[p]!.foreach)) {
    const d = depth(split);
    const record = await done(split, indexes);
    if (!record) throw new TsflowError("NotFound", `foreach step '${split}' of run ${runId} has no success marker for task ${at(split, indexes)}`);
    foreach.push({ step: split, task: at(split, indexes), index: indexes[d]!, count: record.foreachCount ?? 0 });
  }

  const parents: string[] = [];
  const inputs = node.inputs.filter((i) => i !== step);
  if (step === "start") return { parents, foreach };
  // Lap k of a loop starts from lap k - 1.
  if (lap > 0) return { parents: [`${runId}/${step}/${at(step, indexes, lap - 1)}`], foreach };
  if (node.isJoin && node.joins && nodes[node.joins]!.foreach) {
    const split = node.joins;
    const record = await done(split, indexes);
    if (!record) throw new TsflowError("NotFound", `foreach step '${split}' of run ${runId} has no success marker`);
    for (let i = 0; i < (record.foreachCount ?? 0); i++) {
      const inner = [...indexes, i];
      let found: string | undefined;
      for (const input of inputs) {
        const id = found ? undefined : await finished(input, inner);
        if (id) found = `${runId}/${input}/${id}`;
      }
      if (!found) throw new TsflowError("NotFound", `join '${step}' of run ${runId}: foreach item ${i} of '${split}' has no finished task`);
      parents.push(found);
    }
    return { parents, foreach };
  }
  if (node.isJoin && node.joins) {
    // A static split: one parent per branch that ran, in the order the branches are written.
    const split = nodes[node.joins]!;
    const branchOf = (s: string) => split.next.findIndex((b) => b === s || reaches(info, b, s, step));
    const ordered = [...inputs].sort((a, b) => branchOf(a) - branchOf(b));
    for (const input of ordered) {
      const id = await finished(input, indexes);
      if (id) parents.push(`${runId}/${input}/${id}`);
    }
    return { parents, foreach };
  }
  for (const input of inputs) {
    const id = await finished(input, indexes);
    if (id) {
      parents.push(`${runId}/${input}/${id}`);
      break;
    }
  }
  if (parents.length === 0) throw new TsflowError("NotFound", `step '${step}' of run ${runId}: none of its inputs (${inputs.join(", ")}) has finished at this position`);
  return { parents, foreach };
}

/** Whether `to` is reachable from `from` without passing `stop`. */
function reaches(info: FlowInfo, from: string, to: string, stop: string): boolean {
  const seen = new Set<string>();
  const stack = [from];
  while (stack.length) {
    const s = stack.pop()!;
    if (s === to) return true;
    if (s === stop || seen.has(s)) continue;
    seen.add(s);
    stack.push(...info.graph.nodes[s]!.next);
  }
  return false;
}

/** `fail` mode: the run failed somewhere; mark it, naming the failed task when one is found. */
async function markFailed(store: Datastore, info: FlowInfo, runId: string, sfnError: string) {
  const run = await getJson<Record<string, unknown>>(store, runKey(info.name, runId));
  if (!run) return;
  // list-runs may have marked the run first with its fallback (type StepFunctions, no task named)
  // when it read run.json before this job wrote it; the failed task's own error is the better one.
  let error = run.error as (TaskError & { pathspec?: string }) | undefined;
  if (error?.type === "StepFunctions") error = undefined;
  if (!error) {
    const { listAll } = await import("../../core/_datastore.ts");
    const keys = (await listAll(store, `flows/${info.name}/runs/${runId}/tasks/`)).filter((k) => k.endsWith("/task.json"));
    // A failing foreach item stops its running siblings (their jobs are terminated): the task
    // whose attempt recorded an error is the cause, a task that just never finished is not.
    let stopped: (TaskError & { pathspec: string }) | undefined;
    for (const key of keys.sort()) {
      const doc = await getJson<{ step: string; taskId: string }>(store, key);
      if (!doc || (await store.has(doneKey(info.name, runId, doc.step, doc.taskId)))) continue;
      let last: TaskResult | null = null;
      for (let a = 0; a < 100; a++) {
        const r = await getJson<TaskResult>(store, attemptKey(info.name, runId, doc.step, doc.taskId, a, "result.json"));
        if (!r && !(await store.has(attemptKey(info.name, runId, doc.step, doc.taskId, a, "start.json")))) break;
        last = r ?? last;
      }
      const pathspec = `${runId}/${doc.step}/${doc.taskId}`;
      if (last?.error) {
        error = { ...last.error, pathspec };
        break;
      }
      stopped ??= { type: "WorkerCrashed", message: `its Batch job ended without a result (${sfnError})`, pathspec };
    }
    error ??= stopped;
  }
  error ??= { type: "StepFunctions", message: `the execution failed outside any task (${sfnError})` };
  await putJson(store, runKey(info.name, runId), { ...run, status: "failed", finishedAt: Date.now(), error });
}
