/**
 * Deploying a flow to AWS Step Functions and managing it: `create` (state machine, Batch job
 * definitions, code package, `@schedule` schedule, `@triggerOnFinish` rule), `trigger`,
 * `listRuns`, `terminate`, `remove`. The SDK clients load only when used.
 *
 * Endpoints come from `TSFLOW_SFN_ENDPOINT`, `TSFLOW_SCHEDULER_ENDPOINT`, `TSFLOW_EVENTS_ENDPOINT`
 * and `TSFLOW_BATCH_ENDPOINT` (local stand-ins in tests), else AWS; the region and credentials
 * from the standard AWS chain.
 */
import { createHash } from "node:crypto";
import { getJson, putJson } from "../../core/_datastore.ts";
import { runKey } from "../../core/_layout.ts";
import { TsflowError } from "../../core/errors.ts";
import type { FlowInfo } from "../../core/graph.ts";
import { configValues } from "../../core/config.ts";
import { productionOptions } from "../../core/production.ts";
import { newRunId, resolveParameters } from "../../core/runtime.ts";
import { PARAMETER_ALG, refOf, storeArtifact } from "../../core/artifacts.ts";
import type { ArtifactRef, Datastore, Host } from "../../core/types.ts";
import { buildPackage, PACKAGE_PREFIX, runtimeFiles, uploadPackage } from "../executors/_package.ts";
import { compileFlow, type DeploymentConfig, s3Location, type StepJob } from "./compile.ts";

export interface DeployTarget {
  info: FlowInfo;
  flowClass: Function;
  /** The flow file (absolute). */
  flowFile: string;
  exportName?: string;
  store: Datastore;
  host: Host;
}

export interface NameOptions {
  /** State machine name (default: the flow name, or `<project>.<branch>.<Flow>` under `@project`). */
  name?: string;
  /** `@project` branch: `test.<branch>` (or `prod.<branch>` with `production`). */
  branch?: string;
  /** `@project`: the production branch `prod`. */
  production?: boolean;
}

export interface CreateOptions extends NameOptions {
  tags?: string[];
  /** Each Map's MaxConcurrency. */
  maxWorkers?: number;
  maxNumSplits?: number;
  /** Parameter values that replace the flow's defaults in this deployment. */
  parameters?: Record<string, string>;
  with?: Record<string, Record<string, unknown>>;
  /** Print the definition only: no upload, no AWS call. */
  onlyJson?: boolean;
  queue?: string;
  image?: string;
  /** IAM role of the Batch jobs (S3 access). Default `$TSFLOW_BATCH_JOB_ROLE`. */
  jobRoleArn?: string;
  executionRoleArn?: string;
  /** IAM role Step Functions assumes. Default `$TSFLOW_SFN_ROLE`. */
  roleArn?: string;
  /** Role EventBridge Scheduler and EventBridge rules assume to start executions. Default `$TSFLOW_EVENTS_ROLE`. */
  eventsRoleArn?: string;
  /** Command starting tsflow in the job. Default `$TSFLOW_BATCH_COMMAND`, else `node <this bundle> __worker`. */
  command?: string[];
}

const env = process.env;
const sanitize = (s: string, max: number) => s.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, max);

/** The deployment's name and namespace tag, from `@project` and the branch options. */
export function deploymentName(target: Pick<DeployTarget, "info" | "flowClass" | "host">, options: NameOptions, flowName = target.info.name): { name: string; project?: { name: string; branch: string } } {
  const project = productionOptions(target.flowClass).project;
  if (!project) {
    if (options.branch || options.production) throw new TsflowError("BadOption", `--branch and --production need @project({ name }) on flow ${target.info.name}`);
    return { name: options.name ?? flowName };
  }
  const user = target.host.username().replace(/[^A-Za-z0-9_-]/g, "_");
  const branch = options.production ? (options.branch ? `prod.${options.branch}` : "prod") : options.branch ? `test.${options.branch}` : `user.${user}`;
  if (!/^[A-Za-z0-9_.-]+$/.test(branch)) throw new TsflowError("BadOption", `branch '${options.branch}' may only hold letters, digits, '_', '-' and '.'`);
  return { name: options.name ?? `${project.name}.${branch}.${flowName}`, project: { name: project.name, branch } };
}

const region = () => env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (env.TSFLOW_SFN_ENDPOINT ? "us-east-1" : undefined);

async function sfnClient() {
  const sdk = await import("@aws-sdk/client-sfn");
  return { sdk, client: new sdk.SFNClient({ endpoint: env.TSFLOW_SFN_ENDPOINT || undefined, region: region(), maxAttempts: 6 }) };
}

/** The state machine called `name`, or `undefined`. */
async function findMachine(name: string): Promise<{ arn: string } | undefined> {
  const { sdk, client } = await sfnClient();
  try {
    let token: string | undefined;
    do {
      const page = await client.send(new sdk.ListStateMachinesCommand({ nextToken: token }));
      const hit = page.stateMachines?.find((m) => m.name === name);
      if (hit) return { arn: hit.stateMachineArn! };
      token = page.nextToken;
    } while (token);
    return undefined;
  } finally {
    client.destroy();
  }
}

async function requireMachine(name: string) {
  const found = await findMachine(name);
  if (!found) throw new TsflowError("NotFound", `state machine '${name}' does not exist: deploy it with tsflow step-functions create`);
  return found;
}

/** The Batch job definition of a step: registered once per content, like the batch executor's. */
function jobDefinitionProperties(image: string, options: CreateOptions) {
  const command = options.command ?? env.TSFLOW_BATCH_COMMAND?.split(" ") ?? ["node", runtimeFiles().script, "__worker"];
  return {
    image,
    command,
    jobRoleArn: options.jobRoleArn ?? env.TSFLOW_BATCH_JOB_ROLE,
    executionRoleArn: options.executionRoleArn,
    resourceRequirements: [
      { type: "VCPU" as const, value: "1" },
      { type: "MEMORY" as const, value: "4096" },
    ],
  };
}

/** Compiles (and unless `onlyJson`, deploys) the flow. Returns the definition and the state machine ARN. */
export async function createDeployment(target: DeployTarget, options: CreateOptions): Promise<{ definition: Record<string, unknown>; name: string; arn?: string; schedule?: string; rule?: string }> {
  const { info, store } = target;
  const { name, project } = deploymentName(target, options);
  if (!/^[A-Za-z0-9_.-]{1,80}$/.test(name)) throw new TsflowError("BadOption", `state machine name '${name}' must be 1 to 80 letters, digits, '_', '-' or '.'`);
  s3Location(store.url);
  const parameters = options.parameters ?? {};
  const values = await resolveParameters(info, parameters, target.host);
  // IncludeFile: the file is read now and stored with the deployment; a job has no such file.
  const files: Record<string, ArtifactRef> = {};
  for (const [field, p] of Object.entries(info.parameters)) {
    if (p.kind !== "file" || values[p.name] === undefined) continue;
    files[field] = options.onlyJson ? refOf(target.host, field, values[p.name], PARAMETER_ALG).ref : await storeArtifact(store, target.host, field, values[p.name], PARAMETER_ALG);
    delete parameters[p.name];
  }

  const pkg = options.onlyJson ? `${PACKAGE_PREFIX}${(await buildPackage(target.flowFile)).hash}` : (await uploadPackage(store, target.flowFile)).flowFile;
  const config: DeploymentConfig = {
    flow: info.name,
    flowFile: pkg,
    ...(target.exportName && target.exportName !== "default" ? { exportName: target.exportName } : {}),
    datastore: store.url,
    stateMachine: name,
    tags: options.tags ?? [],
    deployer: target.host.username(),
    productionTag: `production:${name}`,
    ...(project ? { project } : {}),
    parameters,
    ...(Object.keys(files).length ? { files } : {}),
    maxNumSplits: options.maxNumSplits ?? 1000,
    ...(options.with && Object.keys(options.with).length ? { with: options.with } : {}),
  };

  const definitions = new Map<string, ReturnType<typeof jobDefinitionProperties>>();
  const jobOf = (batch: Record<string, unknown> | undefined): StepJob => {
    const queue = String(batch?.queue ?? options.queue ?? env.TSFLOW_BATCH_QUEUE ?? "");
    const image = String(batch?.image ?? options.image ?? env.TSFLOW_BATCH_IMAGE ?? "");
    if (!queue || !image) throw new TsflowError("BadOption", "[step-functions] every task is an AWS Batch job: give a job queue and an image (--queue, --image, @batch({ queue, image }) or TSFLOW_BATCH_QUEUE/TSFLOW_BATCH_IMAGE)");
    const props = jobDefinitionProperties(image, { ...options, jobRoleArn: (batch?.iamRole as string | undefined) ?? options.jobRoleArn });
    const definition = `tsflow-${createHash("sha256").update(JSON.stringify(props)).digest("hex").slice(0, 20)}`;
    definitions.set(definition, props);
    return { queue, definition };
  };
  const jobs: Record<string, StepJob> = {};
  for (const step of info.graph.order) jobs[step] = jobOf({ ...(options.with?.batch ?? {}), ...(info.graph.nodes[step]!.decorators.batch ?? {}) });
  const definition = compileFlow({
    info,
    config,
    jobs,
    failureJob: jobOf(options.with?.batch),
    with: options.with,
    maxWorkers: options.maxWorkers,
    // AWS Batch's minimum; a local stand-in (TSFLOW_BATCH_ENDPOINT) takes the decorator's value.
    minTimeoutSeconds: env.TSFLOW_BATCH_ENDPOINT ? 1 : 60,
  });
  if (options.onlyJson) return { definition, name };

  const roleArn = options.roleArn ?? env.TSFLOW_SFN_ROLE;
  if (!roleArn) throw new TsflowError("BadOption", "[step-functions] give the IAM role the state machine runs as: --role arn:aws:iam::…:role/… or TSFLOW_SFN_ROLE (see docs/production.md)");

  // Job definitions, once per content.
  const batchSdk = await import("@aws-sdk/client-batch");
  const batch = new batchSdk.BatchClient({ endpoint: env.TSFLOW_BATCH_ENDPOINT || undefined, region: region(), maxAttempts: 6 });
  try {
    for (const [defName, properties] of definitions) {
      const found = await batch.send(new batchSdk.DescribeJobDefinitionsCommand({ jobDefinitionName: defName, status: "ACTIVE" }));
      if (!found.jobDefinitions?.length) await batch.send(new batchSdk.RegisterJobDefinitionCommand({ jobDefinitionName: defName, type: "container", containerProperties: properties }));
    }
  } finally {
    batch.destroy();
  }

  const { sdk, client } = await sfnClient();
  let arn: string;
  try {
    const existing = await findMachine(name);
    const text = JSON.stringify(definition);
    if (existing) {
      await client.send(new sdk.UpdateStateMachineCommand({ stateMachineArn: existing.arn, definition: text, roleArn }));
      arn = existing.arn;
    } else {
      const made = await client.send(new sdk.CreateStateMachineCommand({ name, definition: text, roleArn, type: "STANDARD", tags: [{ key: "tsflow:flow", value: info.name }] }));
      arn = made.stateMachineArn!;
    }
  } finally {
    client.destroy();
  }
  // @schedule's options may come from the configs read above.
  const production = productionOptions(target.flowClass, configValues(info, values));
  const schedule = await syncSchedule(name, arn, production.schedule, options);
  const rule = await syncTriggerRule(target, options, name, arn, production.triggerOnFinish?.flows);
  return { definition, name, arn, ...(schedule ? { schedule } : {}), ...(rule ? { rule } : {}) };
}

const scheduleName = (name: string) => sanitize(`tsflow-${name}`, 64);
const ruleName = (name: string) => sanitize(`tsflow-${name}-on-finish`, 64);
/** Executions started by a schedule or a rule use the deployment's parameter values. */
const DEFAULT_INPUT = JSON.stringify({ Parameters: {} });

async function schedulerClient() {
  const sdk = await import("@aws-sdk/client-scheduler");
  return { sdk, client: new sdk.SchedulerClient({ endpoint: env.TSFLOW_SCHEDULER_ENDPOINT || undefined, region: region(), maxAttempts: 6 }) };
}

/** Creates, updates or (decorator removed) deletes the deployment's schedule. */
async function syncSchedule(name: string, arn: string, schedule: { expression: string; timezone?: string } | undefined, options: CreateOptions): Promise<string | undefined> {
  const { sdk, client } = await schedulerClient();
  const sName = scheduleName(name);
  try {
    const exists = await client.send(new sdk.GetScheduleCommand({ Name: sName })).then(
      () => true,
      (e) => {
        if ((e as Error).name === "ResourceNotFoundException") return false;
        // A flow without @schedule deployed by someone who may not read schedules: nothing to sync.
        if (!schedule && (e as Error).name === "AccessDeniedException") return false;
        throw e;
      },
    );
    if (!schedule) {
      if (exists) await client.send(new sdk.DeleteScheduleCommand({ Name: sName }));
      return undefined;
    }
    const roleArn = options.eventsRoleArn ?? env.TSFLOW_EVENTS_ROLE;
    if (!roleArn) throw new TsflowError("BadOption", "[step-functions] @schedule needs the role EventBridge Scheduler assumes to start the state machine: --events-role or TSFLOW_EVENTS_ROLE (see docs/production.md)");
    const input = {
      Name: sName,
      ScheduleExpression: schedule.expression,
      ...(schedule.timezone ? { ScheduleExpressionTimezone: schedule.timezone } : {}),
      FlexibleTimeWindow: { Mode: "OFF" as const },
      Target: { Arn: arn, RoleArn: roleArn, Input: DEFAULT_INPUT },
      State: "ENABLED" as const,
    };
    await client.send(exists ? new sdk.UpdateScheduleCommand(input) : new sdk.CreateScheduleCommand(input));
    return sName;
  } finally {
    client.destroy();
  }
}

async function eventsClient() {
  const sdk = await import("@aws-sdk/client-eventbridge");
  return { sdk, client: new sdk.EventBridgeClient({ endpoint: env.TSFLOW_EVENTS_ENDPOINT || undefined, region: region(), maxAttempts: 6 }) };
}

/**
 * `@triggerOnFinish`: an EventBridge rule on the upstream state machines' "Execution Status
 * Change" events with status SUCCEEDED, targeting this state machine. A rule rather than a final
 * state in the upstream machine, so deploying a downstream flow never redeploys the upstream, a
 * flow can wait on several upstreams, and only a real success (not a state reached) starts it.
 */
async function syncTriggerRule(target: DeployTarget, options: CreateOptions, name: string, arn: string, flows: string[] | undefined): Promise<string | undefined> {
  const { sdk, client } = await eventsClient();
  const rName = ruleName(name);
  try {
    if (!flows?.length) {
      const exists = await client.send(new sdk.DescribeRuleCommand({ Name: rName })).then(
        () => true,
        () => false,
      );
      if (exists) {
        await client.send(new sdk.RemoveTargetsCommand({ Rule: rName, Ids: ["tsflow"] }));
        await client.send(new sdk.DeleteRuleCommand({ Name: rName }));
      }
      return undefined;
    }
    const roleArn = options.eventsRoleArn ?? env.TSFLOW_EVENTS_ROLE;
    if (!roleArn) throw new TsflowError("BadOption", "[step-functions] @triggerOnFinish needs the role EventBridge assumes to start the state machine: --events-role or TSFLOW_EVENTS_ROLE (see docs/production.md)");
    // Upstream deployments share this one's project and branch.
    const upstream = flows.map((f) => arn.replace(/:stateMachine:.*$/, `:stateMachine:${deploymentName(target, { ...options, name: undefined }, f).name}`));
    const pattern = { source: ["aws.states"], "detail-type": ["Step Functions Execution Status Change"], detail: { status: ["SUCCEEDED"], stateMachineArn: upstream } };
    await client.send(new sdk.PutRuleCommand({ Name: rName, EventPattern: JSON.stringify(pattern), State: "ENABLED", Description: `tsflow: start ${name} when ${flows.join(", ")} succeeds` }));
    await client.send(new sdk.PutTargetsCommand({ Rule: rName, Targets: [{ Id: "tsflow", Arn: arn, RoleArn: roleArn, Input: DEFAULT_INPUT }] }));
    return rName;
  } finally {
    client.destroy();
  }
}

/** The deployment config embedded in a deployed definition (its first job state's `TSFLOW_SFN`). */
async function deployedConfig(arn: string): Promise<DeploymentConfig> {
  const { sdk, client } = await sfnClient();
  try {
    const out = await client.send(new sdk.DescribeStateMachineCommand({ stateMachineArn: arn }));
    const match = /"Name":"TSFLOW_SFN","Value":("(?:[^"\\]|\\.)*")/.exec(out.definition ?? "");
    if (!match) throw new TsflowError("BadOption", `state machine ${arn} was not made by tsflow step-functions create`);
    return JSON.parse(JSON.parse(match[1]!)) as DeploymentConfig;
  } finally {
    client.destroy();
  }
}

/** Starts a production run. Its run id is the execution's name. */
export async function trigger(target: Pick<DeployTarget, "info" | "flowClass" | "host">, options: NameOptions & { parameters?: Record<string, string> }): Promise<{ runId: string; executionArn: string; name: string }> {
  const { name } = deploymentName(target, options);
  const { arn } = await requireMachine(name);
  const config = await deployedConfig(arn);
  for (const p of Object.values(target.info.parameters)) {
    if (p.kind === "file" && options.parameters?.[p.name] !== undefined) {
      throw new TsflowError("BadParameter", `option --${p.name} is an IncludeFile, stored when the flow was deployed: change it with tsflow step-functions create --${p.name} FILE`);
    }
  }
  // Checked here, so a typo is an error now and not a failed run later.
  const plain = { ...target.info, parameters: Object.fromEntries(Object.entries(target.info.parameters).filter(([, p]) => p.kind !== "file")) };
  await resolveParameters(plain, { ...config.parameters, ...(options.parameters ?? {}) }, target.host);
  const runId = newRunId();
  const { sdk, client } = await sfnClient();
  try {
    const out = await client.send(new sdk.StartExecutionCommand({ stateMachineArn: arn, name: runId, input: JSON.stringify({ Parameters: options.parameters ?? {} }) }));
    return { runId, executionArn: out.executionArn!, name };
  } finally {
    client.destroy();
  }
}

export interface ProductionRun {
  runId: string;
  executionArn: string;
  status: string;
  startedAt?: Date;
  stoppedAt?: Date;
}

/**
 * Executions of the deployment, newest first. With the datastore, a run whose execution ended
 * without its last job recording it (stopped from the console, a job that never started) is
 * marked failed in its run.json, so `tsflow runs`, the client and the viewer stop calling it running.
 */
export async function listRuns(
  target: Pick<DeployTarget, "info" | "flowClass" | "host"> & { store?: Datastore },
  options: NameOptions & { limit?: number; status?: string },
): Promise<{ name: string; runs: ProductionRun[] }> {
  const { name } = deploymentName(target, options);
  const { arn } = await requireMachine(name);
  const { sdk, client } = await sfnClient();
  const runs: ProductionRun[] = [];
  try {
    let token: string | undefined;
    do {
      const page = await client.send(
        new sdk.ListExecutionsCommand({ stateMachineArn: arn, nextToken: token, maxResults: 100, ...(options.status ? { statusFilter: options.status.toUpperCase() as "RUNNING" } : {}) }),
      );
      for (const e of page.executions ?? []) runs.push({ runId: e.name!, executionArn: e.executionArn!, status: e.status!, startedAt: e.startDate, stoppedAt: e.stopDate });
      token = page.nextToken;
    } while (token && runs.length < (options.limit ?? 100));
  } finally {
    client.destroy();
  }
  if (target.store) {
    for (const r of runs) {
      if (r.status === "RUNNING") continue;
      const key = runKey(target.info.name, r.runId);
      const run = await getJson<Record<string, unknown>>(target.store, key);
      if (run?.status !== "running") continue;
      const message = `its Step Functions execution ended ${r.status} without recording the run's end`;
      await putJson(target.store, key, { ...run, status: r.status === "SUCCEEDED" ? "succeeded" : "failed", finishedAt: r.stoppedAt?.getTime() ?? Date.now(), ...(r.status === "SUCCEEDED" ? {} : { error: { type: "StepFunctions", message } }) });
    }
  }
  return { name, runs: runs.slice(0, options.limit ?? 100) };
}

/** Stops a production run's execution (and its running Batch jobs) and marks the run failed. */
export async function terminate(target: DeployTarget, options: NameOptions & { runId: string }): Promise<{ executionArn: string }> {
  const { name } = deploymentName(target, options);
  const { arn } = await requireMachine(name);
  const executionArn = `${arn.replace(":stateMachine:", ":execution:")}:${options.runId}`;
  const { sdk, client } = await sfnClient();
  try {
    const described = await client.send(new sdk.DescribeExecutionCommand({ executionArn })).catch((e) => {
      if ((e as Error).name === "ExecutionDoesNotExist") throw new TsflowError("NotFound", `run ${options.runId} is not an execution of state machine ${name}`);
      throw e;
    });
    if (described.status === "RUNNING") await client.send(new sdk.StopExecutionCommand({ executionArn, error: "TsflowTerminated", cause: "tsflow step-functions terminate" }));
  } finally {
    client.destroy();
  }
  // No job will record the end now: say so in run.json, keeping it resumable.
  const key = runKey(target.info.name, options.runId);
  const run = await getJson<Record<string, unknown>>(target.store, key);
  if (run && run.status === "running") {
    await putJson(target.store, key, { ...run, status: "failed", finishedAt: Date.now(), error: { type: "Cancelled", message: "the run was terminated (tsflow step-functions terminate)" } });
  }
  return { executionArn };
}

/** Deletes the state machine, its schedule and its trigger rule. */
export async function removeDeployment(target: Pick<DeployTarget, "info" | "flowClass" | "host">, options: NameOptions): Promise<{ name: string }> {
  const { name } = deploymentName(target, options);
  const { arn } = await requireMachine(name);
  await syncSchedule(name, arn, undefined, {});
  await syncTriggerRule(target as DeployTarget, {}, name, arn, undefined);
  const { sdk, client } = await sfnClient();
  try {
    await client.send(new sdk.DeleteStateMachineCommand({ stateMachineArn: arn }));
  } finally {
    client.destroy();
  }
  return { name };
}
