/**
 * Local stand-ins for AWS Step Functions, EventBridge Scheduler and EventBridge, so `tsflow
 * step-functions …` can be tested without AWS. The real SDK clients talk to it
 * (`endpoint: server.url`) and state machines really execute (test/sfn-server/asl.ts):
 * `batch:submitJob.sync` submits to the local Batch server (test/batch-server/server.ts) and waits
 * for the job, `aws-sdk:s3:getObject` and the distributed Map's S3 ItemReader read s3rver.
 *
 * Wire formats, as the SDKs speak them:
 * - Step Functions: AWS JSON 1.0, `POST /` with `X-Amz-Target: AWSStepFunctions.<Op>`; errors are
 *   HTTP 400 with `{ "__type": "<Exception>", "message" }`; timestamps are epoch seconds.
 * - EventBridge: AWS JSON 1.1, `X-Amz-Target: AWSEvents.<Op>` (rules and targets; when an
 *   execution ends, its "Step Functions Execution Status Change" event is matched against them).
 * - Scheduler: REST-JSON, `POST|PUT|GET|DELETE /schedules/<name>`, `GET /schedules`; errors
 *   carry `x-amzn-errortype`. Schedules never fire on their own: `server.schedules.fire(name)`.
 *
 * Every definition given to CreateStateMachine/UpdateStateMachine must pass `asl-validator`, as
 * AWS validates definitions before accepting them. Differences from AWS, all for fast tests:
 * Retry intervals and Wait states are scaled by `timeScale`; no IAM (role ARNs are recorded, not
 * checked); executions are kept in memory only.
 */
import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { BatchClient, DescribeJobsCommand, SubmitJobCommand, TerminateJobCommand } from "@aws-sdk/client-batch";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { serve } from "@hono/node-server";
import aslValidator from "asl-validator";
import { Hono } from "hono";
import { type Context, type Json, type Resources, runMachine, StatesError } from "./asl.ts";

export interface SfnServerOptions {
  /** Endpoint of the local Batch API that `batch:submitJob.sync` submits to. */
  batchEndpoint?: string;
  /** Endpoint of the S3 API (s3rver) for `s3:getObject` and ItemReaders. */
  s3Endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  region?: string;
  accountId?: string;
  /** Multiplies Retry intervals and Wait seconds (default 1: real time). */
  timeScale?: number;
  /** Poll interval of `.sync` jobs, ms. Default 100. */
  pollMs?: number;
}

export interface ExecutionRecord {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: "RUNNING" | "SUCCEEDED" | "FAILED" | "ABORTED" | "TIMED_OUT";
  startDate: number;
  stopDate?: number;
  input: string;
  output?: string;
  error?: string;
  cause?: string;
  /** States entered, in order (`name` of each), for assertions. */
  states: string[];
  /** Batch jobs submitted by this execution. */
  jobs: string[];
  done: Promise<void>;
}

interface Machine {
  arn: string;
  name: string;
  definition: string;
  roleArn: string;
  type: string;
  creationDate: number;
  updates: number;
}

interface Schedule {
  Name: string;
  Arn: string;
  GroupName: string;
  ScheduleExpression: string;
  ScheduleExpressionTimezone?: string;
  State?: string;
  Target: { Arn: string; RoleArn: string; Input?: string };
  FlexibleTimeWindow: { Mode: string };
  CreationDate: number;
  LastModificationDate: number;
}

interface Rule {
  Name: string;
  Arn: string;
  EventPattern?: string;
  State: string;
  Targets: { Id: string; Arn: string; RoleArn?: string; Input?: string }[];
}

export interface SfnServer {
  url: string;
  port: number;
  close(): Promise<void>;
  machines: { get(name: string): Machine | undefined; list(): Machine[] };
  executions: { list(): ExecutionRecord[]; get(arn: string): ExecutionRecord | undefined; wait(arn: string): Promise<ExecutionRecord> };
  schedules: { list(): Schedule[]; fire(name: string, group?: string): Promise<string> };
  rules: { list(): Rule[] };
  /** Every request as `service.Op`, in order. */
  requests: string[];
}

class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const camel = (v: unknown): unknown =>
  Array.isArray(v) ? v.map(camel) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k[0]!.toLowerCase() + k.slice(1), camel(x)])) : v;
const pascal = (v: unknown): unknown =>
  Array.isArray(v) ? v.map(pascal) : v && typeof v === "object" && !(v instanceof Date) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k[0]!.toUpperCase() + k.slice(1), pascal(x)])) : v;

/** Whether an EventBridge pattern matches an event (values are lists of allowed values, objects nest). */
function matches(pattern: unknown, event: unknown): boolean {
  if (Array.isArray(pattern)) return pattern.some((p) => (Array.isArray(event) ? event.includes(p) : p === event));
  if (pattern && typeof pattern === "object") {
    if (!event || typeof event !== "object") return false;
    return Object.entries(pattern).every(([k, p]) => matches(p, (event as Record<string, unknown>)[k]));
  }
  return pattern === event;
}

export async function startSfnServer(options: SfnServerOptions = {}): Promise<SfnServer> {
  const region = options.region ?? "us-east-1";
  const account = options.accountId ?? "123456789012";
  const scale = options.timeScale ?? 1;
  const pollMs = options.pollMs ?? 100;
  const credentials = options.credentials ?? { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
  const machines = new Map<string, Machine>();
  const executions = new Map<string, ExecutionRecord>();
  const controllers = new Map<string, AbortController>();
  const schedules = new Map<string, Schedule>();
  const rules = new Map<string, Rule>();
  const requests: string[] = [];
  const batch = options.batchEndpoint ? new BatchClient({ endpoint: options.batchEndpoint, region, credentials, maxAttempts: 8 }) : undefined;
  const s3 = options.s3Endpoint ? new S3Client({ endpoint: options.s3Endpoint, region, credentials, forcePathStyle: true }) : undefined;
  const now = () => Date.now() / 1000;
  const smArn = (name: string) => `arn:aws:states:${region}:${account}:stateMachine:${name}`;

  const machineOf = (arn: unknown) => {
    const m = [...machines.values()].find((x) => x.arn === arn);
    if (!m) throw new ApiError("StateMachineDoesNotExist", `State Machine Does Not Exist: '${arn}'`);
    return m;
  };
  const validate = (definition: unknown) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(String(definition));
    } catch (e) {
      throw new ApiError("InvalidDefinition", `Invalid State Machine Definition: not JSON (${(e as Error).message})`);
    }
    const result = aslValidator(parsed as Parameters<typeof aslValidator>[0]);
    if (!result.isValid) throw new ApiError("InvalidDefinition", `Invalid State Machine Definition: ${result.errorsText("; ")}`);
    return parsed as Record<string, Json>;
  };

  const readS3 = async (bucket: string, key: string, signal: AbortSignal): Promise<string> => {
    if (!s3) throw new StatesError("States.Runtime", "this local server has no S3 endpoint");
    try {
      const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
      return await out.Body!.transformToString();
    } catch (e) {
      const name = (e as Error).name;
      throw new StatesError(name === "NoSuchKey" ? "S3.NoSuchKeyException" : `S3.${name}`, `s3://${bucket}/${key}: ${(e as Error).message}`);
    }
  };

  const resourcesFor = (record: ExecutionRecord): Resources => ({
    delayMs: (s) => s * 1000 * scale,
    onState: ({ state }) => record.states.push(state),
    childExecution: (parent, mapState, index) => ({
      ...parent.Execution,
      Id: `${parent.Execution.Id.replace(":execution:", ":mapRun:")}/${mapState}:${index}`,
      Name: `${record.name}-${mapState}-${index}`,
    }),
    async readItems(reader, parameters, signal) {
      if (reader.Resource !== "arn:aws:states:::s3:getObject") throw new StatesError("States.Runtime", `ItemReader resource ${reader.Resource} is not supported here`);
      const p = parameters as { Bucket: string; Key: string };
      const text = await readS3(p.Bucket, p.Key, signal);
      const type = (reader.ReaderConfig as { InputType?: string } | undefined)?.InputType;
      if (type !== "JSON") throw new StatesError("States.Runtime", `ItemReader InputType ${type} is not supported here`);
      try {
        return JSON.parse(text) as Json[];
      } catch {
        throw new StatesError("States.ItemReaderFailed", `s3://${p.Bucket}/${p.Key} is not a JSON array`);
      }
    },
    async task(resource, parameters, { signal }) {
      if (resource === "arn:aws:states:::aws-sdk:s3:getObject") {
        const p = parameters as { Bucket: string; Key: string };
        const body = await readS3(p.Bucket, p.Key, signal);
        return { Body: body, ContentLength: Buffer.byteLength(body), ContentType: "application/octet-stream" };
      }
      if (resource === "arn:aws:states:::batch:submitJob.sync" || resource === "arn:aws:states:::batch:submitJob") {
        if (!batch) throw new StatesError("States.Runtime", "this local server has no Batch endpoint");
        const input = camel(parameters) as ConstructorParameters<typeof SubmitJobCommand>[0];
        let submitted: { jobId?: string };
        try {
          submitted = await batch.send(new SubmitJobCommand(input));
        } catch (e) {
          throw new StatesError(`Batch.${(e as Error).name}`, (e as Error).message);
        }
        const jobId = submitted.jobId!;
        record.jobs.push(jobId);
        if (resource.endsWith("submitJob")) return pascal(submitted) as Json;
        // .sync: wait for the job; stopping the execution terminates it, as AWS does.
        for (;;) {
          if (signal.aborted) {
            await batch.send(new TerminateJobCommand({ jobId, reason: "Step Functions execution stopped" })).catch(() => {});
            throw new StatesError("States.Aborted", `job ${jobId} terminated`);
          }
          const out = await batch.send(new DescribeJobsCommand({ jobs: [jobId] })).catch(() => undefined);
          const job = out?.jobs?.[0];
          if (job?.status === "SUCCEEDED") return pascal(job) as Json;
          if (job?.status === "FAILED") throw new StatesError("States.TaskFailed", JSON.stringify(pascal(job)));
          await new Promise((r) => setTimeout(r, pollMs));
        }
      }
      throw new StatesError("States.Runtime", `resource ${resource} is not supported by this local server`);
    },
  });

  const startExecution = (machine: Machine, name: string | undefined, input: string | undefined): ExecutionRecord => {
    const execName = name ?? randomUUID();
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(execName)) throw new ApiError("InvalidName", `Invalid Name: '${execName}'`);
    const arn = `arn:aws:states:${region}:${account}:execution:${machine.name}:${execName}`;
    if (executions.has(arn)) throw new ApiError("ExecutionAlreadyExists", `Execution Already Exists: '${arn}'`);
    let parsedInput: Json;
    try {
      parsedInput = JSON.parse(input ?? "{}") as Json;
    } catch {
      throw new ApiError("InvalidExecutionInput", "Invalid execution input: not JSON");
    }
    const definition = JSON.parse(machine.definition) as Record<string, Json>;
    const controller = new AbortController();
    const record = { executionArn: arn, stateMachineArn: machine.arn, name: execName, status: "RUNNING", startDate: now(), input: input ?? "{}", states: [], jobs: [] } as unknown as ExecutionRecord;
    const context: Context = {
      Execution: { Id: arn, Name: execName, Input: parsedInput, StartTime: new Date().toISOString(), RoleArn: machine.roleArn },
      StateMachine: { Id: machine.arn, Name: machine.name },
    };
    record.done = runMachine(definition, parsedInput, context, resourcesFor(record), controller.signal).then(
      (output) => {
        if (record.status !== "RUNNING") return;
        Object.assign(record, { status: "SUCCEEDED", output: JSON.stringify(output), stopDate: now() });
      },
      (e) => {
        if (record.status !== "RUNNING") return;
        const err = e instanceof StatesError ? e : new StatesError("States.Runtime", String((e as Error)?.stack ?? e));
        Object.assign(record, { status: "FAILED", error: err.error, cause: err.cause, stopDate: now() });
      },
    );
    record.done = record.done.then(() => {
      controllers.delete(arn);
      emitStatusChange(record);
    });
    executions.set(arn, record);
    controllers.set(arn, controller);
    return record;
  };

  /** EventBridge: an ended execution is an event; matching rules start their state machine targets. */
  const emitStatusChange = (record: ExecutionRecord) => {
    const event = {
      source: "aws.states",
      "detail-type": "Step Functions Execution Status Change",
      region,
      account,
      detail: { executionArn: record.executionArn, stateMachineArn: record.stateMachineArn, name: record.name, status: record.status, input: record.input, output: record.output ?? null },
    };
    for (const rule of rules.values()) {
      if (rule.State !== "ENABLED" || !rule.EventPattern || !matches(JSON.parse(rule.EventPattern), event)) continue;
      for (const target of rule.Targets) {
        const machine = [...machines.values()].find((m) => m.arn === target.Arn);
        if (machine) startExecution(machine, undefined, target.Input ?? JSON.stringify(event));
      }
    }
  };

  const sfn: Record<string, (b: Record<string, unknown>) => unknown> = {
    CreateStateMachine(b) {
      validate(b.definition);
      const name = String(b.name);
      const existing = machines.get(name);
      if (existing) {
        if (existing.definition === b.definition && existing.roleArn === b.roleArn) return { stateMachineArn: existing.arn, creationDate: existing.creationDate };
        throw new ApiError("StateMachineAlreadyExists", `State Machine Already Exists: '${existing.arn}'`);
      }
      const machine: Machine = { arn: smArn(name), name, definition: String(b.definition), roleArn: String(b.roleArn), type: String(b.type ?? "STANDARD"), creationDate: now(), updates: 0 };
      machines.set(name, machine);
      return { stateMachineArn: machine.arn, creationDate: machine.creationDate };
    },
    UpdateStateMachine(b) {
      const m = machineOf(b.stateMachineArn);
      if (b.definition !== undefined) {
        validate(b.definition);
        m.definition = String(b.definition);
      }
      if (b.roleArn !== undefined) m.roleArn = String(b.roleArn);
      m.updates++;
      return { updateDate: now() };
    },
    DescribeStateMachine(b) {
      const m = machineOf(b.stateMachineArn);
      return { stateMachineArn: m.arn, name: m.name, status: "ACTIVE", definition: m.definition, roleArn: m.roleArn, type: m.type, creationDate: m.creationDate };
    },
    ListStateMachines() {
      return { stateMachines: [...machines.values()].map((m) => ({ stateMachineArn: m.arn, name: m.name, type: m.type, creationDate: m.creationDate })) };
    },
    DeleteStateMachine(b) {
      const m = machineOf(b.stateMachineArn);
      machines.delete(m.name);
      return {};
    },
    StartExecution(b) {
      const m = machineOf(b.stateMachineArn);
      const record = startExecution(m, b.name as string | undefined, b.input as string | undefined);
      return { executionArn: record.executionArn, startDate: record.startDate };
    },
    DescribeExecution(b) {
      const r = executions.get(String(b.executionArn));
      if (!r) throw new ApiError("ExecutionDoesNotExist", `Execution Does Not Exist: '${b.executionArn}'`);
      const { states: _s, jobs: _j, done: _d, ...out } = r;
      return out;
    },
    ListExecutions(b) {
      machineOf(b.stateMachineArn);
      const all = [...executions.values()]
        .filter((r) => r.stateMachineArn === b.stateMachineArn && (!b.statusFilter || r.status === b.statusFilter))
        .sort((x, y) => y.startDate - x.startDate);
      const start = Number(b.nextToken ?? 0);
      const size = Number(b.maxResults ?? 100) || 100;
      const page = all.slice(start, start + size);
      return {
        executions: page.map((r) => ({ executionArn: r.executionArn, stateMachineArn: r.stateMachineArn, name: r.name, status: r.status, startDate: r.startDate, stopDate: r.stopDate })),
        ...(start + size < all.length ? { nextToken: String(start + size) } : {}),
      };
    },
    StopExecution(b) {
      const r = executions.get(String(b.executionArn));
      if (!r) throw new ApiError("ExecutionDoesNotExist", `Execution Does Not Exist: '${b.executionArn}'`);
      if (r.status === "RUNNING") {
        Object.assign(r, { status: "ABORTED", stopDate: now(), error: b.error, cause: b.cause });
        controllers.get(r.executionArn)?.abort();
      }
      return { stopDate: r.stopDate };
    },
  };

  const events: Record<string, (b: Record<string, unknown>) => unknown> = {
    PutRule(b) {
      const name = String(b.Name);
      const rule: Rule = { Name: name, Arn: `arn:aws:events:${region}:${account}:rule/${name}`, EventPattern: b.EventPattern as string | undefined, State: String(b.State ?? "ENABLED"), Targets: rules.get(name)?.Targets ?? [] };
      if (rule.EventPattern) JSON.parse(rule.EventPattern);
      rules.set(name, rule);
      return { RuleArn: rule.Arn };
    },
    PutTargets(b) {
      const rule = rules.get(String(b.Rule));
      if (!rule) throw new ApiError("ResourceNotFoundException", `Rule ${b.Rule} does not exist.`);
      for (const t of b.Targets as Rule["Targets"]) rule.Targets = [...rule.Targets.filter((x) => x.Id !== t.Id), t];
      return { FailedEntryCount: 0, FailedEntries: [] };
    },
    ListTargetsByRule(b) {
      const rule = rules.get(String(b.Rule));
      if (!rule) throw new ApiError("ResourceNotFoundException", `Rule ${b.Rule} does not exist.`);
      return { Targets: rule.Targets };
    },
    RemoveTargets(b) {
      const rule = rules.get(String(b.Rule));
      if (!rule) throw new ApiError("ResourceNotFoundException", `Rule ${b.Rule} does not exist.`);
      rule.Targets = rule.Targets.filter((t) => !(b.Ids as string[]).includes(t.Id));
      return { FailedEntryCount: 0, FailedEntries: [] };
    },
    DeleteRule(b) {
      const rule = rules.get(String(b.Name));
      if (rule?.Targets.length) throw new ApiError("ValidationException", "Rule can't be deleted since it has targets.");
      rules.delete(String(b.Name));
      return {};
    },
    DescribeRule(b) {
      const rule = rules.get(String(b.Name));
      if (!rule) throw new ApiError("ResourceNotFoundException", `Rule ${b.Name} does not exist.`);
      return { Name: rule.Name, Arn: rule.Arn, EventPattern: rule.EventPattern, State: rule.State };
    },
  };

  const app = new Hono();
  app.post("/", async (c) => {
    const target = c.req.header("x-amz-target") ?? "";
    const [service, op] = target.split(".") as [string, string];
    requests.push(`${service}.${op}`);
    const table = service === "AWSStepFunctions" ? sfn : service === "AWSEvents" ? events : undefined;
    const contentType = service === "AWSEvents" ? "application/x-amz-json-1.1" : "application/x-amz-json-1.0";
    try {
      const handler = table?.[op];
      if (!handler) throw new ApiError("UnknownOperationException", `operation ${target} is not supported by this local server`);
      const body = (await c.req.json().catch(() => ({}))) as Record<string, unknown>;
      return c.body(JSON.stringify(handler(body) ?? {}), 200, { "content-type": contentType });
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError("InternalFailure", (e as Error).message, 500);
      return c.body(JSON.stringify({ __type: err.type, message: err.message }), err.status as 400, { "content-type": contentType });
    }
  });

  // Scheduler (REST-JSON)
  const schedErr = (c: { body: (b: string, s: number, h: Record<string, string>) => Response }, status: number, type: string, message: string) =>
    c.body(JSON.stringify({ Message: message }), status, { "x-amzn-errortype": type, "content-type": "application/json" });
  const scheduleKey = (group: string | undefined, name: string) => `${group ?? "default"}/${name}`;
  app.get("/schedules", (c) => {
    requests.push("Scheduler.ListSchedules");
    return c.json({ Schedules: [...schedules.values()].map((s) => ({ Name: s.Name, Arn: s.Arn, GroupName: s.GroupName, State: s.State, Target: { Arn: s.Target.Arn } })) });
  });
  for (const method of ["post", "put"] as const) {
    app[method]("/schedules/:name", async (c) => {
      const name = c.req.param("name");
      requests.push(`Scheduler.${method === "post" ? "CreateSchedule" : "UpdateSchedule"}`);
      const b = (await c.req.json()) as Partial<Schedule> & { GroupName?: string };
      const key = scheduleKey(b.GroupName, name);
      if (method === "post" && schedules.has(key)) return schedErr(c, 409, "ConflictException", `Schedule ${name} already exists.`);
      if (method === "put" && !schedules.has(key)) return schedErr(c, 404, "ResourceNotFoundException", `Schedule ${name} does not exist.`);
      if (!b.ScheduleExpression || !/^(cron|rate|at)\(.+\)$/.test(b.ScheduleExpression)) return schedErr(c, 400, "ValidationException", `Invalid Schedule Expression ${b.ScheduleExpression}.`);
      if (!b.Target?.Arn || !b.Target.RoleArn) return schedErr(c, 400, "ValidationException", "Target Arn and RoleArn are required.");
      const arn = `arn:aws:scheduler:${region}:${account}:schedule/${b.GroupName ?? "default"}/${name}`;
      const t = now();
      schedules.set(key, {
        Name: name,
        Arn: arn,
        GroupName: b.GroupName ?? "default",
        ScheduleExpression: b.ScheduleExpression,
        ScheduleExpressionTimezone: b.ScheduleExpressionTimezone,
        State: b.State ?? "ENABLED",
        Target: b.Target,
        FlexibleTimeWindow: b.FlexibleTimeWindow ?? { Mode: "OFF" },
        CreationDate: schedules.get(key)?.CreationDate ?? t,
        LastModificationDate: t,
      });
      return c.json({ ScheduleArn: arn });
    });
  }
  app.get("/schedules/:name", (c) => {
    requests.push("Scheduler.GetSchedule");
    const s = schedules.get(scheduleKey(c.req.query("groupName"), c.req.param("name")));
    if (!s) return schedErr(c, 404, "ResourceNotFoundException", `Schedule ${c.req.param("name")} does not exist.`);
    return c.json(s);
  });
  app.delete("/schedules/:name", (c) => {
    requests.push("Scheduler.DeleteSchedule");
    const key = scheduleKey(c.req.query("groupName"), c.req.param("name"));
    if (!schedules.delete(key)) return schedErr(c, 404, "ResourceNotFoundException", `Schedule ${c.req.param("name")} does not exist.`);
    return c.json({});
  });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(s as Server));
    (s as Server).once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    machines: { get: (name) => machines.get(name), list: () => [...machines.values()] },
    executions: {
      list: () => [...executions.values()],
      get: (arn) => executions.get(arn),
      async wait(arn) {
        const r = executions.get(arn);
        if (!r) throw new Error(`no execution ${arn}`);
        await r.done;
        return r;
      },
    },
    schedules: {
      list: () => [...schedules.values()],
      async fire(name, group) {
        const s = schedules.get(scheduleKey(group, name));
        if (!s) throw new Error(`no schedule ${name}`);
        const machine = [...machines.values()].find((m) => m.arn === s.Target.Arn);
        if (!machine) throw new Error(`schedule ${name} targets ${s.Target.Arn}, which does not exist`);
        return startExecution(machine, undefined, s.Target.Input).executionArn;
      },
    },
    rules: { list: () => [...rules.values()] },
    async close() {
      for (const c of controllers.values()) c.abort();
      await Promise.allSettled([...executions.values()].map((e) => e.done));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
      batch?.destroy();
      s3?.destroy();
    },
  };
}
