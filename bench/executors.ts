/**
 * Per-task overhead of each executor: examples/foreach.ts with 100 items (103 tasks) run through
 * process workers, warm docker containers, fresh docker containers and AWS Batch on the local
 * Batch server (jobs as processes, s3rver as S3). The steps do almost nothing, so wall time
 * divided by the task count is what the executor costs per task. What cannot run here (no
 * docker daemon) is skipped. `TSFLOW_BENCH_BATCH_N` sets the batch foreach (default 1,000, the
 * target's N), `TSFLOW_BENCH_SFN_N` the Step Functions one (default 100).
 * `TSFLOW_BENCH_EXECUTORS` runs only some of them (comma-separated: process, docker, batch, sfn),
 * e.g. `TSFLOW_BENCH_EXECUTORS=batch npm run bench -- executors`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Datastore, Executor } from "../core/types.ts";
import ForeachFlow from "../examples/foreach.ts";
import { runFlow } from "../mod.ts";
import fsDatastore from "../plugins/datastores/fs.ts";
import s3Datastore from "../plugins/datastores/s3.ts";
import batchExecutor from "../plugins/executors/batch.ts";
import dockerExecutor from "../plugins/executors/docker.ts";
import processExecutor from "../plugins/executors/process.ts";
import type { BatchServer } from "../test/batch-server/server.ts";
import type { Row } from "./_measure.ts";


const FILE = new URL("../examples/foreach.ts", import.meta.url).pathname;
const IMAGE = process.env.TSFLOW_NODE_IMAGE ?? "tsflow-node:20";

async function perTask(executor: Executor, datastore: Datastore, n: number, maxWorkers: number): Promise<number> {
  const t0 = performance.now();
  const run = await runFlow(ForeachFlow, { file: FILE, executor, datastore, params: { n }, maxWorkers });
  const ms = performance.now() - t0;
  if (!run.successful) throw new Error(`foreach${n} failed on ${executor.name}: ${run.error?.message}`);
  return ms / run.tasks;
}

function dockerAnswers(): boolean {
  try {
    execFileSync("docker", ["image", "inspect", IMAGE], { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

export async function benchExecutors(): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), "tsflow-bench-executors-"));
  const local = fsDatastore({ root: dir });
  const workers = 4;
  const only = process.env.TSFLOW_BENCH_EXECUTORS?.split(",").map((s) => s.trim());
  const wanted = (name: string) => !only || only.includes(name);
  const measure = async (name: string, make: () => Executor, n: number, store: Datastore, target?: string) => {
    const executor = make();
    try {
      await perTask(executor, store, 2, workers); // warm-up: workers or containers started, package stored
      rows.push({ name, value: Math.round((await perTask(executor, store, n, workers)) * 10) / 10, unit: "ms/task", target });
    } finally {
      await executor.close?.();
    }
  };
  try {
    if (wanted("process")) await measure("executor process: foreach100 per-task overhead", () => processExecutor(), 100, local, "< 20 ms");
    if (wanted("docker") && dockerAnswers()) {
      await measure("executor docker (warm containers): foreach100 per-task overhead", () => dockerExecutor({ image: IMAGE }), 100, local, "< 50 ms");
      await measure("executor docker (fresh containers): foreach100 per-task overhead", () => dockerExecutor({ image: IMAGE, fresh: true }), 100, local);
    } else if (wanted("docker")) {
      process.stderr.write(`[bench] executors: docker skipped (no daemon or no image ${IMAGE}; run .ci/docker.sh all)\n`);
    }
    if (!wanted("batch") && !wanted("sfn")) return rows;
    const { startS3rver, S3RVER_CREDENTIALS } = await import("../test/_s3rver.ts");
    const { startBatchServer } = await import("../test/batch-server/server.ts");
    const [s3, server] = await Promise.all([startS3rver({ buckets: ["tsflow"] }), startBatchServer({ executor: "process", maxConcurrent: workers, transitionMs: 20 })]);
    const saved = { ...process.env };
    Object.assign(process.env, {
      TSFLOW_S3_ENDPOINT: s3.endpoint,
      TSFLOW_BATCH_ENDPOINT: server.url,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_REGION: "us-east-1",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    });
    try {
      const s3store = s3Datastore({ url: "s3://tsflow/bench", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
      if (wanted("batch")) rows.push(...(await batchRows(server, s3store, workers, s3)));
      // Step Functions runs a job per item (no slices): 100 of them.
      if (wanted("sfn")) rows.push(await stepFunctionsPerTask(server.url, s3.endpoint, S3RVER_CREDENTIALS, s3store, Number(process.env.TSFLOW_BENCH_SFN_N ?? 100), workers));
      await s3store.close?.();
    } finally {
      process.env = saved;
      await Promise.all([server.close(), s3.close()]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/** CPU time (ms) of this process's children that have ended: the Batch jobs the local server ran as processes. */
function childCpuMs(): number {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
  // cutime and cstime, fields 16 and 17 of stat(5), counted from the state (field 3).
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

/** CPU time (ms) a running process has used (utime + stime): s3rver's. */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/**
 * A foreach on the local Batch server (one array job; jobs run as processes, 4 at a time, on
 * this 2-core machine), N = 1,000 by default (`TSFLOW_BENCH_BATCH_N`): wall time per task, where
 * the CPU goes per task (the jobs, the orchestrator with the in-process Batch server, s3rver)
 * and S3 requests per task, at the default `itemsPerJob` (100 children of 10 items at N = 1,000)
 * and at 50 items per child; the floor of the same number of children that only start Node
 * (`node -e 0`); then the Batch API calls of a foreach at three sizes, by kind.
 */
export async function batchRows(server: BatchServer, store: Datastore, workers: number, s3: { pid: number; requests: string[] }): Promise<Row[]> {
  const rows: Row[] = [];
  const n = Number(process.env.TSFLOW_BENCH_BATCH_N ?? 1000);
  const make = (itemsPerJob?: number) => batchExecutor({ queue: "default", image: IMAGE, poll: { min: 50, max: 500 }, itemsPerJob });
  // One measured foreach of n: per-task wall and CPU, and the Batch API calls it made.
  const foreach = async (itemsPerJob?: number) => {
    const executor = make(itemsPerJob);
    try {
      await perTask(executor, store, 2, workers); // warm-up: code package stored and cached, job definition registered
      const [cpu0, own0, s30, req0, api0, jobs0] = [childCpuMs(), process.cpuUsage(), processCpuMs(s3.pid), s3.requests.length, server.requests.length, server.jobs.list().length];
      const t0 = performance.now();
      const run = await runFlow(ForeachFlow, { file: FILE, executor, datastore: store, params: { n }, maxWorkers: workers });
      const ms = performance.now() - t0;
      if (!run.successful) throw new Error(`foreach${n} failed on batch: ${run.error?.message}`);
      const own = process.cpuUsage(own0);
      const kinds: Record<string, number> = {};
      for (const r of server.requests.slice(api0)) kinds[r.op] = (kinds[r.op] ?? 0) + 1;
      const array = server.jobs.list().slice(jobs0).find((j) => j.arrayProperties?.size !== undefined);
      return {
        tasks: run.tasks,
        children: array?.arrayProperties?.size ?? n,
        wall: ms / run.tasks,
        jobCpu: (childCpuMs() - cpu0) / run.tasks,
        ownCpu: (own.user + own.system) / 1000 / run.tasks,
        s3Cpu: (processCpuMs(s3.pid) - s30) / run.tasks,
        s3Requests: (s3.requests.length - req0) / run.tasks,
        api: { total: server.requests.length - api0, kinds, seconds: ms / 1000 },
      };
    } finally {
      await executor.close?.();
    }
  };
  const auto = await foreach();
  const fifty = n >= 100 ? await foreach(50) : undefined;
  const floor = await nodeStartFloor(server, auto.children);
  const floorPerTask = (floor.wallPerJob * auto.children) / auto.tasks;
  const target = n >= 1000 ? "≤ 20 ms at N = 1,000" : "≤ 20 ms at N = 1,000 (run TSFLOW_BENCH_BATCH_N=1000)";
  rows.push({ name: `executor batch (local server, process jobs, s3rver): foreach${n} per-task overhead (one array job of ${auto.children} children, default itemsPerJob)`, value: round(auto.wall), unit: "ms/task", target });
  rows.push({ name: `  of which the floor: ${auto.children} jobs that only start Node (node -e 0) on the same server, per task`, value: round(floorPerTask), unit: `ms/task (${round(floor.cpuPerJob)} ms CPU per start)` });
  rows.push({ name: "  CPU per task of the jobs (their processes, start to exit)", value: round(auto.jobCpu), unit: "ms CPU/task" });
  rows.push({ name: "  CPU per task of the orchestrator (runFlow, the executor, and the local Batch server in the same process)", value: round(auto.ownCpu), unit: "ms CPU/task" });
  rows.push({ name: `  CPU per task of s3rver (${round(auto.s3Requests)} S3 requests per task: the jobs' and the orchestrator's)`, value: round(auto.s3Cpu), unit: "ms CPU/task" });
  rows.push({ name: "  all CPU per task (2 cores: ≤ 40 ms would be needed for 20 ms of wall per task)", value: round(auto.jobCpu + auto.ownCpu + auto.s3Cpu), unit: "ms CPU/task" });
  if (fifty) {
    rows.push({ name: `executor batch: the same foreach${n} at itemsPerJob 50 (${fifty.children} children)`, value: round(fifty.wall), unit: "ms/task", target });
    rows.push({ name: `  CPU per task: jobs ${round(fifty.jobCpu)}, orchestrator ${round(fifty.ownCpu)}, s3rver ${round(fifty.s3Cpu)} (${round(fifty.s3Requests)} requests)`, value: round(fifty.jobCpu + fifty.ownCpu + fifty.s3Cpu), unit: "ms CPU/task" });
  }
  // Batch API calls of whole runs (start, the array, join, end), counted by the server.
  const calls = async (items: number) => {
    const e = make();
    try {
      await perTask(e, store, 2, workers); // job definition found or registered before counting
      const before = server.requests.length;
      const t0 = performance.now();
      await perTask(e, store, items, workers);
      const kinds: Record<string, number> = {};
      for (const r of server.requests.slice(before)) kinds[r.op] = (kinds[r.op] ?? 0) + 1;
      return { total: server.requests.length - before, kinds, seconds: (performance.now() - t0) / 1000 };
    } finally {
      await e.close?.();
    }
  };
  for (const items of [...new Set([10, 100, n])]) {
    const c = items === n ? auto.api : await calls(items);
    const kinds = Object.entries(c.kinds).map(([k, v]) => `${k} ${v}`).join(", ");
    rows.push({ name: `executor batch: Batch API calls of a foreach${items} run (${c.seconds.toFixed(1)} s)`, value: c.total, unit: `calls (${kinds})`, target: "independent of N" });
  }
  return rows;
}

/** An array of `n` jobs whose command is `node -e 0`, submitted and waited for on the server itself. */
async function nodeStartFloor(server: BatchServer, n: number): Promise<{ wallPerJob: number; cpuPerJob: number; serverCpuPerJob: number }> {
  const { BatchClient, RegisterJobDefinitionCommand, SubmitJobCommand } = await import("@aws-sdk/client-batch");
  const client = new BatchClient({ endpoint: server.url, region: "us-east-1" });
  try {
    const def = await client.send(new RegisterJobDefinitionCommand({ jobDefinitionName: "bench-node-start", type: "container", containerProperties: { image: IMAGE, command: [process.execPath, "-e", "0"] } }));
    const [cpu0, own0] = [childCpuMs(), process.cpuUsage()];
    const t0 = performance.now();
    const { jobId } = await client.send(new SubmitJobCommand({ jobName: "bench-node-start", jobQueue: "default", jobDefinition: def.jobDefinitionArn!, arrayProperties: { size: n } }));
    while (!["SUCCEEDED", "FAILED"].includes(server.jobs.get(jobId!)?.status ?? "")) await new Promise((r) => setTimeout(r, 20));
    const own = process.cpuUsage(own0);
    return { wallPerJob: (performance.now() - t0) / n, cpuPerJob: (childCpuMs() - cpu0) / n, serverCpuPerJob: (own.user + own.system) / 1000 / n };
  } finally {
    client.destroy();
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

/**
 * The same foreach deployed with `step-functions create` and started with `trigger` on the local
 * Step Functions server (which runs every task as a job of the same local Batch server): wall time
 * from trigger to the execution's end, per task. Beside the batch executor's figure it shows what
 * the state machine adds (.sync polling, S3 reads of foreach items) and saves (no orchestrator).
 */
async function stepFunctionsPerTask(batchUrl: string, s3Endpoint: string, credentials: { accessKeyId: string; secretAccessKey: string }, store: Datastore, n: number, workers: number): Promise<Row> {
  const { startSfnServer } = await import("../test/sfn-server/server.ts");
  const { createDeployment, trigger } = await import("../plugins/step-functions/deploy.ts");
  const { loadFlowInfo } = await import("../core/graph.ts");
  const { default: nodeHost } = await import("../plugins/host/node.ts");
  const sfn = await startSfnServer({ batchEndpoint: batchUrl, s3Endpoint, credentials, pollMs: 50 });
  Object.assign(process.env, { TSFLOW_SFN_ENDPOINT: sfn.url, TSFLOW_SCHEDULER_ENDPOINT: sfn.url, TSFLOW_EVENTS_ENDPOINT: sfn.url, TSFLOW_SFN_ROLE: "arn:aws:iam::123456789012:role/bench", TSFLOW_BATCH_QUEUE: "default", TSFLOW_BATCH_IMAGE: IMAGE });
  try {
    const host = nodeHost();
    const target = { info: loadFlowInfo(ForeachFlow), flowClass: ForeachFlow, flowFile: FILE, store, host };
    await createDeployment(target, { name: "bench-foreach", maxWorkers: workers });
    const run = async (items: number) => {
      const t0 = performance.now();
      const { executionArn } = await trigger(target, { name: "bench-foreach", parameters: { n: String(items) } });
      const execution = await sfn.executions.wait(executionArn);
      if (execution.status !== "SUCCEEDED") throw new Error(`foreach${items} on Step Functions ${execution.status}: ${execution.cause?.slice(0, 300)}`);
      return (performance.now() - t0) / (items + 3);
    };
    await run(2); // warm-up: code package cached by the jobs
    return { name: `step-functions (local SFN + Batch servers, process jobs, s3rver): foreach${n} per-task overhead`, value: Math.round((await run(n)) * 10) / 10, unit: "ms/task" };
  } finally {
    await sfn.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const row of await benchExecutors()) console.log(`${row.name}: ${row.value} ${row.unit}${row.target ? ` (target ${row.target})` : ""}`);
}
