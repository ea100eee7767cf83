/**
 * Per-task overhead of each executor: examples/foreach.ts with 100 items (103 tasks) run through
 * process workers, warm docker containers, fresh docker containers and AWS Batch on the local
 * Batch server (jobs as processes, s3rver as S3). The steps do almost nothing, so wall time
 * divided by the task count is what the executor costs per task. What cannot run here (no
 * docker daemon) is skipped. `TSFLOW_BENCH_BATCH_N` shrinks the batch foreach (default 100).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
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
    await measure("executor process: foreach100 per-task overhead", () => processExecutor(), 100, local, "< 20 ms");
    if (dockerAnswers()) {
      await measure("executor docker (warm containers): foreach100 per-task overhead", () => dockerExecutor({ image: IMAGE }), 100, local, "< 50 ms");
      await measure("executor docker (fresh containers): foreach100 per-task overhead", () => dockerExecutor({ image: IMAGE, fresh: true }), 100, local);
    } else {
      process.stderr.write(`[bench] executors: docker skipped (no daemon or no image ${IMAGE}; run .ci/docker.sh all)\n`);
    }
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
      const n = Number(process.env.TSFLOW_BENCH_BATCH_N ?? 100);
      // A foreach goes out as one array job: the Batch API calls of the run must not grow with N.
      const calls = async (items: number) => {
        const executor = batchExecutor({ queue: "default", image: IMAGE, poll: { min: 50, max: 500 } });
        try {
          const before = server.requests.length;
          await perTask(executor, s3store, items, workers);
          return server.requests.length - before;
        } finally {
          await executor.close?.();
        }
      };
      const few = await calls(10);
      const before = server.requests.length;
      await measure(`executor batch (local server, process jobs, s3rver): foreach${n} per-task overhead (one array job)`, () => batchExecutor({ queue: "default", image: IMAGE, poll: { min: 50, max: 500 } }), n, s3store, n >= 1000 ? "≤ 20 ms at N = 1,000" : undefined);
      const many = server.requests.length - before;
      rows.push({ name: `executor batch: Batch API calls, foreach10 → foreach${n} (incl. warm-up run of foreach2)`, value: many, unit: `calls (foreach10: ${few})`, target: "independent of N" });
      rows.push(await stepFunctionsPerTask(server.url, s3.endpoint, S3RVER_CREDENTIALS, s3store, n, workers));
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
