/**
 * A local stand-in for the AWS Batch API, so tsflow's `batch` executor can be tested without AWS.
 *
 * The real `@aws-sdk/client-batch` `BatchClient` talks to it (`endpoint: server.url`, any region and
 * static credentials), and submitted jobs run for real: in a Docker container through the `docker`
 * CLI (`executor: "docker"`), or as a local child process (`executor: "process"`). Faults a cloud
 * has — throttling, 5xx, dropped connections, no capacity, lost hosts — can be injected on demand.
 *
 * Wire format (REST-JSON, what the SDK speaks): every operation is `POST /v1/<lowercased op>` with
 * the API's member names in JSON; timestamps are epoch milliseconds; errors are 4xx/5xx with the
 * `x-amzn-errortype` header and `{ message }`.
 *
 * Deliberate differences from AWS Batch, all for fast tests:
 * - `timeout.attemptDurationSeconds` may be fractional and below AWS's 60 s minimum;
 * - state transitions take `transitionMs` (default 50 ms), not minutes;
 * - capacity is `maxConcurrent` running jobs, whatever their vCPUs; GPUs are only recorded
 *   (passed to `docker --gpus` when `dockerGpus` is set);
 * - in process mode images, volumes and resource limits are recorded but not applied;
 * - a job's environment is what a container's would be, not this process's: the job definition's
 *   and the overrides' variables, `AWS_BATCH_*`, and what AWS itself would provide — PATH and
 *   HOME (the image's), `environment` (the image's other ENV), credentials (this process's
 *   `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` when the job starts stand
 *   for its job role) and the endpoints of local stand-ins (`AWS_ENDPOINT_URL*`,
 *   `TSFLOW_*_ENDPOINT`: the network that leads a job to them). Nothing else of the submitter's
 *   environment (`NODE_EXTRA_CA_CERTS`, `NODE_OPTIONS`, secrets, `TSFLOW_*` settings) reaches a job;
 * - logs go nowhere like CloudWatch: read them with `server.jobs.logs(jobId)` or
 *   `GET /_local/jobs/<jobId>/logs`.
 *
 * CLI: `node --import tsx test/batch-server/server.ts --port 4566 [--executor docker|process]
 *      [--max-concurrent 4] [--docker-host unix:///…]`
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism, constants as osConstants } from "node:os";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type {
  AttemptDetail,
  ContainerDetail,
  ContainerProperties,
  EvaluateOnExit,
  JobDefinition,
  JobDetail,
  JobQueueDetail,
  JobStatus,
  JobSummary,
  KeyValuePair,
  ResourceRequirement,
} from "@aws-sdk/client-batch";
import { type HttpBindings, serve } from "@hono/node-server";
import { Hono } from "hono";

export interface BatchServerOptions {
  /** Port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  /** Where jobs run. Default: `$TSFLOW_BATCH_EXECUTOR`, else `"process"`. */
  executor?: "docker" | "process";
  /** `DOCKER_HOST` for the docker CLI. Default: `$DOCKER_HOST` (else the CLI's default socket). */
  dockerHost?: string;
  /** The docker CLI binary. Default `"docker"` on PATH. */
  dockerBin?: string;
  /** `docker run --network`. Default `"host"`, so jobs reach 127.0.0.1 services (S3, this API). */
  dockerNetwork?: string;
  /** Pass GPU requirements to `docker run --gpus`. Default false: this machine has no GPU. */
  dockerGpus?: boolean;
  /** Jobs running at once: the compute environment's capacity. Default 4. */
  maxConcurrent?: number;
  /** Delay of each scheduler state transition, in ms. Default 50. */
  transitionMs?: number;
  /** Seconds between SIGTERM and SIGKILL when a job is terminated or times out. Default 2. */
  killGraceSeconds?: number;
  /** Job queues that exist from the start. Default `["default"]`. */
  queues?: string[];
  /**
   * Variables every job gets below its own (the image's ENV). Process-mode jobs also get this
   * process's PATH and HOME. See the header for what else a job gets, and what it does not.
   */
  environment?: Record<string, string>;
  /** Working directory of process-mode jobs. Default `process.cwd()`. */
  cwd?: string;
  /** Region and account that appear in ARNs. Default `us-east-1`, `123456789012`. */
  region?: string;
  accountId?: string;
  /** Called with every chunk a job writes to stdout/stderr (they are also kept, see `jobs.logs`). */
  onOutput?: (jobId: string, chunk: string, stream: "stdout" | "stderr") => void;
}

/** Faults to inject; each applies to the next requests or jobs, in order. */
export interface BatchFaults {
  /** The next `n` API requests answer HTTP 429 `TooManyRequestsException`. */
  throttleNext(n?: number): void;
  /** The next `n` API requests answer HTTP 500 `ServerException`. */
  serverErrorNext(n?: number): void;
  /** The next `n` API requests get their connection closed without an answer. */
  resetNext(n?: number): void;
  /** The next `n` API requests are answered `ms` late. */
  delayNext(n: number, ms: number): void;
  /** While true, jobs stay RUNNABLE (no capacity); false lets them start. */
  holdRunnable(hold: boolean): void;
  /** The next `count` job attempts to start fail as if their host vanished: no exit code, not run. */
  failNextJob(options?: { count?: number; statusReason?: string }): void;
  /** Clears every pending fault and releases held jobs. */
  reset(): void;
}

export interface BatchServer {
  /** `http://127.0.0.1:PORT`: the `endpoint` for `BatchClient`. */
  url: string;
  port: number;
  /** Kills running jobs and stops the server. */
  close(): Promise<void>;
  faults: BatchFaults;
  /** What the server knows about jobs, for assertions without going through the API. */
  jobs: {
    list(): JobDetail[];
    get(jobId: string): JobDetail | undefined;
    /** Everything the job's attempts wrote to stdout and stderr. */
    logs(jobId: string): string;
    /** Every status the job has had, in order. */
    history(jobId: string): JobStatus[];
  };
  /** Every API request answered so far, in order (faults included). */
  requests: { op: string; status: number }[];
  /** The Hono app, for `app.request()` tests without a socket. */
  app: Hono<{ Bindings: HttpBindings }>;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}
const clientError = (message: string) => new ApiError(400, "ClientException", message);

const TERMINAL = new Set<JobStatus>(["SUCCEEDED", "FAILED"]);
const CREDENTIALS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];
const LOG_LIMIT = 1 << 20;

interface Queue {
  detail: JobQueueDetail;
}

interface Attempt {
  startedAt: number;
  taskId: string;
  child?: ChildProcess;
  /** Set when we stop it: why, for statusReason and to decide about retries. */
  killed?: { reason: string; timeout: boolean };
  timer?: NodeJS.Timeout;
}

interface Job {
  detail: JobDetail;
  definition: JobDefinition;
  container: ContainerProperties;
  maxAttempts: number;
  evaluateOnExit: EvaluateOnExit[];
  timeoutMs?: number;
  runnableSince: number;
  /** A PENDING → RUNNABLE transition is scheduled. */
  promoting?: boolean;
  attempt?: Attempt;
  logs: string;
  timers: Set<NodeJS.Timeout>;
  /** Every status the job has had, in order: tests check transitions here, not by polling fast. */
  history: JobStatus[];
  /** An array job's parent: it never runs, its status follows its children's. */
  children?: Job[];
  /** An array child's parent. */
  parent?: Job;
}

/** Starts the server on 127.0.0.1 and resolves once it listens. */
export async function startBatchServer(options: BatchServerOptions = {}): Promise<BatchServer> {
  const region = options.region ?? "us-east-1";
  const account = options.accountId ?? "123456789012";
  const executor = options.executor ?? (process.env.TSFLOW_BATCH_EXECUTOR === "docker" ? "docker" : "process");
  const transitionMs = options.transitionMs ?? 50;
  const maxConcurrent = options.maxConcurrent ?? 4;
  const grace = options.killGraceSeconds ?? 2;
  const dockerBin = options.dockerBin ?? "docker";
  const dockerEnv = { ...process.env };
  if (options.dockerHost ?? process.env.DOCKER_HOST) dockerEnv.DOCKER_HOST = options.dockerHost ?? process.env.DOCKER_HOST;
  const arn = (kind: string, name: string) => `arn:aws:batch:${region}:${account}:${kind}/${name}`;

  const queues = new Map<string, Queue>();
  const definitions = new Map<string, JobDefinition[]>(); // name → revisions, index = revision - 1
  const jobs = new Map<string, Job>();
  const requests: { op: string; status: number }[] = [];
  const pending = { throttle: 0, serverError: 0, reset: 0, delay: [] as number[], failJobs: [] as string[] };
  let hold = false;
  let closing = false;

  const createQueue = (name: string, priority = 1, state = "ENABLED") => {
    if (queues.has(name)) throw clientError(`Object already exists: job queue ${name}`);
    const detail: JobQueueDetail = {
      jobQueueName: name,
      jobQueueArn: arn("job-queue", name),
      state: state as JobQueueDetail["state"],
      status: "VALID",
      statusReason: "JobQueue Healthy",
      priority,
      computeEnvironmentOrder: [{ order: 1, computeEnvironment: arn("compute-environment", "local") }],
    };
    queues.set(name, { detail });
    return detail;
  };
  for (const name of options.queues ?? ["default"]) createQueue(name);

  const findQueue = (ref: string) => {
    const name = ref.startsWith("arn:") ? ref.slice(ref.lastIndexOf("/") + 1) : ref;
    const queue = queues.get(name);
    if (!queue) throw clientError(`Job queue ${ref} does not exist`);
    return queue;
  };

  /** Resolves `name`, `name:revision` or an ARN; a bare name means its latest ACTIVE revision. */
  const findDefinition = (ref: string): JobDefinition | undefined => {
    const short = ref.startsWith("arn:") ? ref.slice(ref.lastIndexOf("/") + 1) : ref;
    const [name, rev] = short.split(":");
    const revisions = definitions.get(name!) ?? [];
    if (rev !== undefined) return revisions[Number(rev) - 1];
    return revisions.findLast((d) => d.status === "ACTIVE");
  };

  // ---- scheduling: SUBMITTED → PENDING → RUNNABLE → STARTING → RUNNING → SUCCEEDED | FAILED ----

  const later = (job: Job, fn: () => void, ms = transitionMs) => {
    const timer = setTimeout(() => {
      job.timers.delete(timer);
      if (!closing) fn();
    }, ms);
    job.timers.add(timer);
  };

  const setStatus = (job: Job, status: JobStatus, reason?: string) => {
    const before = job.detail.status;
    job.detail.status = status;
    if (job.history.at(-1) !== status) job.history.push(status);
    if (reason !== undefined) job.detail.statusReason = reason;
    if (job.attempt) runningJobs.add(job);
    else runningJobs.delete(job);
    if (status === "RUNNABLE" && !job.attempt) runnable.add(job);
    else runnable.delete(job);
    if (job.parent) updateParent(job.parent, before, status);
    if (TERMINAL.has(status)) {
      job.detail.stoppedAt = Date.now();
      for (const t of job.timers) clearTimeout(t);
      job.timers.clear();
      // Jobs waiting on this one may now go on (or fail).
      if (waiting.size) for (const other of [...waiting]) if (other.detail.status === "PENDING") advancePending(other);
    }
    if (status === "RUNNABLE") job.runnableSince = Date.now();
    pump();
  };

  /**
   * An array parent, as AWS documents it: SUBMITTED, PENDING once a child is RUNNABLE, and once
   * every child is over SUCCEEDED if they all succeeded, else FAILED; `statusSummary` counts the
   * children in each status.
   */
  const updateParent = (parent: Job, from: JobStatus | undefined, to: JobStatus) => {
    const summary = parent.detail.arrayProperties!.statusSummary!;
    if (from) summary[from] = (summary[from] ?? 1) - 1;
    summary[to] = (summary[to] ?? 0) + 1;
    parent.detail.arrayProperties!.statusSummaryLastUpdatedAt = Date.now();
    const size = parent.children!.length;
    const done = (summary.SUCCEEDED ?? 0) + (summary.FAILED ?? 0);
    if (done === size) {
      if (TERMINAL.has(parent.detail.status!)) return;
      parent.detail.status = summary.FAILED ? "FAILED" : "SUCCEEDED";
      parent.history.push(parent.detail.status);
      parent.detail.statusReason = summary.FAILED ? `${summary.FAILED} of ${size} child jobs failed` : undefined;
      parent.detail.stoppedAt = Date.now();
    } else if (parent.detail.status === "SUBMITTED" && ["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"].includes(to)) {
      parent.detail.status = "PENDING";
      parent.history.push("PENDING");
    }
  };

  const advancePending = (job: Job) => {
    const deps = (job.detail.dependsOn ?? []).map((d) => jobs.get(d.jobId ?? ""));
    if (deps.some((d) => d?.detail.status === "FAILED")) {
      waiting.delete(job);
      return setStatus(job, "FAILED", "Dependent Job failed");
    }
    if (job.promoting) return;
    if (!deps.every((d) => !d || d.detail.status === "SUCCEEDED")) {
      waiting.add(job);
      return;
    }
    waiting.delete(job);
    job.promoting = true;
    later(job, () => {
      job.promoting = false;
      if (job.detail.status === "PENDING") setStatus(job, "RUNNABLE");
    });
  };

  // Indexes kept beside `jobs`, so a 10,000-child array is not scanned on every transition.
  const runningJobs = new Set<Job>();
  const runnable = new Set<Job>();
  const waiting = new Set<Job>();
  const running = () => runningJobs.size;

  // Starts RUNNABLE jobs, oldest first, while there is capacity. Not re-entrant: starting a job
  // changes its status, which calls pump again.
  let pumping = false;
  const pump = () => {
    if (hold || closing || pumping) return;
    pumping = true;
    try {
      // A Set iterates in insertion order: oldest RUNNABLE first.
      for (const job of [...runnable]) {
        if (running() >= maxConcurrent) break;
        startAttempt(job);
      }
    } finally {
      pumping = false;
    }
  };

  const startAttempt = (job: Job) => {
    const attempt: Attempt = { startedAt: Date.now(), taskId: randomUUID().replaceAll("-", "") };
    job.attempt = attempt;
    runnable.delete(job);
    runningJobs.add(job);
    job.detail.startedAt ??= attempt.startedAt;
    setStatus(job, "STARTING");
    const lost = pending.failJobs.shift();
    later(job, () => {
      if (lost !== undefined) return finishAttempt(job, { statusReason: lost });
      // Terminated while STARTING: it never runs.
      if (attempt.killed) return finishAttempt(job, {});
      setStatus(job, "RUNNING");
      if (job.timeoutMs !== undefined) {
        attempt.timer = setTimeout(
          () => kill(job, "Job attempt duration exceeded timeout", true),
          job.timeoutMs,
        );
      }
      (executor === "docker" ? runDocker : runProcess)(job, attempt);
    });
  };

  interface Outcome {
    exitCode?: number;
    reason?: string;
    statusReason?: string;
  }

  const finishAttempt = (job: Job, outcome: Outcome) => {
    const attempt = job.attempt!;
    clearTimeout(attempt.timer);
    job.attempt = undefined;
    runningJobs.delete(job);
    const stoppedAt = Date.now();
    const statusReason =
      attempt.killed?.reason ?? outcome.statusReason ?? (outcome.reason ? "Task failed to start" : "Essential container in task exited");
    const logStreamName = `${job.definition.jobDefinitionName}/default/${attempt.taskId}`;
    const record: AttemptDetail = {
      container: {
        exitCode: outcome.exitCode,
        reason: outcome.reason,
        logStreamName,
        taskArn: arn("task", attempt.taskId),
      },
      startedAt: attempt.startedAt,
      stoppedAt,
      statusReason,
    };
    job.detail.attempts!.push(record);
    Object.assign(job.detail.container!, { exitCode: outcome.exitCode, reason: outcome.reason, logStreamName });
    if (closing) return;
    if (outcome.exitCode === 0 && !attempt.killed) return setStatus(job, "SUCCEEDED", statusReason);
    // Terminated and timed-out jobs are not retried, as on AWS.
    if (!attempt.killed && job.detail.attempts!.length < job.maxAttempts && shouldRetry(job, outcome, statusReason)) {
      job.detail.statusReason = statusReason;
      return later(job, () => setStatus(job, "RUNNABLE"));
    }
    setStatus(job, "FAILED", statusReason);
  };

  const shouldRetry = (job: Job, outcome: Outcome, statusReason: string) => {
    const match = (pattern: string | undefined, value: string | undefined) =>
      pattern === undefined ||
      (value !== undefined && (pattern.endsWith("*") ? value.startsWith(pattern.slice(0, -1)) : value === pattern));
    const rule = job.evaluateOnExit.find(
      (r) =>
        match(r.onExitCode, outcome.exitCode?.toString()) &&
        match(r.onReason, outcome.reason) &&
        match(r.onStatusReason, statusReason),
    );
    return !rule || rule.action?.toUpperCase() === "RETRY";
  };

  const appendLog = (job: Job, chunk: string, stream: "stdout" | "stderr") => {
    if (job.logs.length < LOG_LIMIT) job.logs += chunk;
    options.onOutput?.(job.detail.jobId!, chunk, stream);
  };

  const capture = (job: Job, child: ChildProcess) => {
    child.stdout?.setEncoding("utf8").on("data", (c: string) => appendLog(job, c, "stdout"));
    child.stderr?.setEncoding("utf8").on("data", (c: string) => appendLog(job, c, "stderr"));
  };

  const batchEnv = (job: Job): Record<string, string> => ({
    ...(job.parent ? { AWS_BATCH_JOB_ARRAY_INDEX: String(job.detail.arrayProperties!.index) } : {}),
    AWS_BATCH_JOB_ID: job.detail.jobId!,
    AWS_BATCH_JOB_ATTEMPT: String(job.detail.attempts!.length + 1),
    AWS_BATCH_JQ_NAME: job.detail.jobQueue!.slice(job.detail.jobQueue!.lastIndexOf("/") + 1),
    AWS_BATCH_CE_NAME: "local",
  });

  /**
   * What AWS gives a container besides its job's variables: credentials (its role's; here this
   * process's at the job's start) and a network that reaches the local stand-ins (their endpoints).
   */
  const provided = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && (CREDENTIALS.includes(k) || /^AWS_ENDPOINT_URL(_\w+)?$/.test(k) || /^TSFLOW_\w+_ENDPOINT$/.test(k))) out[k] = v;
    }
    return out;
  };

  // A job's whole environment, as a container would have it; the submitter's own stays out.
  const env = (job: Job) => ({
    ...provided(),
    ...options.environment,
    ...Object.fromEntries((job.container.environment ?? []).map((e) => [e.name!, e.value ?? ""])),
    ...batchEnv(job),
  });
  /** An image's basics, which a process-mode job takes from this machine (it runs here). */
  const image = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const k of ["PATH", "HOME"]) if (process.env[k] !== undefined) out[k] = process.env[k]!;
    return out;
  };

  const exitCodeOf = (code: number | null, signal: NodeJS.Signals | null) =>
    code ?? 128 + (signal ? (osConstants.signals[signal] ?? 9) : 9);

  const runProcess = (job: Job, attempt: Attempt) => {
    const [cmd, ...args] = job.container.command ?? [];
    if (!cmd) return finishAttempt(job, { reason: "CannotStartContainerError: the job has no command to run" });
    let settled = false;
    // Its own process group, so terminating a job also stops what its command started.
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: { ...image(), ...env(job) },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    attempt.child = child;
    capture(job, child);
    child.on("error", (err) => {
      if (settled) return;
      settled = true;
      finishAttempt(job, { reason: `CannotStartContainerError: ${err.message}` });
    });
    child.on("close", (code, signal) => {
      if (settled) return;
      settled = true;
      finishAttempt(job, { exitCode: exitCodeOf(code, signal) });
    });
  };

  const containerName = (job: Job) => `tsflow-batch-${job.detail.jobId}-${job.detail.attempts!.length + 1}`;

  const dockerArgs = (job: Job) => {
    const c = job.container;
    const args = ["run", "--rm", "--name", containerName(job), "--label", `org.tsflow.batch-job=${job.detail.jobId}`];
    args.push("--network", options.dockerNetwork ?? "host", "--pull", "never");
    const { vcpus, memory, gpus } = resources(c);
    // docker refuses more CPUs than the host has; AWS would just pick a bigger instance.
    if (vcpus) args.push("--cpus", String(Math.min(vcpus, availableParallelism())));
    if (memory) args.push("--memory", `${Math.max(memory, 6)}m`);
    if (gpus && options.dockerGpus) args.push("--gpus", String(gpus));
    for (const [k, v] of Object.entries(env(job))) args.push("--env", `${k}=${v}`);
    const volumes = new Map((c.volumes ?? []).map((v) => [v.name, v.host?.sourcePath]));
    for (const m of c.mountPoints ?? []) {
      const source = volumes.get(m.sourceVolume);
      if (!m.containerPath) continue;
      args.push("--volume", [source, m.containerPath, m.readOnly ? "ro" : undefined].filter(Boolean).join(":"));
    }
    if (c.user) args.push("--user", c.user);
    if (c.privileged) args.push("--privileged");
    if (c.readonlyRootFilesystem) args.push("--read-only");
    if (c.linuxParameters?.initProcessEnabled) args.push("--init");
    if (c.linuxParameters?.sharedMemorySize) args.push("--shm-size", `${c.linuxParameters.sharedMemorySize}m`);
    for (const u of c.ulimits ?? []) args.push("--ulimit", `${u.name}=${u.softLimit}:${u.hardLimit}`);
    args.push(c.image ?? "", ...(c.command ?? []));
    return args;
  };

  const runDocker = (job: Job, attempt: Attempt) => {
    if (!job.container.image) return finishAttempt(job, { reason: "CannotStartContainerError: the job has no image" });
    const logStart = job.logs.length;
    const child = spawn(dockerBin, dockerArgs(job), { env: dockerEnv, stdio: ["ignore", "pipe", "pipe"] });
    attempt.child = child;
    capture(job, child);
    let settled = false;
    child.on("error", (err) => {
      if (settled) return;
      settled = true;
      finishAttempt(job, { reason: `CannotStartContainerError: cannot run ${dockerBin}: ${err.message}` });
    });
    child.on("close", (code, signal) => {
      if (settled) return;
      settled = true;
      const exitCode = exitCodeOf(code, signal);
      // 125-127 with the CLI's own message mean the container never started (no image, bad command).
      const daemonError = job.logs.slice(logStart).match(/(?:docker: )?Error response from daemon: [^\n]*/);
      if (exitCode >= 125 && exitCode <= 127 && daemonError) {
        return finishAttempt(job, { reason: `CannotStartContainerError: ${daemonError[0]}` });
      }
      finishAttempt(job, { exitCode });
    });
  };

  /** Stops a running attempt: SIGTERM, then SIGKILL after the grace period. */
  const kill = (job: Job, reason: string, timeout = false) => {
    const attempt = job.attempt;
    if (!attempt?.child || attempt.killed) return;
    attempt.killed = { reason, timeout };
    const child = attempt.child;
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    if (executor === "process") {
      const signal = (sig: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, sig);
        } catch {
          child.kill(sig);
        }
      };
      signal("SIGTERM");
      const t = setTimeout(() => exited() || signal("SIGKILL"), grace * 1000);
      child.once("close", () => clearTimeout(t));
      return;
    }
    // The container may not exist yet right after `docker run` started: retry until it does or the run ends.
    const name = containerName(job);
    const stop = () => {
      if (exited()) return;
      const p = spawn(dockerBin, ["stop", "-t", String(Math.ceil(grace)), name], { env: dockerEnv, stdio: "ignore" });
      p.on("close", (code) => code !== 0 && setTimeout(stop, 200));
      p.on("error", () => child.kill("SIGKILL"));
    };
    stop();
  };

  // ---- the API ----

  const resolveContainer = (def: JobDefinition, overrides: any = {}): ContainerProperties => {
    const base = structuredClone(def.containerProperties ?? {});
    const env = new Map((base.environment ?? []).map((e) => [e.name, e]));
    for (const e of (overrides.environment ?? []) as KeyValuePair[]) env.set(e.name, e);
    const reqs = new Map((base.resourceRequirements ?? []).map((r) => [r.type, r]));
    for (const r of (overrides.resourceRequirements ?? []) as ResourceRequirement[]) reqs.set(r.type, r);
    return {
      ...base,
      ...(overrides.vcpus !== undefined && { vcpus: overrides.vcpus }),
      ...(overrides.memory !== undefined && { memory: overrides.memory }),
      ...(overrides.instanceType !== undefined && { instanceType: overrides.instanceType }),
      command: overrides.command ?? base.command,
      environment: [...env.values()],
      resourceRequirements: [...reqs.values()],
    };
  };

  const ops: Record<string, (input: any) => unknown> = {
    registerjobdefinition(input) {
      const name = requireString(input, "jobDefinitionName");
      if (input.type !== "container") throw clientError(`type ${input.type} is not supported here, only container`);
      if (!input.containerProperties) throw clientError("containerProperties is required for a container job definition");
      const revisions = definitions.get(name) ?? [];
      const revision = revisions.length + 1;
      const def: JobDefinition = {
        jobDefinitionName: name,
        jobDefinitionArn: arn("job-definition", `${name}:${revision}`),
        revision,
        status: "ACTIVE",
        type: "container",
        parameters: input.parameters,
        retryStrategy: input.retryStrategy,
        containerProperties: input.containerProperties,
        timeout: input.timeout,
        tags: input.tags,
        propagateTags: input.propagateTags,
        platformCapabilities: input.platformCapabilities ?? ["EC2"],
        containerOrchestrationType: "ECS",
      };
      definitions.set(name, [...revisions, def]);
      return { jobDefinitionName: name, jobDefinitionArn: def.jobDefinitionArn, revision };
    },

    describejobdefinitions(input) {
      let list = [...definitions.values()].flat();
      if (input.jobDefinitions?.length) {
        list = (input.jobDefinitions as string[]).flatMap((ref) => {
          const short = ref.startsWith("arn:") ? ref.slice(ref.lastIndexOf("/") + 1) : ref;
          return short.includes(":") ? [findDefinition(ref)].filter((d) => d !== undefined) : (definitions.get(short) ?? []);
        });
      }
      if (input.jobDefinitionName) list = list.filter((d) => d.jobDefinitionName === input.jobDefinitionName);
      if (input.status) list = list.filter((d) => d.status === input.status);
      const page = paginate(list, input);
      return { jobDefinitions: page.items, nextToken: page.nextToken };
    },

    deregisterjobdefinition(input) {
      const ref = requireString(input, "jobDefinition");
      const short = ref.startsWith("arn:") ? ref.slice(ref.lastIndexOf("/") + 1) : ref;
      const def = short.includes(":") ? findDefinition(ref) : undefined;
      if (!def) throw clientError(`Job definition ${ref} does not exist (give name:revision or its ARN)`);
      def.status = "INACTIVE";
      return {};
    },

    createjobqueue(input) {
      const detail = createQueue(requireString(input, "jobQueueName"), input.priority ?? 1, input.state ?? "ENABLED");
      return { jobQueueName: detail.jobQueueName, jobQueueArn: detail.jobQueueArn };
    },

    describejobqueues(input) {
      let list = [...queues.values()].map((q) => q.detail);
      if (input.jobQueues?.length) {
        const wanted = new Set(input.jobQueues as string[]);
        list = list.filter((q) => wanted.has(q.jobQueueName!) || wanted.has(q.jobQueueArn!));
      }
      const page = paginate(list, input);
      return { jobQueues: page.items, nextToken: page.nextToken };
    },

    submitjob(input) {
      const jobName = requireString(input, "jobName");
      const queue = findQueue(requireString(input, "jobQueue"));
      const ref = requireString(input, "jobDefinition");
      const definition = findDefinition(ref);
      if (definition?.status !== "ACTIVE") throw clientError(`Job definition ${ref} does not exist or is inactive`);
      for (const d of (input.dependsOn ?? []) as { jobId?: string }[]) {
        if (!jobs.has(d.jobId ?? "")) throw clientError(`dependsOn: job ${d.jobId} does not exist`);
      }
      const container = resolveContainer(definition, input.containerOverrides);
      const parameters = { ...definition.parameters, ...input.parameters };
      // Batch replaces `Ref::name` arguments with the job's parameters.
      container.command = container.command?.map((a) =>
        a.startsWith("Ref::") && a.slice(5) in parameters ? parameters[a.slice(5)]! : a,
      );
      const retryStrategy = input.retryStrategy ?? definition.retryStrategy;
      const timeout = input.timeout ?? definition.timeout;
      const size = input.arrayProperties?.size;
      if (size !== undefined && (!Number.isInteger(size) || size < 2 || size > 10_000)) {
        throw clientError(`arrayProperties.size must be between 2 and 10000 (got ${size})`);
      }
      const jobId = randomUUID();
      const detail: JobDetail = {
        jobArn: arn("job", jobId),
        jobName,
        jobId,
        jobQueue: queue.detail.jobQueueArn,
        status: "SUBMITTED",
        attempts: [],
        createdAt: Date.now(),
        startedAt: undefined,
        retryStrategy,
        dependsOn: input.dependsOn,
        jobDefinition: definition.jobDefinitionArn,
        parameters,
        container: containerDetail(container),
        timeout,
        tags: input.tags ?? (input.propagateTags ? definition.tags : undefined),
        propagateTags: input.propagateTags,
        platformCapabilities: definition.platformCapabilities,
        isCancelled: false,
        isTerminated: false,
      };
      const job: Job = {
        detail,
        definition,
        container,
        maxAttempts: Math.min(Math.max(retryStrategy?.attempts ?? 1, 1), 10),
        evaluateOnExit: retryStrategy?.evaluateOnExit ?? [],
        timeoutMs: timeout?.attemptDurationSeconds !== undefined ? timeout.attemptDurationSeconds * 1000 : undefined,
        runnableSince: 0,
        logs: "",
        timers: new Set(),
        history: ["SUBMITTED"],
      };
      jobs.set(jobId, job);
      if (size === undefined) {
        later(job, () => {
          setStatus(job, "PENDING");
          advancePending(job);
        });
        return { jobArn: detail.jobArn, jobName, jobId };
      }
      // An array job: the parent only tracks; each child `<parent>:<index>` is a job of its own
      // (own attempts, retries, timeout), with AWS_BATCH_JOB_ARRAY_INDEX in its environment.
      detail.arrayProperties = { size, statusSummary: {}, statusSummaryLastUpdatedAt: Date.now() };
      job.children = [];
      for (let index = 0; index < size; index++) {
        const childId = `${jobId}:${index}`;
        const child: Job = {
          ...job,
          detail: {
            ...structuredClone(detail),
            jobArn: arn("job", childId),
            jobId: childId,
            arrayProperties: { index },
            attempts: [],
          },
          container: structuredClone(container),
          timers: new Set(),
          history: ["SUBMITTED"],
          children: undefined,
          parent: job,
        };
        child.detail.container = containerDetail(child.container);
        job.children.push(child);
        jobs.set(childId, child);
        detail.arrayProperties.statusSummary!.SUBMITTED = index + 1;
        later(child, () => {
          setStatus(child, "PENDING");
          advancePending(child);
        });
      }
      return { jobArn: detail.jobArn, jobName, jobId };
    },

    describejobs(input) {
      const ids = input.jobs as string[] | undefined;
      if (!Array.isArray(ids)) throw clientError("jobs is required");
      if (ids.length > 100) throw clientError("jobs: at most 100 job IDs per request");
      // Unknown ids are left out, as on AWS.
      return { jobs: ids.flatMap((id) => jobs.get(id)?.detail ?? []) };
    },

    listjobs(input) {
      if (input.multiNodeJobId) return { jobSummaryList: [] };
      let list: JobDetail[];
      if (input.arrayJobId) {
        const parent = jobs.get(input.arrayJobId);
        if (!parent?.children) throw clientError(`Job ${input.arrayJobId} is not an array job`);
        list = parent.children.map((j) => j.detail);
      } else {
        const queue = findQueue(requireString(input, "jobQueue"));
        list = [...jobs.values()].map((j) => j.detail).filter((d) => d.jobQueue === queue.detail.jobQueueArn);
      }
      const filters = (input.filters ?? []) as { name?: string; values?: string[] }[];
      if (filters.length) {
        for (const f of filters) list = list.filter((d) => (f.values ?? []).some((v) => matchesFilter(d, f.name ?? "", v)));
      } else {
        // Without filters AWS lists only RUNNING jobs unless asked for another status.
        list = list.filter((d) => d.status === (input.jobStatus ?? "RUNNING"));
      }
      if (input.arrayJobId) list.sort((a, b) => a.arrayProperties!.index! - b.arrayProperties!.index!);
      else list.sort((a, b) => b.createdAt! - a.createdAt!);
      const page = paginate(list, input);
      const jobSummaryList: JobSummary[] = page.items.map((d) => ({
        jobArn: d.jobArn,
        jobId: d.jobId,
        jobName: d.jobName,
        createdAt: d.createdAt,
        status: d.status,
        statusReason: d.statusReason,
        startedAt: d.startedAt,
        stoppedAt: d.stoppedAt,
        container: d.container && { exitCode: d.container.exitCode, reason: d.container.reason },
        jobDefinition: d.jobDefinition,
        isCancelled: d.isCancelled,
        isTerminated: d.isTerminated,
        arrayProperties: d.arrayProperties && { index: d.arrayProperties.index, size: d.arrayProperties.size },
      }));
      return { jobSummaryList, nextToken: page.nextToken };
    },

    terminatejob(input) {
      const job = mustJob(input);
      const reason = requireString(input, "reason");
      if (TERMINAL.has(job.detail.status!)) return {};
      job.detail.isTerminated = true;
      // Terminating an array's parent terminates every child that is not over.
      if (job.children) {
        for (const child of job.children) if (!TERMINAL.has(child.detail.status!)) ops.terminatejob!({ jobId: child.detail.jobId, reason });
        return {};
      }
      if (job.attempt?.child) kill(job, reason);
      else if (job.attempt) job.attempt.killed = { reason, timeout: false }; // STARTING: fails when it would run
      else setStatus(job, "FAILED", reason);
      return {};
    },

    canceljob(input) {
      const job = mustJob(input);
      const reason = requireString(input, "reason");
      if (job.children) {
        for (const child of job.children) ops.canceljob!({ jobId: child.detail.jobId, reason });
        return {};
      }
      // Jobs already STARTING or RUNNING are not cancelled; the call still succeeds, as on AWS.
      if (["SUBMITTED", "PENDING", "RUNNABLE"].includes(job.detail.status!) && !job.attempt) {
        job.detail.isCancelled = true;
        setStatus(job, "FAILED", reason);
      }
      return {};
    },
  };

  const mustJob = (input: any) => {
    const job = jobs.get(requireString(input, "jobId"));
    if (!job) throw clientError(`Job ${input.jobId} does not exist`);
    return job;
  };

  // ---- HTTP ----

  const app = new Hono<{ Bindings: HttpBindings }>();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  app.get("/_local/jobs/:jobId/logs", (c) => {
    const job = jobs.get(c.req.param("jobId"));
    return job ? c.text(job.logs) : c.text("no such job", 404);
  });

  app.post("/v1/:op", async (c) => {
    const op = c.req.param("op");
    const answer = (status: number, type: string, message: string) => {
      requests.push({ op, status });
      return c.json({ message }, status as 400, { "x-amzn-errortype": type, "x-amzn-requestid": randomUUID() });
    };
    const delay = pending.delay.shift();
    if (delay) await sleep(delay);
    if (pending.reset > 0) {
      pending.reset--;
      requests.push({ op, status: 0 });
      c.env?.incoming?.socket.destroy();
      return new Response(null, { status: 500 });
    }
    if (pending.throttle > 0) {
      pending.throttle--;
      return answer(429, "TooManyRequestsException", "Too Many Requests");
    }
    if (pending.serverError > 0) {
      pending.serverError--;
      return answer(500, "ServerException", "Injected server error");
    }
    const handler = ops[op];
    if (!handler) return answer(404, "UnknownOperationException", `Unknown operation ${op}`);
    let input: any;
    try {
      const text = await c.req.text();
      input = text ? JSON.parse(text) : {};
    } catch {
      return answer(400, "ClientException", "The request body is not valid JSON");
    }
    try {
      const output = handler(input ?? {});
      requests.push({ op, status: 200 });
      // JSON.stringify drops undefined members; the SDK treats missing members as undefined.
      return c.json(output as object, 200, { "x-amzn-requestid": randomUUID() });
    } catch (err) {
      if (err instanceof ApiError) return answer(err.status, err.type, err.message);
      return answer(500, "ServerException", String((err as Error)?.stack ?? err));
    }
  });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: options.port ?? 0 }, () => resolve(s as Server));
    (s as Server).once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;

  const close = async () => {
    if (closing) return;
    closing = true;
    const waits: Promise<unknown>[] = [];
    for (const job of jobs.values()) {
      for (const t of job.timers) clearTimeout(t);
      const child = job.attempt?.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      waits.push(new Promise((r) => child.once("close", r)));
      if (executor === "docker") {
        spawn(dockerBin, ["kill", containerName(job)], { env: dockerEnv, stdio: "ignore" }).on("error", () => {});
        // Without a container yet, the CLI itself must go, or `close` would wait for the run.
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      } else {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
      }
    }
    let cap: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(waits), new Promise((r) => (cap = setTimeout(r, 10_000)))]);
    clearTimeout(cap);
    await new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections?.();
    });
  };

  const faults: BatchFaults = {
    throttleNext: (n = 1) => void (pending.throttle += n),
    serverErrorNext: (n = 1) => void (pending.serverError += n),
    resetNext: (n = 1) => void (pending.reset += n),
    delayNext: (n, ms) => void pending.delay.push(...Array<number>(n).fill(ms)),
    holdRunnable(value) {
      hold = value;
      pump();
    },
    failNextJob({ count = 1, statusReason = "Host EC2 (instance i-0123456789abcdef0) terminated." } = {}) {
      pending.failJobs.push(...Array<string>(count).fill(statusReason));
    },
    reset() {
      Object.assign(pending, { throttle: 0, serverError: 0, reset: 0, delay: [], failJobs: [] });
      faults.holdRunnable(false);
    },
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close,
    faults,
    jobs: {
      // Copies, so a test cannot change the server's state by accident.
      list: () => [...jobs.values()].map((j) => structuredClone(j.detail)),
      get: (id) => {
        const job = jobs.get(id);
        return job && structuredClone(job.detail);
      },
      logs: (id) => jobs.get(id)?.logs ?? "",
      history: (id) => [...(jobs.get(id)?.history ?? [])],
    },
    requests,
    app,
  };
}

function requireString(input: any, member: string): string {
  const value = input?.[member];
  if (typeof value !== "string" || value === "") throw clientError(`${member} is required`);
  return value;
}

function paginate<T>(items: T[], input: { maxResults?: number; nextToken?: string }) {
  const start = input.nextToken ? Number(input.nextToken) : 0;
  const size = input.maxResults && input.maxResults > 0 ? input.maxResults : 100;
  const end = start + size;
  return { items: items.slice(start, end), nextToken: end < items.length ? String(end) : undefined };
}

function resources(c: ContainerProperties) {
  const req = (type: string) => {
    const v = c.resourceRequirements?.find((r) => r.type === type)?.value;
    return v === undefined ? undefined : Number(v);
  };
  return { vcpus: req("VCPU") ?? c.vcpus, memory: req("MEMORY") ?? c.memory, gpus: req("GPU") };
}

function containerDetail(c: ContainerProperties): ContainerDetail {
  return {
    image: c.image,
    vcpus: c.vcpus,
    memory: c.memory,
    command: c.command,
    jobRoleArn: c.jobRoleArn,
    executionRoleArn: c.executionRoleArn,
    volumes: c.volumes,
    environment: c.environment,
    mountPoints: c.mountPoints,
    readonlyRootFilesystem: c.readonlyRootFilesystem,
    ulimits: c.ulimits,
    privileged: c.privileged,
    user: c.user,
    instanceType: c.instanceType,
    resourceRequirements: c.resourceRequirements,
    linuxParameters: c.linuxParameters,
  };
}

function matchesFilter(d: JobDetail, name: string, value: string): boolean {
  const glob = (actual: string, pattern: string, caseless: boolean) => {
    const [a, p] = caseless ? [actual.toLowerCase(), pattern.toLowerCase()] : [actual, pattern];
    return p.endsWith("*") ? a.startsWith(p.slice(0, -1)) : a === p;
  };
  switch (name) {
    case "JOB_NAME":
      return glob(d.jobName ?? "", value, true);
    case "JOB_DEFINITION": {
      if (value.startsWith("arn:")) return d.jobDefinition === value;
      const defName = d.jobDefinition!.slice(d.jobDefinition!.lastIndexOf("/") + 1).split(":")[0]!;
      return glob(defName, value, false);
    }
    case "BEFORE_CREATED_AT":
      return d.createdAt! < Number(value);
    case "AFTER_CREATED_AT":
      return d.createdAt! > Number(value);
    default:
      throw clientError(`filters: unknown filter name ${name}`);
  }
}

// CLI: `node --import tsx test/batch-server/server.ts --port 4566`
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "4566" },
      executor: { type: "string" },
      "docker-host": { type: "string" },
      "max-concurrent": { type: "string" },
      quiet: { type: "boolean", default: false },
    },
  });
  const srv = await startBatchServer({
    port: Number(values.port),
    executor: values.executor as "docker" | "process" | undefined,
    dockerHost: values["docker-host"],
    maxConcurrent: values["max-concurrent"] ? Number(values["max-concurrent"]) : undefined,
    onOutput: values.quiet ? undefined : (id, chunk) => process.stdout.write(`[${id.slice(0, 8)}] ${chunk}`),
  });
  console.log(`AWS Batch API on ${srv.url} (queue "default"); Ctrl-C stops it`);
  const stop = () => void srv.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
