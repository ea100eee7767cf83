/**
 * The batch executor: `@batch({ queue, image, cpu, memory, gpu })` on a step, or
 * `tsflow run --executor batch`. Each attempt is one AWS Batch job running `tsflow __worker`
 * with the task in its environment (runner/task.ts); the job reads and writes an S3 datastore,
 * including its own stdout/stderr while it runs, which is how its logs reach the terminal.
 *
 * - Job definitions are registered once per content (image, resources, role, command) under
 *   `tsflow-<hash>` and reused (DescribeJobDefinitions) by later runs.
 * - Retries: step errors are retried by tsflow's `@retry` (a new attempt, its own logs); Batch's
 *   own retry strategy only re-runs attempts whose host vanished (spot reclaim, `Host EC2*`).
 * - `@timeout` becomes the job's `attemptDurationSeconds` (at least 60 s on AWS).
 * - One poller describes all pending jobs (100 per call) with backoff; throttling (HTTP 429) and
 *   5xx are retried by the SDK and then by the poller.
 * - A job RUNNABLE for longer than `runnableTimeoutSeconds` (no capacity can place it) is
 *   terminated and fails its task with a message saying why. Aborting a run terminates its jobs.
 *
 * The endpoint comes from `TSFLOW_BATCH_ENDPOINT` (tests, a local stand-in), the region and
 * credentials from the standard AWS chain. `@aws-sdk/client-batch` loads only when used.
 */
import { createHash } from "node:crypto";
import type { BatchClient, JobDetail } from "@aws-sdk/client-batch";
import { attemptKey, taskPrefix } from "../../core/_layout.ts";
import { LogFollower } from "../../core/_logs.ts";
import { TsflowError } from "../../core/errors.ts";
import type { Bytes, ExecutionContext, ExecutorFactory, RunContext, TaskExit, TaskResult, TaskSpec } from "../../core/types.ts";
import { runtimeFiles, uploadPackage } from "./_package.ts";

export const NAME = "batch";

export interface BatchOptions {
  /** Job queue of steps whose `@batch` names none. Default `$TSFLOW_BATCH_QUEUE`. */
  queue?: string;
  /** Image of steps whose `@batch` names none. Default `$TSFLOW_BATCH_IMAGE`. It must hold Node (and tsflow, see `command`). */
  image?: string;
  /** IAM role the job assumes (S3 access). Default `$TSFLOW_BATCH_JOB_ROLE`; `@batch({ iamRole })` per step. */
  jobRoleArn?: string;
  /** Execution role (Fargate: pulls the image, writes CloudWatch logs). */
  executionRoleArn?: string;
  /** Command that starts tsflow in the job. Default `$TSFLOW_BATCH_COMMAND` (split on spaces), else `node <this tsflow's dist/tsflow.mjs> __worker`. */
  command?: string[];
  /** Fail a task whose job stays RUNNABLE (nothing can place it) longer than this. Default 1800. */
  runnableTimeoutSeconds?: number;
  /** Batch-level attempts for lost hosts (spot reclaim). Default 3. */
  hostAttempts?: number;
  /** Poll interval bounds (ms): starts at `min`, backs off ×1.5 up to `max` while nothing changes. */
  poll?: { min?: number; max?: number };
  /**
   * Mount this tsflow's bundle into job containers from the host (same paths), as the docker
   * executor does. Only for a Batch stand-in running on this machine; on AWS, put tsflow in the image.
   */
  mountRuntime?: boolean;
  /** Also pass this process's AWS credentials into jobs (local stand-ins only; real jobs use `jobRoleArn`). */
  passCredentials?: boolean;
  /** Endpoint of the Batch API. Default `$TSFLOW_BATCH_ENDPOINT`, else AWS. */
  endpoint?: string;
  region?: string;
}

interface Pending {
  spec: TaskSpec;
  ctx: ExecutionContext;
  jobId: string;
  jobName: string;
  queue: string;
  status?: string;
  runnableSince?: number;
  /** Reads the job's log chunks as they appear (the job is their only writer). */
  follower: LogFollower;
  /** The end of the task's stderr, quoted when its job fails. */
  tail: string;
  resolve: (exit: TaskExit) => void;
}

const SPEC_ENV_LIMIT = 6000;
const PASS_ENV = ["TSFLOW_S3_ENDPOINT", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"];
const CREDENTIAL_ENV = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/** AWS Batch job names: up to 128 letters, digits, hyphens and underscores, starting alphanumeric. */
export function jobName(spec: Pick<TaskSpec, "flowName" | "runId" | "step" | "taskId" | "attempt">): string {
  const name = `${spec.flowName}-${spec.runId}-${spec.step}-${spec.taskId}-${spec.attempt}`.replace(/[^A-Za-z0-9_-]/g, "_");
  return (/^[A-Za-z0-9]/.test(name) ? name : `t${name}`).slice(0, 128);
}

const batchExecutor: ExecutorFactory<BatchOptions> = (options = {}) => {
  const env = process.env;
  const endpoint = options.endpoint ?? (env.TSFLOW_BATCH_ENDPOINT || undefined);
  const minPoll = options.poll?.min ?? (endpoint ? 100 : 1000);
  const maxPoll = options.poll?.max ?? (endpoint ? 1000 : 10_000);
  const runnableTimeout = options.runnableTimeoutSeconds ?? Number(env.TSFLOW_BATCH_RUNNABLE_TIMEOUT ?? 1800);
  let client: Promise<{ sdk: typeof import("@aws-sdk/client-batch"); client: BatchClient }> | undefined;
  let run: RunContext | undefined;
  const packages = new Map<string, Promise<string>>();
  const packageOf = (store: RunContext["datastore"], flowFile: string) => {
    let p = packages.get(flowFile);
    if (!p) {
      p = uploadPackage(store, flowFile).then((pkg) => pkg.flowFile);
      packages.set(flowFile, p);
      p.catch(() => packages.delete(flowFile));
    }
    return p;
  };
  const definitions = new Map<string, Promise<string>>();
  const pending = new Map<string, Pending>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let interval = minPoll;
  let apiFailures = 0;

  const api = () =>
    (client ??= import("@aws-sdk/client-batch").then((sdk) => ({
      sdk,
      client: new sdk.BatchClient({
        endpoint,
        region: options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (endpoint ? "us-east-1" : undefined),
        maxAttempts: 8,
      }),
    })));

  const definitionFor = async (spec: TaskSpec, image: string, role: string | undefined): Promise<string> => {
    const { cpu = 1, memory = 4096, gpu } = spec.resources;
    const command = options.command ?? env.TSFLOW_BATCH_COMMAND?.split(" ") ?? ["node", runtimeFiles().script, "__worker"];
    const mounts = options.mountRuntime ? runtimeFiles().mounts : [];
    const properties = {
      image,
      command,
      ...(mounts.length
        ? {
            volumes: mounts.map((path, i) => ({ name: `tsflow${i}`, host: { sourcePath: path } })),
            mountPoints: mounts.map((path, i) => ({ sourceVolume: `tsflow${i}`, containerPath: path, readOnly: true })),
          }
        : {}),
      jobRoleArn: role,
      executionRoleArn: options.executionRoleArn,
      resourceRequirements: [
        { type: "VCPU" as const, value: String(cpu) },
        { type: "MEMORY" as const, value: String(Math.ceil(memory)) },
        ...(gpu ? [{ type: "GPU" as const, value: String(gpu) }] : []),
      ],
    };
    const name = `tsflow-${createHash("sha256").update(JSON.stringify(properties)).digest("hex").slice(0, 20)}`;
    let p = definitions.get(name);
    if (!p) {
      p = (async () => {
        const { sdk, client: c } = await api();
        const found = await c.send(new sdk.DescribeJobDefinitionsCommand({ jobDefinitionName: name, status: "ACTIVE" }));
        const existing = found.jobDefinitions?.sort((a, b) => (b.revision ?? 0) - (a.revision ?? 0))[0];
        if (existing?.jobDefinitionArn) return existing.jobDefinitionArn;
        const made = await c.send(new sdk.RegisterJobDefinitionCommand({ jobDefinitionName: name, type: "container", containerProperties: properties }));
        return made.jobDefinitionArn!;
      })();
      definitions.set(name, p);
      p.catch(() => definitions.delete(name));
    }
    return p;
  };

  const readNew = async (task: Pending) => {
    if (!run) return;
    for (const stream of ["stdout", "stderr"] as const) {
      const chunks: Bytes[] = await task.follower.poll(stream).catch(() => []);
      for (const bytes of chunks) {
        task.ctx.output(stream, bytes);
        if (stream === "stderr") task.tail = `${task.tail}\n${new TextDecoder().decode(bytes.subarray(-400))}`.trim().split("\n").slice(-3).join("\n");
      }
    }
  };

  const terminate = async (jobId: string, reason: string) => {
    const { sdk, client: c } = await api();
    await c.send(new sdk.TerminateJobCommand({ jobId, reason })).catch((e) => run?.logger.warn(`[batch] cannot terminate job ${jobId}: ${(e as Error).message}`));
  };

  const settle = async (task: Pending, job: JobDetail | undefined, exit?: TaskExit) => {
    pending.delete(task.jobId);
    await readNew(task);
    if (exit) return task.resolve(exit);
    if (job?.status === "SUCCEEDED") {
      const bytes = await run!.datastore.get(attemptKey(task.spec.flowName, task.spec.runId, task.spec.step, task.spec.taskId, task.spec.attempt, "result.json"));
      const result = bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as TaskResult) : undefined;
      return task.resolve(result ? { completed: true, result } : { completed: false, error: { type: "Executor", message: `[batch] job ${task.jobName} (${task.jobId}) succeeded without writing its result` } });
    }
    const reason = job?.statusReason ?? "unknown reason";
    const exitCode = job?.container?.exitCode ?? job?.attempts?.at(-1)?.container?.exitCode;
    const timedOut = /timeout|timed out/i.test(reason);
    task.resolve({
      completed: false,
      error: {
        type: timedOut ? "Timeout" : "WorkerCrashed",
        message: timedOut
          ? `step '${task.spec.step}' timed out after ${task.spec.timeoutSeconds} s (@timeout): Batch job ${task.jobName} (${task.jobId}) was stopped`
          : `Batch job ${task.jobName} (${task.jobId}) failed: ${reason}${exitCode !== undefined ? ` (exit code ${exitCode})` : ""}${task.tail ? `; last output: ${task.tail.split("\n").join(" | ")}` : ""}`,
      },
    });
  };

  const poll = async () => {
    timer = undefined;
    const tasks = [...pending.values()];
    if (!tasks.length) return;
    let changed = false;
    try {
      const { sdk, client: c } = await api();
      for (let i = 0; i < tasks.length; i += 100) {
        const batch = tasks.slice(i, i + 100);
        const out = await c.send(new sdk.DescribeJobsCommand({ jobs: batch.map((t) => t.jobId) }));
        apiFailures = 0;
        const byId = new Map((out.jobs ?? []).map((j) => [j.jobId, j]));
        for (const task of batch) {
          const job = byId.get(task.jobId);
          if (!job || !pending.has(task.jobId)) continue;
          if (job.status !== task.status) {
            changed = true;
            task.status = job.status;
            if (job.status === "RUNNABLE") task.runnableSince = Date.now();
          }
          if (job.status === "SUCCEEDED" || job.status === "FAILED") await settle(task, job);
          else if (job.status === "RUNNING") await readNew(task);
          else if (job.status === "RUNNABLE" && Date.now() - task.runnableSince! > runnableTimeout * 1000) {
            await terminate(task.jobId, `tsflow: RUNNABLE for more than ${runnableTimeout} s`);
            await settle(task, job, {
              completed: false,
              error: {
                type: "Timeout",
                message: `Batch job ${task.jobName} (${task.jobId}) stayed RUNNABLE for more than ${runnableTimeout} s on queue '${task.queue}': no compute environment could place it (check the queue's compute environments, their max vCPUs and instance types against the step's cpu/memory/gpu)`,
              },
            });
          }
        }
      }
    } catch (e) {
      // The SDK has already retried throttling and 5xx; keep polling, but not forever.
      if (++apiFailures >= 20) {
        for (const task of [...pending.values()]) await settle(task, undefined, { completed: false, error: { type: "Executor", message: `[batch] cannot describe job ${task.jobId}: ${(e as Error).message}` } });
        return;
      }
      run?.logger.warn(`[batch] DescribeJobs failed (${(e as Error).message}); retrying`);
    }
    interval = changed ? minPoll : Math.min(maxPoll, interval * 1.5);
    schedulePoll();
  };
  const schedulePoll = () => {
    if (!timer && pending.size) timer = setTimeout(() => void poll(), interval);
  };

  return {
    name: NAME,
    storesOwnLogs: true,
    remote: true,

    check(datastore) {
      if (!datastore.url.startsWith("s3://")) {
        throw new TsflowError("BadOption", `[batch] AWS Batch jobs cannot reach datastore '${datastore.url}': run with --datastore s3://bucket/prefix`);
      }
    },

    async prepare(context) {
      run = context;
      if (!context.datastore.url.startsWith("s3://")) {
        throw new TsflowError("BadOption", `[batch] AWS Batch jobs cannot reach datastore '${context.datastore.url}': run with --datastore s3://bucket/prefix`);
      }
      await packageOf(context.datastore, context.flowFile);
    },

    async run(spec, ctx) {
      if (!run) throw new TsflowError("Executor", "[batch] prepare() must be called before run()");
      if (ctx.signal.aborted) return { completed: false, error: { type: "Cancelled", message: "the run was stopped before the task started" } };
      const opts = (spec.decorators.batch ?? {}) as { queue?: string; image?: string; iamRole?: string };
      const queue = opts.queue ?? options.queue ?? env.TSFLOW_BATCH_QUEUE;
      const image = opts.image ?? options.image ?? env.TSFLOW_BATCH_IMAGE;
      if (!queue || !image) throw new TsflowError("BadOption", `[batch] step '${spec.step}' needs a job queue and an image: @batch({ queue, image }), --with batch:queue=…,image=… or TSFLOW_BATCH_QUEUE/TSFLOW_BATCH_IMAGE`);
      const flowFile = spec.flowFile.startsWith("package:") ? spec.flowFile : await packageOf(run.datastore, spec.flowFile);
      const task: TaskSpec = { ...spec, flowFile, module: undefined };
      const definition = await definitionFor(task, image, opts.iamRole ?? options.jobRoleArn ?? env.TSFLOW_BATCH_JOB_ROLE);
      const environment = [...PASS_ENV, ...(options.passCredentials ? CREDENTIAL_ENV : [])].filter((n) => env[n] !== undefined).map((name) => ({ name, value: env[name]! }));
      // @environment values travel as the job's own environment, never inside the spec (nor in
      // the job definition): a big spec is written to the datastore, and secrets must not land
      // there. The runtime already leaves them out of `decorators`; a spec built elsewhere may not.
      for (const [k, v] of Object.entries(task.env)) environment.push({ name: k, value: v });
      const { environment: _values, ...decorators } = task.decorators;
      const json = JSON.stringify({ ...task, env: {}, decorators });
      if (json.length < SPEC_ENV_LIMIT) environment.push({ name: "TSFLOW_TASK_SPEC", value: json });
      else {
        // A join of many foreach tasks outgrows the job's environment: the spec goes through S3.
        const key = `${taskPrefix(spec.flowName, spec.runId, spec.step, spec.taskId)}${spec.attempt}/spec.json`;
        await run.datastore.put(key, new TextEncoder().encode(json));
        environment.push({ name: "TSFLOW_TASK_SPEC_KEY", value: key }, { name: "TSFLOW_TASK_DATASTORE", value: spec.datastore });
      }
      const { sdk, client: c } = await api();
      const name = jobName(spec);
      const submitted = await c.send(
        new sdk.SubmitJobCommand({
          jobName: name,
          jobQueue: queue,
          jobDefinition: definition,
          containerOverrides: { environment },
          retryStrategy: {
            attempts: options.hostAttempts ?? 3,
            evaluateOnExit: [
              { onStatusReason: "Host EC2*", action: "RETRY" },
              { onReason: "*", action: "EXIT" },
              { onExitCode: "*", action: "EXIT" },
            ],
          },
          ...(spec.timeoutSeconds ? { timeout: { attemptDurationSeconds: endpoint ? spec.timeoutSeconds : Math.max(60, Math.ceil(spec.timeoutSeconds)) } } : {}),
        }),
      );
      const jobId = submitted.jobId!;
      return new Promise<TaskExit>((resolve) => {
        const onAbort = () => {
          if (!pending.has(jobId)) return;
          void terminate(jobId, "tsflow: the run was stopped");
          void settle(entry, undefined, { completed: false, error: { type: "Cancelled", message: `task ${spec.runId}/${spec.step}/${spec.taskId} was stopped: Batch job ${name} terminated` } });
        };
        const entry: Pending = {
          spec,
          ctx,
          jobId,
          jobName: name,
          queue,
          follower: new LogFollower(run!.datastore, { flow: spec.flowName, run: spec.runId, step: spec.step, task: spec.taskId, attempt: spec.attempt }),
          tail: "",
          resolve: (exit) => {
            ctx.signal.removeEventListener("abort", onAbort);
            resolve(exit);
          },
        };
        pending.set(jobId, entry);
        ctx.signal.addEventListener("abort", onAbort, { once: true });
        interval = minPoll;
        schedulePoll();
      });
    },

    async close() {
      if (timer) clearTimeout(timer);
      await Promise.all([...pending.values()].map((t) => terminate(t.jobId, "tsflow: executor closed")));
      pending.clear();
      if (client) (await client).client.destroy();
    },
  };
};

export default batchExecutor;
