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
 * - Array jobs: attempts of one step that reach the executor together (a foreach's items; the
 *   runtime hands them over at once, see `capacity`) go out as ONE array job of up to 10,000
 *   children, each running `itemsPerJob` consecutive items one after the other (a process start
 *   and the bundle's load are paid once per child, not per item). Their specs are stored in
 *   chunks under the first task's attempt; child `j` reads its slice (runner/task.ts,
 *   AWS_BATCH_JOB_ARRAY_INDEX). Each item is still its own tsflow attempt with its own records
 *   (it commits itself: its done.json on success, see TaskSpec.commit),
 *   logs and end: a `@retry` resubmits only the failed items; an item's output is read
 *   when it ends (not streamed while it runs).
 * - Ends come through the datastore, not Batch: a job, once its tasks' results and logs are
 *   stored, puts a report `<index / 100>/r<first>-<last>` under its submission's `ended/` prefix
 *   (`TaskEnd`s: index, log chunk counts, result; several tasks of a slice to a report). A poll
 *   lists the blocks of 100 that have reports, then those it still waits for, and reads the new
 *   reports: that tells which tasks of an array ended, how, and what to read of their logs, so a
 *   run asks Batch nothing per item, and a listing never grows with the array (a 10,000-item
 *   array is listed ~100 keys at a time). Empty per-task markers of earlier versions
 *   (`<index / 100>/<index>-<stdout chunks>-<stderr chunks>`) are still understood.
 * - Batch itself is asked (one DescribeJobs for up to 100 jobs) only to learn of jobs that end
 *   without a word — crashed, killed, timed out, lost, never placed: each job or array is looked
 *   at `statusCheck.min` after its submission, then whenever its age has doubled (at most
 *   `statusCheck.max` apart). An array's children are listed (ListJobs) only when its parent
 *   counts FAILED children not known yet, or ended with children that left no report. The Batch
 *   calls of a run therefore do not grow with its number of items; they grow with the log of its
 *   duration (then linearly past `statusCheck.max`). Throttling (HTTP 429) and 5xx are retried
 *   by the SDK and then by the poller.
 * - A job RUNNABLE for longer than `runnableTimeoutSeconds` (no capacity can place it) is
 *   terminated and fails its task with a message saying why (seen at a status check, so up to
 *   one check late). Aborting a run terminates its jobs (an array with one call).
 * - Jobs run `node <tsflow>/dist/job.mjs` (cli/job.ts): a bundle that starts a task with the
 *   least work, since an array pays its start once per item.
 *
 * The endpoint comes from `TSFLOW_BATCH_ENDPOINT` (tests, a local stand-in), the region and
 * credentials from the standard AWS chain. `@aws-sdk/client-batch` loads only when used.
 */
import { createHash } from "node:crypto";
import type { BatchClient, JobDetail } from "@aws-sdk/client-batch";
import { mapLimit } from "../../core/_datastore.ts";
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
  /** Command that starts tsflow in the job. Default `$TSFLOW_BATCH_COMMAND` (split on spaces), else `node <this tsflow's dist/job.mjs>`. */
  command?: string[];
  /** Fail a task whose job stays RUNNABLE (nothing can place it) longer than this. Default 1800. */
  runnableTimeoutSeconds?: number;
  /** Batch-level attempts for lost hosts (spot reclaim). Default 3. */
  hostAttempts?: number;
  /** Bounds (ms) of the datastore poll for ended tasks: starts at `min`, backs off ×1.5 up to `max` while nothing ends. */
  poll?: { min?: number; max?: number };
  /**
   * When Batch is asked about a job (ms): `min` after its submission, then each time its age has
   * doubled, at most `max` apart. These checks only find jobs that failed without ending their
   * task (crash, kill, timeout, lost host, no capacity); tasks that end report it through the
   * datastore. Default 1,000 / 30,000 with a local endpoint, 5,000 / 120,000 on AWS.
   */
  statusCheck?: { min?: number; max?: number };
  /**
   * Mount this tsflow's bundle into job containers from the host (same paths), as the docker
   * executor does. Only for a Batch stand-in running on this machine; on AWS, put tsflow in the image.
   */
  mountRuntime?: boolean;
  /** Also pass this process's AWS credentials into jobs (local stand-ins only; real jobs use `jobRoleArn`). */
  passCredentials?: boolean;
  /** Attempts in flight at once (the queue decides what runs). Default 10,000. */
  capacity?: number;
  /** Submit attempts of one step arriving within this quiet period as one array job (ms). Default 100; 0 submits each attempt alone. */
  arrayWindowMs?: number;
  /**
   * Items of an array job each child runs, one after the other: fewer, longer children pay a
   * container's and Node's start once per slice. `@batch({ itemsPerJob })` sets it per step;
   * default `$TSFLOW_BATCH_ITEMS_PER_JOB`, else automatic: one item per child up to 99 items,
   * then as many as keep about 50 children (at most 50 per child). Steps with `@timeout` run one
   * item per child (Batch times out a whole child).
   */
  itemsPerJob?: number;
  /** Endpoint of the Batch API. Default `$TSFLOW_BATCH_ENDPOINT`, else AWS. */
  endpoint?: string;
  region?: string;
}

interface Pending {
  spec: TaskSpec;
  ctx: ExecutionContext;
  /** Its Batch job: `<parent>:<child>` for an array's item (several items may share a child). */
  jobId: string;
  /** Its own key among the pending tasks: `<submission>/<index>`. */
  key: string;
  /** The submission it went out in, and its index there (0 for a job alone). */
  group: Group;
  index: number;
  aborting?: boolean;
  jobName: string;
  queue: string;
  /** Reads the job's log chunks as they appear (the job is their only writer). */
  follower: LogFollower;
  /** The end of the task's stderr, quoted when its job fails. */
  tail: string;
  resolve: (exit: TaskExit) => void;
}

/** How one task of a job ended, as the job reports it (runner/task.ts writes these). */
export interface TaskEnd {
  /** The task's index in its submission (its array; 0 for a job alone). */
  index: number;
  /** Log chunks the task wrote to each stream (a reader need not list them). */
  stdout: number;
  stderr: number;
  /** It could not run (no result stored). */
  failed?: boolean;
  /** Its result (also in its result.json): the executor need not read it. */
  result?: TaskResult;
}

const SPEC_ENV_LIMIT = 6000;
/** Specs per stored chunk of an array job of one item per child: what each child downloads. */
export const ARRAY_CHUNK = 16;
const ARRAY_MAX = 10_000;
/**
 * The automatic slicing keeps about this many children, with up to `SLICE_MAX` items each. A
 * child's start (a container, Node, tsflow and the S3 client: ~0.25 s of CPU here, seconds of a
 * container's start on AWS) is paid per child: at 1,000 tiny items, 50 children of 20 cost about
 * two thirds of the CPU of 100 of 10 (docs/performance.md), and an environment with fewer than
 * 100 free vCPUs runs them no slower. Long items on a big compute environment want a smaller
 * `itemsPerJob` (docs/executors.md).
 */
const SLICE_CHILDREN = 50;
const SLICE_MAX = 50;

/** One attempt waiting to be submitted, alone or in an array job. */
interface Submission {
  spec: TaskSpec;
  ctx: ExecutionContext;
  /** The spec as the job reads it (no environment values). */
  json: string;
  queue: string;
  definition: string;
  environment: { name: string; value: string }[];
  resolve: (exit: TaskExit) => void;
}

/** One SubmitJob: an array job (its children are `entries`) or a job alone (one entry). */
interface Group {
  id: string;
  name: string;
  queue: string;
  array: boolean;
  /** Items per child of an array (`itemsPerJob`): entry `i` runs in child `i / per`. */
  per: number;
  entries: Pending[];
  /** Where its jobs put their end reports (runner/task.ts). */
  endedPrefix: string;
  submittedAt: number;
  /** When Batch is asked about it next (ms since the epoch). */
  nextCheck: number;
  /** FAILED children of the array already listed. */
  failedSeen: number;
  /** End reports already read (runner/task.ts). */
  reports: Set<string>;
  /** Entries not settled yet, in all and per block of 100 (the markers' sub-prefixes). */
  open: number;
  openInBlock: number[];
  /** When a status check first saw the job (or all of the array's children) still RUNNABLE. */
  runnableSince?: number;
  terminating?: boolean;
}
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
  const checkMin = options.statusCheck?.min ?? (endpoint ? 1000 : 5000);
  const checkMax = options.statusCheck?.max ?? (endpoint ? 30_000 : 120_000);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let interval = minPoll;
  let apiFailures = 0;
  const arrayWindow = options.arrayWindowMs ?? 100;

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
    const command = options.command ?? env.TSFLOW_BATCH_COMMAND?.split(" ") ?? ["node", runtimeFiles().job];
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

  const output = (task: Pending, stream: "stdout" | "stderr", chunks: Bytes[]) => {
    for (const bytes of chunks) {
      task.ctx.output(stream, bytes);
      if (stream === "stderr") task.tail = `${task.tail}\n${new TextDecoder().decode(bytes.subarray(-400))}`.trim().split("\n").slice(-3).join("\n");
    }
  };
  const readNew = async (task: Pending) => {
    if (!run) return;
    for (const stream of ["stdout", "stderr"] as const) output(task, stream, await task.follower.poll(stream).catch(() => []));
  };

  const terminate = async (jobId: string, reason: string) => {
    const { sdk, client: c } = await api();
    await c.send(new sdk.TerminateJobCommand({ jobId, reason })).catch((e) => run?.logger.warn(`[batch] cannot terminate job ${jobId}: ${(e as Error).message}`));
  };

  /** Takes a task out of the pending ones; false when something settled it already. */
  const claim = (task: Pending): boolean => {
    if (!pending.delete(task.key)) return false;
    task.group.openInBlock[Math.floor(task.index / 100)]!--;
    if (--task.group.open === 0) groups.delete(task.group.id);
    return true;
  };

  const readResult = async (task: Pending): Promise<TaskExit> => {
    const bytes = await run!.datastore.get(attemptKey(task.spec.flowName, task.spec.runId, task.spec.step, task.spec.taskId, task.spec.attempt, "result.json"));
    const result = bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as TaskResult) : undefined;
    return result ? { completed: true, result } : { completed: false, error: { type: "Executor", message: `[batch] job ${task.jobName} (${task.jobId}) succeeded without writing its result` } };
  };

  /** For an item of a child that runs several: which, since the child may have died running another. */
  const slice = (task: Pending) => {
    const { per, entries } = task.group;
    if (per === 1) return "";
    const from = Math.floor(task.index / per) * per;
    return ` before task ${task.spec.taskId} ended (the child runs items ${from}-${Math.min(entries.length, from + per) - 1} of the array, this one is item ${task.index})`;
  };

  /** Settles a task from what Batch says of its job (it ended without a marker, or was stopped). */
  const settle = async (task: Pending, job: JobDetail | undefined, exit?: TaskExit) => {
    if (!claim(task)) return;
    await readNew(task);
    if (exit) return task.resolve(exit);
    if (job?.status === "SUCCEEDED") return task.resolve(await readResult(task));
    // A job that died after this task stored its result, before the report of its end went out
    // (a child running several tasks reports them together): the task itself is over.
    const stored = await readResult(task).catch((): TaskExit => ({ completed: false, error: { type: "Executor", message: "" } }));
    if (stored.completed) return task.resolve(stored);
    const reason = job?.statusReason ?? "unknown reason";
    const exitCode = job?.container?.exitCode ?? job?.attempts?.at(-1)?.container?.exitCode;
    const timedOut = /timeout|timed out/i.test(reason);
    task.resolve({
      completed: false,
      error: {
        type: timedOut ? "Timeout" : "WorkerCrashed",
        message: timedOut
          ? `step '${task.spec.step}' timed out after ${task.spec.timeoutSeconds} s (@timeout): Batch job ${task.jobName} (${task.jobId}) was stopped`
          : `Batch job ${task.jobName} (${task.jobId}) failed${slice(task)}: ${reason}${exitCode !== undefined ? ` (exit code ${exitCode})` : ""}${task.tail ? `; last output: ${task.tail.split("\n").join(" | ")}` : ""}`,
      },
    });
  };

  /** Settles a (claimed) task from its reported end: its log chunks read without listing, its result as reported. */
  const settleEnded = async ([task, { stdout, stderr, failed, result }]: [Pending, Omit<TaskEnd, "index">]) => {
    for (const [stream, last] of [["stdout", stdout], ["stderr", stderr]] as const) output(task, stream, await task.follower.readUpTo(stream, last).catch(() => []));
    if (result) return task.resolve({ completed: true, result });
    if (!failed) return task.resolve(await readResult(task));
    task.resolve({
      completed: false,
      error: { type: "WorkerCrashed", message: `Batch job ${task.jobName} (${task.jobId}) could not run its task${task.tail ? `: ${task.tail.split("\n").join(" | ")}` : ""}` },
    });
  };

  const runnableTimeoutExit = (name: string, id: string, queue: string): TaskExit => ({
    completed: false,
    error: {
      type: "Timeout",
      message: `Batch job ${name} (${id}) stayed RUNNABLE for more than ${runnableTimeout} s on queue '${queue}': no compute environment could place it (check the queue's compute environments, their max vCPUs and instance types against the step's cpu/memory/gpu)`,
    },
  });

  /** An end report of the job's tasks (runner/task.ts), and the empty per-task marker of earlier versions. */
  const REPORT = /^r\d+-\d+$/;
  const MARKER = /^(\d+)-(\d+)-(\d+)(-failed)?$/;
  /** Settles the tasks of `group` whose ends were reported: a listing of each block it waits for, then a read of each new report. Returns how many. */
  const collectEnded = async (group: Group): Promise<number> => {
    const store = run!.datastore;
    // An array of more than 100 lists its blocks first (one key per 100 children), then only the
    // blocks that have markers and unsettled children: a poll never lists a finished block again.
    const blocks = group.openInBlock.length > 1 ? (await store.list(group.endedPrefix)).filter((b) => b.endsWith("/")) : ["0/"];
    const waiting = blocks.filter((b) => (group.openInBlock[Number.parseInt(b, 10)] ?? 0) > 0);
    const lists = await mapLimit(waiting, 8, (b) => store.list(`${group.endedPrefix}${b}`));
    const ends: TaskEnd[] = [];
    const reports: string[] = [];
    for (const [i, names] of lists.entries()) {
      for (const name of names) {
        const m = MARKER.exec(name);
        if (m) ends.push({ index: Number(m[1]), stdout: Number(m[2]), stderr: Number(m[3]), failed: m[4] !== undefined });
        // A report is read once (its names are unique: the indices of its first and last task).
        else if (REPORT.test(name) && !group.reports.has(name)) reports.push(`${group.endedPrefix}${waiting[i]}${name}`);
      }
    }
    await mapLimit(reports, 8, async (key) => {
      const bytes = await store.get(key);
      if (!bytes) return;
      ends.push(...(JSON.parse(new TextDecoder().decode(bytes)) as TaskEnd[]));
      group.reports.add(key.slice(key.lastIndexOf("/") + 1));
    });
    const ended: [Pending, Omit<TaskEnd, "index">][] = [];
    for (const end of ends) {
      const entry = group.entries[end.index];
      // Claimed before any read, so an overlapping look (or an abort) does not settle it twice.
      if (entry && !entry.aborting && claim(entry)) ended.push([entry, end]);
    }
    await mapLimit(ended, 16, settleEnded);
    return ended.length;
  };

  /** A status check of an array parent found children that ended in Batch without a marker: list and settle them. */
  const settleListed = async (group: Group, status: "SUCCEEDED" | "FAILED") => {
    const { sdk, client: c } = await api();
    let nextToken: string | undefined;
    const ended: [Pending, JobDetail][] = [];
    do {
      const out = await c.send(new sdk.ListJobsCommand({ arrayJobId: group.id, jobStatus: status, maxResults: 1000, nextToken }));
      nextToken = out.nextToken;
      for (const summary of out.jobSummaryList ?? []) {
        // A child's every item still open ended with it (those that never ran too).
        const child = summary.arrayProperties?.index ?? -1;
        for (const entry of group.entries.slice(child * group.per, (child + 1) * group.per)) {
          if (child >= 0 && pending.has(entry.key)) ended.push([entry, summary as JobDetail]);
        }
      }
    } while (nextToken);
    await mapLimit(ended, 16, ([entry, job]) => settle(entry, job));
  };

  /** What a status check learns of one group from its job's detail. */
  const checked = async (group: Group, job: JobDetail) => {
    const now = Date.now();
    if (!group.array) {
      const task = group.entries[0]!;
      if (job.status === "SUCCEEDED" || job.status === "FAILED") {
        // Its marker may have landed since the last look: prefer it (no listing of logs).
        if (!(await collectEnded(group)) && pending.has(task.key)) await settle(task, job);
      } else if (job.status === "RUNNABLE") {
        group.runnableSince ??= now;
        if (now - group.runnableSince > runnableTimeout * 1000) {
          await terminate(task.jobId, `tsflow: RUNNABLE for more than ${runnableTimeout} s`);
          await settle(task, job, runnableTimeoutExit(task.jobName, task.jobId, task.queue));
        }
      } else group.runnableSince = undefined;
      return;
    }
    const summary = job.arrayProperties?.statusSummary ?? {};
    const terminal = job.status === "SUCCEEDED" || job.status === "FAILED";
    const failed = summary.FAILED ?? 0;
    if (failed > group.failedSeen || terminal) {
      await collectEnded(group);
      if (failed > group.failedSeen) await settleListed(group, "FAILED");
      group.failedSeen = failed;
      // Children that succeeded in Batch without a marker (a job image whose tsflow does not write them).
      if (terminal && group.entries.some((e) => pending.has(e.key))) await settleListed(group, "SUCCEEDED");
    }
    const started = (summary.SUCCEEDED ?? 0) + failed + (summary.STARTING ?? 0) + (summary.RUNNING ?? 0);
    if (!started && (summary.RUNNABLE ?? 0) > 0) {
      group.runnableSince ??= now;
      if (now - group.runnableSince > runnableTimeout * 1000) {
        await terminate(group.id, `tsflow: RUNNABLE for more than ${runnableTimeout} s`);
        for (const entry of group.entries) if (pending.has(entry.key)) await settle(entry, undefined, runnableTimeoutExit(entry.jobName, entry.jobId, group.queue));
      }
    } else group.runnableSince = undefined;
  };

  /** Asks Batch about the groups whose check is due: one DescribeJobs per 100 of them. */
  const statusChecks = async () => {
    const now = Date.now();
    const due = [...groups.values()].filter((g) => g.nextCheck <= now);
    if (!due.length) return;
    const { sdk, client: c } = await api();
    for (let i = 0; i < due.length; i += 100) {
      const part = due.slice(i, i + 100);
      const out = await c.send(new sdk.DescribeJobsCommand({ jobs: part.map((g) => g.id) }));
      apiFailures = 0;
      const byId = new Map((out.jobs ?? []).map((j) => [j.jobId, j]));
      for (const group of part) {
        // Next look once its age has doubled: the checks of a job grow with the log of its duration.
        group.nextCheck = Date.now() + Math.min(checkMax, Math.max(checkMin, Date.now() - group.submittedAt));
        const job = byId.get(group.id);
        if (job && groups.has(group.id)) await checked(group, job);
      }
    }
  };

  let polling = false;
  const poll = async () => {
    timer = undefined;
    if (!groups.size || polling) return;
    polling = true;
    let ended = 0;
    try {
      // Ends, through the datastore: one listing per submission (an array of 1,000 children too).
      const counts = await mapLimit([...groups.values()], 8, async (group) => {
        const n = await collectEnded(group).catch((e) => {
          run?.logger.warn(`[batch] cannot list ${group.endedPrefix} (${(e as Error).message}); retrying`);
          return 0;
        });
        // A job alone streams its output while it runs; an array's children are read when they end.
        if (!group.array && groups.has(group.id)) await readNew(group.entries[0]!);
        return n;
      });
      ended = counts.reduce((a, n) => a + n, 0);
      await statusChecks();
    } catch (e) {
      // The SDK has already retried throttling and 5xx; keep checking, but not forever.
      if (++apiFailures >= 20) {
        for (const task of [...pending.values()]) await settle(task, undefined, { completed: false, error: { type: "Executor", message: `[batch] cannot describe job ${task.jobId}: ${(e as Error).message}` } });
        groups.clear();
        return;
      }
      run?.logger.warn(`[batch] DescribeJobs failed (${(e as Error).message}); retrying`);
    } finally {
      polling = false;
    }
    // While an array runs, ends come often: looking more often than 1/30 of its age would only
    // list the datastore more (an end is seen at most ~3% of the array's age late, or `poll.max`).
    const oldest = Math.min(...[...groups.values()].filter((g) => g.array).map((g) => g.submittedAt));
    const floor = Number.isFinite(oldest) ? Math.min(maxPoll, (Date.now() - oldest) / 30) : 0;
    interval = Math.max(floor, ended ? minPoll : Math.min(maxPoll, interval * 1.5));
    schedulePoll();
  };
  const schedulePoll = () => {
    if (timer || !groups.size) return;
    const nextCheck = Math.min(...[...groups.values()].map((g) => g.nextCheck));
    timer = setTimeout(() => void poll(), Math.max(0, Math.min(interval, nextCheck - Date.now())));
  };

  const gathering = new Map<string, { items: Submission[]; firstAt: number; timer?: ReturnType<typeof setTimeout> }>();
  const groups = new Map<string, Group>();

  // Aborts gather for a microtask: when a run stops, all of an array's children go with one
  // TerminateJob of its parent instead of one call per child.
  let aborts: Pending[] = [];
  const abortLater = (entry: Pending) => {
    if (!aborts.length) queueMicrotask(() => void flushAborts());
    aborts.push(entry);
  };
  const flushAborts = async () => {
    const batch = aborts;
    aborts = [];
    const whole = new Set<string>();
    for (const group of new Set(batch.map((e) => e.group))) {
      if (group.array && !group.terminating && groups.has(group.id) && group.entries.every((e) => e.aborting || !pending.has(e.key))) {
        group.terminating = true;
        whole.add(group.id);
      }
    }
    const calls = [...whole].map((id) => terminate(id, "tsflow: the run was stopped"));
    const stopped = new Set<string>();
    for (const entry of batch) {
      if (!pending.has(entry.key)) continue;
      // A child running a slice stops only when every item of its slice is stopped.
      const { group, index } = entry;
      const slice = group.entries.slice(Math.floor(index / group.per) * group.per, (Math.floor(index / group.per) + 1) * group.per);
      if (!whole.has(group.id) && !stopped.has(entry.jobId) && slice.every((e) => e.aborting || !pending.has(e.key))) {
        stopped.add(entry.jobId);
        calls.push(terminate(entry.jobId, "tsflow: the run was stopped"));
      }
      const { runId, step, taskId } = entry.spec;
      calls.push(settle(entry, undefined, { completed: false, error: { type: "Cancelled", message: `task ${runId}/${step}/${taskId} was stopped: Batch job ${entry.jobName} terminated` } }));
    }
    await Promise.all(calls);
  };

  /** Starts following a submitted job (or array child) until it settles. */
  // One abort listener per signal (the run's), not one per task: a foreach of 10,000 items
  // would otherwise hang 10,000 listeners on it (and Node warns past 10).
  const watched = new Map<AbortSignal, Set<Pending>>();
  const watch = (entry: Pending) => {
    const signal = entry.ctx.signal;
    let set = watched.get(signal);
    if (!set) {
      const entries = new Set<Pending>();
      watched.set(signal, (set = entries));
      signal.addEventListener(
        "abort",
        () => {
          watched.delete(signal);
          for (const e of entries) {
            e.aborting = true;
            abortLater(e);
          }
        },
        { once: true },
      );
    }
    set.add(entry);
  };
  const unwatch = (entry: Pending) => {
    const set = watched.get(entry.ctx.signal);
    set?.delete(entry);
    // The listener itself stays until the signal is gone: cheap, and one per run.
  };

  const track = (item: Submission, group: Group, index: number, jobId: string, name: string): Pending => {
    const { spec, ctx } = item;
    const entry: Pending = {
      spec,
      ctx,
      jobId,
      key: `${group.id}/${index}`,
      group,
      index,
      jobName: name,
      queue: item.queue,
      follower: new LogFollower(run!.datastore, { flow: spec.flowName, run: spec.runId, step: spec.step, task: spec.taskId, attempt: spec.attempt }),
      tail: "",
      resolve: (exit) => {
        unwatch(entry);
        item.resolve(exit);
      },
    };
    pending.set(entry.key, entry);
    watch(entry);
    return entry;
  };

  const newGroup = (id: string, name: string, queue: string, array: boolean, endedPrefix: string): Group => {
    const now = Date.now();
    const group: Group = { id, name, queue, array, per: 1, entries: [], endedPrefix, submittedAt: now, nextCheck: now + checkMin, failedSeen: 0, reports: new Set(), open: 0, openInBlock: [] };
    groups.set(id, group);
    return group;
  };

  const submitArgs = (item: Submission) => ({
    jobQueue: item.queue,
    jobDefinition: item.definition,
    retryStrategy: {
      attempts: options.hostAttempts ?? 3,
      evaluateOnExit: [
        { onStatusReason: "Host EC2*", action: "RETRY" as const },
        { onReason: "*", action: "EXIT" as const },
        { onExitCode: "*", action: "EXIT" as const },
      ],
    },
    ...(item.spec.timeoutSeconds ? { timeout: { attemptDurationSeconds: endpoint ? item.spec.timeoutSeconds : Math.max(60, Math.ceil(item.spec.timeoutSeconds)) } } : {}),
  });

  const submitOne = async (item: Submission) => {
    const { spec } = item;
    const attemptDir = `${taskPrefix(spec.flowName, spec.runId, spec.step, spec.taskId)}${spec.attempt}/`;
    const ended = `${attemptDir}batch/ended/`;
    const environment = [...item.environment, { name: "TSFLOW_TASK_ENDED_PREFIX", value: ended }];
    if (item.json.length < SPEC_ENV_LIMIT) environment.push({ name: "TSFLOW_TASK_SPEC", value: item.json });
    else {
      // A join of many foreach tasks outgrows the job's environment: the spec goes through S3.
      const key = `${attemptDir}spec.json`;
      await run!.datastore.put(key, new TextEncoder().encode(item.json));
      environment.push({ name: "TSFLOW_TASK_SPEC_KEY", value: key }, { name: "TSFLOW_TASK_DATASTORE", value: spec.datastore });
    }
    const { sdk, client: c } = await api();
    const name = jobName(spec);
    const submitted = await c.send(new sdk.SubmitJobCommand({ jobName: name, ...submitArgs(item), containerOverrides: { environment } }));
    const group = newGroup(submitted.jobId!, name, item.queue, false, ended);
    group.entries = [track(item, group, 0, submitted.jobId!, name)];
    group.open = 1;
    group.openInBlock = [1];
  };

  /** Items per child for an array of `items`: see `itemsPerJob`. */
  const sliceOf = (items: Submission[]): number => {
    // Batch's timeout applies to a whole child: a step's @timeout needs a child per item.
    if (items.some((it) => it.spec.timeoutSeconds)) return 1;
    const given = Number((items[0]!.spec.decorators.batch as { itemsPerJob?: number } | undefined)?.itemsPerJob || options.itemsPerJob || env.TSFLOW_BATCH_ITEMS_PER_JOB || 0);
    if (!Number.isInteger(given) || given < 0) throw new TsflowError("BadOption", `[batch] itemsPerJob must be a whole number of at least 1, got '${given}'`);
    const per = given || Math.min(SLICE_MAX, Math.max(1, Math.floor(items.length / SLICE_CHILDREN)));
    // An array has at least 2 children.
    return Math.min(per, Math.ceil(items.length / 2));
  };

  const submitArray = async (items: Submission[]) => {
    const first = items[0]!.spec;
    const per = sliceOf(items);
    const prefix = `${taskPrefix(first.flowName, first.runId, first.step, first.taskId)}${first.attempt}/array/`;
    // A child reads one chunk: its own slice, or (one item per child) a chunk of 16 shared by 16 children.
    const size = per > 1 ? per : ARRAY_CHUNK;
    const chunks: string[] = [];
    for (let i = 0; i < items.length; i += size) chunks.push(`[${items.slice(i, i + size).map((it) => it.json).join(",")}]`);
    await mapLimit(chunks, 32, (text, i) => run!.datastore.put(`${prefix}${i}.json`, new TextEncoder().encode(text)));
    const children = Math.ceil(items.length / per);
    const environment = [
      ...items[0]!.environment,
      { name: "TSFLOW_TASK_ARRAY_PREFIX", value: prefix },
      { name: "TSFLOW_TASK_ARRAY_CHUNK", value: String(size) },
      { name: "TSFLOW_TASK_ARRAY_ITEMS", value: String(per) },
      { name: "TSFLOW_TASK_DATASTORE", value: first.datastore },
      { name: "TSFLOW_TASK_ENDED_PREFIX", value: `${prefix}ended/` },
    ];
    const { sdk, client: c } = await api();
    const name = jobName({ ...first, taskId: `array${first.taskId}x${items.length}` });
    const submitted = await c.send(new sdk.SubmitJobCommand({ jobName: name, ...submitArgs(items[0]!), arrayProperties: { size: children }, containerOverrides: { environment } }));
    const id = submitted.jobId!;
    const group = newGroup(id, name, items[0]!.queue, true, `${prefix}ended/`);
    group.per = per;
    group.entries = items.map((item, i) => track(item, group, i, `${id}:${Math.floor(i / per)}`, `${name}:${Math.floor(i / per)}`));
    group.open = items.length;
    group.openInBlock = Array.from({ length: Math.ceil(items.length / 100) }, (_, b) => Math.min(100, items.length - b * 100));
    // An abort during the submission fired before the children were listening.
    for (const entry of group.entries) {
      if (entry.ctx.signal.aborted && !entry.aborting) {
        entry.aborting = true;
        abortLater(entry);
      }
    }
  };

  const flush = async (all: Submission[]) => {
    const items = all.filter((it) => {
      if (!it.ctx.signal.aborted) return true;
      it.resolve({ completed: false, error: { type: "Cancelled", message: "the run was stopped before the task started" } });
      return false;
    });
    // In the foreach's order (the runtime hands its items over in any order): a child's slice is
    // then a run of consecutive items.
    items.sort((a, b) => (a.spec.foreach.at(-1)?.index ?? 0) - (b.spec.foreach.at(-1)?.index ?? 0));
    const parts: Submission[][] = [];
    for (let i = 0; i < items.length; i += ARRAY_MAX) parts.push(items.slice(i, i + ARRAY_MAX));
    await Promise.all(
      parts.map(async (part) => {
        try {
          if (part.length === 1) await submitOne(part[0]!);
          else await submitArray(part);
        } catch (e) {
          for (const it of part) it.resolve({ completed: false, error: { type: "Executor", message: `[batch] cannot submit step '${it.spec.step}': ${(e as Error).message}` } });
          return;
        }
        interval = minPoll;
        schedulePoll();
      }),
    );
  };

  return {
    name: NAME,
    storesOwnLogs: true,
    remote: true,
    // A job's task writes its own done.json (S3 keeps it durable) and its end report hands the
    // result back: the orchestrator writes no record for a task that succeeds on its first try.
    commitsTasks: true,
    capacity: options.capacity ?? 10_000,

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
      return new Promise<TaskExit>((resolve) => {
        const item: Submission = { spec, ctx, json, queue, definition, environment, resolve };
        // Attempts of one step with the same job shape gather for a moment: a foreach's items
        // arrive together and go out as one array job.
        // The first attempts of one foreach split are awaited until all `count` have come (the
        // runtime hands them over together), so a loaded machine does not cut an array in two;
        // anything else goes out after a quiet period.
        const frame = spec.foreach.at(-1);
        const expected = frame && spec.attempt === 0 ? frame.count : 0;
        const key = JSON.stringify([spec.runId, spec.step, spec.attempt, frame ? [frame.step, frame.task] : null, queue, definition, environment, spec.timeoutSeconds ?? 0]);
        let group = gathering.get(key);
        if (!group) gathering.set(key, (group = { items: [], firstAt: Date.now() }));
        group.items.push(item);
        clearTimeout(group.timer);
        const g = group;
        const go = () => {
          gathering.delete(key);
          void flush(g.items);
        };
        if (expected && g.items.length >= expected) return go();
        const quiet = expected ? arrayWindow * 10 : arrayWindow;
        g.timer = setTimeout(go, Math.max(0, Math.min(quiet, g.firstAt + quiet * 20 - Date.now())));
      });
    },

    async close() {
      if (timer) clearTimeout(timer);
      const ids = new Set([...pending.values()].map((t) => t.group.id));
      await Promise.all([...ids].map((id) => terminate(id, "tsflow: executor closed")));
      pending.clear();
      groups.clear();
      if (client) (await client).client.destroy();
    },
  };
};

export default batchExecutor;
