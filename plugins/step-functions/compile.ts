/**
 * Compiles a flow's static graph into an Amazon States Language definition (`tsflow
 * step-functions create`). Pure: no AWS call, no runtime import, so `--only-json` and tests see
 * exactly what would be deployed.
 *
 * The shape:
 * - every task is one `batch:submitJob.sync` state running `tsflow __worker` with the same code
 *   package as `--executor batch`; the job computes its own task id, parents and foreach position
 *   from the state (`run`, `path`) and the datastore (see `task.ts`), so the state input never
 *   carries artifacts and stays a few hundred bytes whatever the flow does;
 * - a static branch is a `Parallel`; a foreach is a `Map` over the item indexes that the foreach
 *   task writes to S3 (outermost: a distributed Map reading them with an S3 ItemReader; nested:
 *   an inline Map over the same file read with `s3:getObject`, see {@link compileFlow});
 * - a switch is a `Choice` on the condition value that the switch task writes to S3 and an
 *   `s3:getObject` state reads back;
 * - `@retry` is the state's `Retry` (the one source of truth: Batch only re-runs attempts whose
 *   host vanished), `@catchError` a `Catch` into a second job that stores the error, `@timeout`
 *   the job's `attemptDurationSeconds`;
 * - any failure reaches a final job that marks the run failed in the datastore (so `tsflow
 *   runs` and the viewer say so at once) and then a `Fail` state.
 */
import { taskPrefix } from "../../core/_layout.ts";
import { TsflowError } from "../../core/errors.ts";
import { stepDecorators } from "../../core/runtime.ts";
import type { FlowInfo, GraphNode } from "../../core/graph.ts";
import type { ArtifactRef } from "../../core/types.ts";

export const BATCH_SUBMIT_SYNC = "arn:aws:states:::batch:submitJob.sync";
export const S3_GET_OBJECT = "arn:aws:states:::aws-sdk:s3:getObject";
export const S3_ITEM_READER = "arn:aws:states:::s3:getObject";
/** Written by a foreach task next to its done.json: `[0, 1, …, n-1]`. */
export const ITEMS_FILE = "sfn-items.json";
/** Written by a switch task: `{ "condition": "<value>" }`. */
export const SWITCH_FILE = "sfn-switch.json";
/** The state every failure goes to; its job marks the run failed. */
export const FAILED_STATE = "tsflow.failed";

/** The Batch job of a step: its queue and job definition (a name: its latest active revision). */
export interface StepJob {
  queue: string;
  definition: string;
}

/** What every task of the deployment shares; travels to each job as `TSFLOW_SFN` (JSON). */
export interface DeploymentConfig {
  flow: string;
  /** The code package (`package:<hash>`) in the datastore. */
  flowFile: string;
  exportName?: string;
  datastore: string;
  stateMachine: string;
  /** User tags given at create time (`--tag`); each run also gets system tags. */
  tags: string[];
  /** Who ran `create`: production runs are theirs (`user:<name>`), as well as the production namespace's. */
  deployer?: string;
  /** Namespace tag of production runs (`production:<name>`). */
  productionTag: string;
  /** `@project` deployments: project and branch, as tags too. */
  project?: { name: string; branch: string };
  /** Parameter values given at create time; a trigger overrides them. */
  parameters: Record<string, string>;
  /** IncludeFile parameters, read and stored at create time (field → artifact). */
  files?: Record<string, ArtifactRef>;
  maxNumSplits: number;
  /** Decorators given with `create --with`, attached to every step (a step's own win). */
  with?: Record<string, Record<string, unknown>>;
}

export interface CompileOptions {
  info: FlowInfo;
  config: DeploymentConfig;
  jobs: Record<string, StepJob>;
  /** The job of the final "mark the run failed" state. */
  failureJob: StepJob;
  /** Decorators attached to every step (`--with`). */
  with?: Record<string, Record<string, unknown>>;
  /** Bounds each Map's concurrency (`--max-workers`). */
  maxWorkers?: number;
  /** AWS Batch refuses timeouts under 60 s; local stand-ins accept less. Default 60. */
  minTimeoutSeconds?: number;
  /** Batch-level attempts for lost hosts (spot reclaim). Default 3. */
  hostAttempts?: number;
}

/**
 * A task's id in a production run: the step's position in the graph, then its foreach indexes
 * (`4-0-2`), then for a switch that loops on itself the lap (`3.0`, `3.1`, …).
 */
export function productionTaskId(info: FlowInfo, step: string, path: string, lap = 0): string {
  return `${info.graph.order.indexOf(step) + 1}${path}${loops(info, step) ? `.${lap}` : ""}`;
}

/** A switch with a case that goes back to its own step. */
export function loops(info: FlowInfo, step: string): boolean {
  const node = info.graph.nodes[step];
  return Boolean(node?.condition && node.next.includes(step));
}

/** The S3 location of a datastore URL (`s3://bucket/prefix`). */
export function s3Location(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url.replace(/\/+$/, ""));
  if (!m) throw new TsflowError("BadOption", `[step-functions] Batch jobs started by Step Functions need an S3 datastore, not '${url}': pass --datastore s3://bucket/prefix`);
  const prefix = m[2] ? `${m[2]}/` : "";
  if (/['{}\\]/.test(prefix)) throw new TsflowError("BadOption", `[step-functions] datastore prefix '${m[2]}' contains a quote, brace or backslash, which a state machine's key templates cannot hold`);
  return { bucket: m[1]!, prefix };
}

/** Refuses what Step Functions cannot run as tsflow runs it; returns nothing when all is well. */
export function checkDeployable(info: FlowInfo, withDecorators: Record<string, Record<string, unknown>> = {}): void {
  const problems: string[] = [];
  for (const name of info.graph.order) {
    const node = info.graph.nodes[name]!;
    if (node.decorators.cached || withDecorators.cached) problems.push(`step '${name}': @cached needs the local orchestrator's cache index; remove it for production`);
  }
  if (problems.length) throw new TsflowError("BadFlow", `flow ${info.name} cannot be deployed to Step Functions`, problems);
}

type State = Record<string, unknown>;
const END = Symbol("end");
type Next = string | typeof END;

interface Scope {
  states: Record<string, State>;
  stop?: string;
  inMap: boolean;
  emitted: Map<string, string>;
}

/** Escapes text for a single-quoted intrinsic-function string (`States.Format('…')`). */
const lit = (s: string) => s.replace(/[\\'{}]/g, (c) => `\\${c}`);

/**
 * The ASL definition of the flow.
 *
 * Foreach: the outermost foreach is a distributed Map whose S3 ItemReader reads the item
 * indexes: its iterations are child executions with their own event history, so a fan-out of
 * thousands of tasks neither hits a standard execution's 25,000-event history limit nor puts the
 * list into the 256 KB state payload, and no DynamoDB table is needed. A foreach nested inside it
 * is an inline Map over the same kind of file read with `s3:getObject` (inside a child execution,
 * bounded by the outer item's own history), which is what AWS documents as supported nesting.
 */
export function compileFlow(options: CompileOptions): Record<string, unknown> {
  const { info, config } = options;
  checkDeployable(info, options.with);
  const { bucket, prefix } = s3Location(config.datastore);
  const nodes = info.graph.nodes;
  const configJson = JSON.stringify(config);
  const minTimeout = options.minTimeoutSeconds ?? 60;

  const decoratorsOf = (node: GraphNode) => stepDecorators(node, options.with);

  /** The S3 key of a file a task writes, as a `States.Format` over the state's run and path. */
  const fileKey = (step: string, file: string) => {
    const ordinal = info.graph.order.indexOf(step) + 1;
    const lap = loops(info, step);
    const template = lit(prefix + taskPrefix(config.flow, "\u0000", step, `${ordinal}\u0001${lap ? ".\u0002" : ""}`) + file);
    return `States.Format('${template.replace("\u0000", "{}").replace("\u0001", "{}").replace("\u0002", "{}")}', $.run, $.path${lap ? ", $.lap.n" : ""})`;
  };
  const hasLoops = info.graph.order.some((s) => loops(info, s));

  /** A state that reads the JSON document a task wrote at `key` into `{ [field]: … }` at `resultPath`. */
  const readJson = (key: string, resultPath: string, field: string, next: string): State => ({
    Type: "Task",
    Resource: S3_GET_OBJECT,
    Parameters: { Bucket: bucket, "Key.$": key },
    ResultSelector: { [`${field}.$`]: "States.StringToJson($.Body)" },
    ResultPath: resultPath,
    Next: next,
  });

  const jobState = (node: GraphNode | undefined, mode: "run" | "catch" | "fail", job: StepJob): State => {
    const d = node ? decoratorsOf(node) : {};
    const env: State[] = [
      { Name: "TSFLOW_SFN", Value: configJson },
      { Name: "TSFLOW_SFN_MODE", Value: mode },
      { Name: "TSFLOW_SFN_RUN", "Value.$": "$.run" },
      { Name: "TSFLOW_SFN_EXECUTION", "Value.$": "$.execution" },
    ];
    if (node) env.push({ Name: "TSFLOW_SFN_STEP", Value: node.name }, { Name: "TSFLOW_SFN_PATH", "Value.$": "$.path" });
    if (mode === "run") env.push({ Name: "TSFLOW_SFN_ATTEMPT", "Value.$": "States.Format('{}', $$.State.RetryCount)" });
    if (node && loops(info, node.name)) env.push({ Name: "TSFLOW_SFN_LAP", "Value.$": "States.Format('{}', $.lap.n)" });
    if (mode === "catch") env.push({ Name: "TSFLOW_SFN_ERROR", "Value.$": "$.caught.Error" });
    if (mode === "fail") env.push({ Name: "TSFLOW_SFN_ERROR", "Value.$": "$.error.Error" });
    if (node?.name === "start" && mode === "run") env.push({ Name: "TSFLOW_SFN_PARAMS", "Value.$": "States.JsonToString($.Parameters)" });
    const vars = (d.environment?.vars ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(vars)) env.push({ Name: k, Value: String(v) });

    const res: { cpu?: number; memory?: number; gpu?: number } = {};
    for (const name of ["resources", "batch"]) {
      for (const k of ["cpu", "memory", "gpu"] as const) {
        const v = d[name]?.[k];
        if (v !== undefined) res[k] = Math.max(res[k] ?? 0, Number(v));
      }
    }
    const requirements = [
      { Type: "VCPU", Value: String(res.cpu ?? 1) },
      { Type: "MEMORY", Value: String(Math.ceil(res.memory ?? 4096)) },
      ...(res.gpu ? [{ Type: "GPU", Value: String(res.gpu) }] : []),
    ];
    const timeout = Number(d.timeout?.seconds ?? 0);
    const parameters: State = {
      JobName: `${config.flow}-${node?.name ?? "failed"}`.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 128),
      JobQueue: job.queue,
      JobDefinition: job.definition,
      ContainerOverrides: { Environment: env, ResourceRequirements: requirements },
      RetryStrategy: {
        Attempts: options.hostAttempts ?? 3,
        EvaluateOnExit: [
          { OnStatusReason: "Host EC2*", Action: "RETRY" },
          { OnReason: "*", Action: "EXIT" },
          { OnExitCode: "*", Action: "EXIT" },
        ],
      },
    };
    if (timeout > 0 && mode === "run") parameters.Timeout = { AttemptDurationSeconds: Math.max(minTimeout, Math.ceil(timeout)) };
    const state: State = { Type: "Task", Resource: BATCH_SUBMIT_SYNC, Parameters: parameters, ResultPath: null };
    const times = Math.max(0, Math.floor(Number(d.retry?.times ?? 0)));
    if (mode === "run" && times > 0) {
      const interval = Math.max(1, Math.round(Number(d.retry?.minutesBetweenRetries ?? 0) * 60));
      state.Retry = [{ ErrorEquals: ["States.ALL"], MaxAttempts: times, IntervalSeconds: interval, BackoffRate: 1 }];
    }
    return state;
  };

  const link = (state: State, next: Next) => {
    if (next === END) state.End = true;
    else state.Next = next;
  };

  const chain = (first: string, stop: string | undefined, inMap: boolean): { StartAt: string; States: Record<string, State> } => {
    const scope: Scope = { states: {}, stop, inMap, emitted: new Map() };
    const start = emit(first, scope);
    if (start === END) throw new TsflowError("BadGraph", `[step-functions] the branch into '${first}' is empty`);
    return { StartAt: start, States: scope.states };
  };

  const emit = (step: string, scope: Scope): Next => {
    if (step === scope.stop) return END;
    const seen = scope.emitted.get(step);
    if (seen) return seen;
    const node = nodes[step]!;
    scope.emitted.set(step, step);
    const state = jobState(node, "run", options.jobs[step]!);
    scope.states[step] = state;
    const itemSelector = { "run.$": "$.run", "execution.$": "$.execution", "path.$": "States.Format('{}-{}', $.path, $$.Map.Item.Value)", ...(hasLoops ? { lap: { n: 0 } } : {}) };

    if (node.type === "end") state.End = true;
    else if (node.foreach) {
      const join = node.matchingJoin!;
      const mapName = `${step}.foreach`;
      const body = chain(node.next[0]!, join, true);
      const map: State = { Type: "Map", ItemSelector: itemSelector, ResultPath: null };
      if (options.maxWorkers) map.MaxConcurrency = options.maxWorkers;
      if (scope.inMap) {
        const itemsName = `${step}.items`;
        scope.states[itemsName] = readJson(fileKey(step, ITEMS_FILE), "$.foreach", "items", mapName);
        Object.assign(map, { ItemsPath: "$.foreach.items", ItemProcessor: { ProcessorConfig: { Mode: "INLINE" }, ...body } });
        link(state, itemsName);
      } else {
        Object.assign(map, {
          ItemReader: { Resource: S3_ITEM_READER, ReaderConfig: { InputType: "JSON" }, Parameters: { Bucket: bucket, "Key.$": fileKey(step, ITEMS_FILE) } },
          ItemProcessor: { ProcessorConfig: { Mode: "DISTRIBUTED", ExecutionType: "STANDARD" }, ...body },
          Label: step.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40),
        });
        link(state, mapName);
      }
      scope.states[mapName] = map;
      link(map, emit(join, scope));
    } else if (node.type === "split") {
      const join = node.matchingJoin!;
      const name = `${step}.branches`;
      const parallel: State = { Type: "Parallel", Branches: node.next.map((t) => chain(t, join, scope.inMap)), ResultPath: null };
      scope.states[name] = parallel;
      link(state, name);
      link(parallel, emit(join, scope));
    } else if (node.condition) {
      const readName = `${step}.condition`;
      const choiceName = `${step}.switch`;
      scope.states[readName] = readJson(fileKey(step, SWITCH_FILE), "$.switch", "value", choiceName);
      const choice: State = { Type: "Choice", Choices: [] };
      scope.states[choiceName] = choice;
      link(state, readName);
      const looping = node.next.includes(step);
      for (const [value, target] of Object.entries(node.cases!)) {
        const safe = value.replace(/[^A-Za-z0-9_-]/g, "_");
        if (target === step) {
          // Another lap: the lap number makes each lap its own task.
          const again = `${step}.${safe}.again`;
          scope.states[again] = { Type: "Pass", Parameters: { "n.$": "States.MathAdd($.lap.n, 1)" }, ResultPath: "$.lap", Next: step };
          (choice.Choices as State[]).push({ Variable: "$.switch.value.condition", StringEquals: value, Next: again });
          continue;
        }
        let next = emit(target, scope);
        if (looping) {
          // Leaving the loop: a later loop counts its laps from 0.
          const leave = `${step}.${safe}.leave`;
          scope.states[leave] = { Type: "Pass", Result: { n: 0 }, ResultPath: "$.lap", ...(next === END ? { End: true } : { Next: next }) };
          next = leave;
        }
        if (next === END) {
          // A case going straight to the join that ends this branch: a Choice cannot end it.
          next = `${step}.${value}.done`.replace(/[^A-Za-z0-9_.-]/g, "_");
          scope.states[next] = { Type: "Pass", End: true };
        }
        (choice.Choices as State[]).push({ Variable: "$.switch.value.condition", StringEquals: value, Next: next });
      }
    } else {
      link(state, emit(node.next[0]!, scope));
    }

    const catchVar = decoratorsOf(node).catch;
    if (catchVar && !node.foreach && !node.condition) {
      const catchName = `${step}.catch`;
      const handler = jobState(node, "catch", options.jobs[step]!);
      if (state.End) handler.End = true;
      else handler.Next = state.Next;
      scope.states[catchName] = handler;
      state.Catch = [{ ErrorEquals: ["States.ALL"], ResultPath: "$.caught", Next: catchName }];
    }
    return step;
  };

  const top = chain("start", undefined, false);
  // Every failure reaches the state that records it; a step's own Catch (to its @catchError
  // handler) stays first, and the handler itself is caught here.
  for (const state of Object.values(top.States)) {
    if (state.Type !== "Task" && state.Type !== "Map" && state.Type !== "Parallel") continue;
    if (state.Catch) continue;
    state.Catch = [{ ErrorEquals: ["States.ALL"], ResultPath: "$.error", Next: FAILED_STATE }];
  }
  const failed = jobState(undefined, "fail", options.failureJob);
  failed.Next = "tsflow.run-failed";
  failed.Catch = [{ ErrorEquals: ["States.ALL"], ResultPath: "$.recordError", Next: "tsflow.run-failed" }];
  const initial = (parameters: string | Record<string, never>) => ({
    Type: "Pass",
    Parameters: { "run.$": "$$.Execution.Name", "execution.$": "$$.Execution.Id", path: "", ...(hasLoops ? { lap: { n: 0 } } : {}), ...(typeof parameters === "string" ? { "Parameters.$": parameters } : { Parameters: parameters }) },
    Next: top.StartAt,
  });
  return {
    Comment: `tsflow flow ${info.name} (${config.stateMachine}); generated by tsflow step-functions create, do not edit`,
    StartAt: "tsflow.input",
    States: {
      "tsflow.input": { Type: "Choice", Choices: [{ Variable: "$.Parameters", IsPresent: true, Next: "tsflow.init" }], Default: "tsflow.init-defaults" },
      "tsflow.init": initial("$.Parameters"),
      "tsflow.init-defaults": initial({}),
      ...top.States,
      [FAILED_STATE]: failed,
      "tsflow.run-failed": { Type: "Fail", Error: "TsflowRunFailed", Cause: `a task of ${info.name} failed: see tsflow runs ${info.name}, then tsflow resume to finish the run from the failed step` },
    },
  };
}
