/**
 * Batch array jobs: a foreach on Batch goes out as one array job (plugins/executors/batch.ts),
 * run by the local Batch server's array support (test/batch-server/server.ts): children
 * `<parent>:<index>` as real processes, each a tsflow attempt of its own.
 */
import type { JobDetail } from "@aws-sdk/client-batch";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Datastore } from "../../core/types.ts";
import { runFlow } from "../../mod.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import batchExecutor, { type BatchOptions } from "../../plugins/executors/batch.ts";
import { ArrayFlow, NestedArrayFlow, SlicedStepsFlow } from "../fixtures/batch-array.ts";
import { type BatchServer, startBatchServer } from "../batch-server/server.ts";
import { type RunningS3rver, S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const FILE = new URL("../fixtures/batch-array.ts", import.meta.url).pathname;
const options: BatchOptions = { queue: "default", image: "tsflow-node:20", poll: { min: 50, max: 400 } };

let s3: RunningS3rver;
let server: BatchServer;
let datastore: Datastore;
let saved: NodeJS.ProcessEnv;

beforeAll(async () => {
  [s3, server] = await Promise.all([startS3rver({ buckets: ["tsflow"] }), startBatchServer({ executor: "process", maxConcurrent: 4, transitionMs: 20 })]);
  saved = { ...process.env };
  Object.assign(process.env, {
    TSFLOW_S3_ENDPOINT: s3.endpoint,
    TSFLOW_BATCH_ENDPOINT: server.url,
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: "us-east-1",
  });
  datastore = s3Datastore({ url: "s3://tsflow/array", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
}, 60_000);

afterAll(async () => {
  process.env = saved;
  await datastore?.close?.();
  await Promise.all([server?.close(), s3?.close()]);
});

/**
 * A point in s3rver's log: a read of a key of our own, once the log has it (the log comes over a
 * pipe and may trail the answers on a starved machine).
 */
let marks = 0;
async function mark(): Promise<number> {
  const key = `marks/${++marks}`;
  await datastore.get(key);
  const isMark = (r: string) => r.startsWith("GET ") && decodeURIComponent(r).includes(`array/${key}`);
  await vi.waitFor(() => expect(s3.requests.some(isMark)).toBe(true), { timeout: 15_000 });
  return s3.requests.findIndex(isMark);
}

/** The jobs the server got since `from`, parents and children apart. */
function jobsSince(from: number) {
  const all = server.jobs.list().slice(from);
  return { parents: all.filter((j) => j.arrayProperties?.size !== undefined), children: all.filter((j) => j.arrayProperties?.index !== undefined), singles: all.filter((j) => !j.arrayProperties) };
}
const ops = (from: number) => server.requests.slice(from).map((r) => r.op.toLowerCase());

describe("batch array jobs", () => {
  it("submits a foreach as one array job; a failing item is retried alone and the run succeeds", async () => {
    const executor = batchExecutor(options);
    const jobs0 = server.jobs.list().length;
    const req0 = server.requests.length;
    try {
      const run = await runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 6, flaky: 2 }, maxWorkers: 1 });
      expect(run.error).toBeUndefined();
      expect(await run.data("total")).toBe(0 + 1 + 4 + 9 + 16 + 25);
      const { parents, children, singles } = jobsSince(jobs0);
      // start, the array of 6, the retry of item 2 alone, join, end.
      expect(parents).toHaveLength(1);
      expect(parents[0]!.arrayProperties!.size).toBe(6);
      expect(children.map((c) => c.jobId)).toEqual(Array.from({ length: 6 }, (_, i) => `${parents[0]!.jobId}:${i}`));
      // Every child ran to its end (exit 0: a step error is a result, not a job failure).
      expect(parents[0]!.status).toBe("SUCCEEDED");
      expect(parents[0]!.arrayProperties!.statusSummary).toMatchObject({ SUCCEEDED: 6 });
      expect(singles).toHaveLength(4);
      const attempts = (await run.step("work").tasks()).map((t) => t.attempt);
      expect(attempts).toEqual([0, 0, 1, 0, 0, 0]);
      expect(ops(req0).filter((o) => o === "submitjob")).toHaveLength(5);
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("fails the run when an item fails for good, naming the item's task", async () => {
    const executor = batchExecutor(options);
    const jobs0 = server.jobs.list().length;
    try {
      const run = await runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 4, broken: 3 }, maxWorkers: 1 });
      expect(run.successful).toBe(false);
      expect(run.error?.message).toContain("broken item 3");
      expect(run.error?.pathspec).toMatch(/\/work\/\d+$/);
      const { parents } = jobsSince(jobs0);
      expect(parents).toHaveLength(1);
      expect(parents[0]!.arrayProperties!.size).toBe(4);
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("fails the run when an item's job dies without a word, learnt from Batch (its parent's FAILED count, then ListJobs)", async () => {
    const executor = batchExecutor(options);
    const req0 = server.requests.length;
    try {
      const run = await runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 4, crash: 1 }, maxWorkers: 1 });
      expect(run.successful).toBe(false);
      // The array's child died, then its @retry (a job alone) did too: both learnt from Batch.
      expect(run.error?.message).toMatch(/Batch job .* failed: Essential container in task exited \(exit code 3\)/);
      expect(run.error?.pathspec).toMatch(/\/work\/\d+$/);
      expect(ops(req0)).toContain("listjobs");
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("makes the same Batch API calls for a foreach of 5 and of 50 items", async () => {
    // Ends come through the datastore; Batch is asked only at status checks, whose number grows
    // with the log of a run's duration (not its size): set past both runs, none happens, and
    // what is left must not depend on N.
    const count = async (n: number) => {
      const executor = batchExecutor({ ...options, statusCheck: { min: 600_000 } });
      const req0 = server.requests.length;
      try {
        const run = await runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n }, maxWorkers: 1 });
        expect(run.error).toBeUndefined();
        expect(await run.data("total")).toBe(Array.from({ length: n }, (_, i) => i * i).reduce((a, b) => a + b, 0));
      } finally {
        await executor.close?.();
      }
      const kinds: Record<string, number> = {};
      for (const op of ops(req0)) kinds[op] = (kinds[op] ?? 0) + 1;
      return kinds;
    };
    await count(2); // the job definition registered, whichever test ran before
    const five = await count(5);
    const fifty = await count(50);
    expect(fifty).toEqual(five);
    // start, the array, join, end: one SubmitJob each.
    expect(five.submitjob).toBe(4);
  }, 400_000);

  it("stops the whole array with one TerminateJob when the run is stopped", async () => {
    const executor = batchExecutor(options);
    const jobs0 = server.jobs.list().length;
    const req0 = server.requests.length;
    const stop = new AbortController();
    try {
      const pending = runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 8, sleepMs: 60_000 }, maxWorkers: 1, signal: stop.signal });
      await expect.poll(() => jobsSince(jobs0).children.filter((c) => c.status === "RUNNING").length, { timeout: 90_000, interval: 200 }).toBeGreaterThan(0);
      stop.abort();
      const run = await pending;
      expect(run.successful).toBe(false);
      expect(run.error?.type).toBe("Cancelled");
      const parent = jobsSince(jobs0).parents[0]!;
      await expect.poll(() => server.jobs.get(parent.jobId!)?.status, { timeout: 30_000 }).toBe("FAILED");
      const children = jobsSince(jobs0).children;
      expect(children).toHaveLength(8);
      for (const c of children) expect(c.status).toBe("FAILED");
      expect(ops(req0).filter((o) => o === "terminatejob")).toHaveLength(1);
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("slices a foreach of 100 into about 50 children by default (2 items each)", async () => {
    // Only the submission is looked at: the items sleep, and the run is stopped once the array is in.
    const executor = batchExecutor(options);
    const jobs0 = server.jobs.list().length;
    const stop = new AbortController();
    try {
      const pending = runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 100, sleepMs: 60_000 }, maxWorkers: 1, signal: stop.signal });
      await expect.poll(() => jobsSince(jobs0).parents.length, { timeout: 90_000, interval: 200 }).toBe(1);
      stop.abort();
      expect((await pending).error?.type).toBe("Cancelled");
      expect(jobsSince(jobs0).parents[0]!.arrayProperties!.size).toBe(50);
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("runs a nested foreach whose inner level is an array job", async () => {
    const executor = batchExecutor(options);
    const jobs0 = server.jobs.list().length;
    try {
      const run = await runFlow(NestedArrayFlow, { file: FILE, exportName: "NestedArrayFlow", executor, datastore, maxWorkers: 1 });
      expect(run.error).toBeUndefined();
      expect(await run.data("all")).toEqual(["1", "2", "3", "1", "2", "3"]);
      const { parents } = jobsSince(jobs0);
      const leafArrays = parents.filter((p: JobDetail) => p.jobName!.includes("-leaf-"));
      // One array per outer task: its split of 3.
      expect(leafArrays.map((p) => p.arrayProperties!.size)).toEqual([3, 3]);
      expect(parents.filter((p: JobDetail) => p.jobName!.includes("-split-")).map((p) => p.arrayProperties!.size)).toEqual([2]);
    } finally {
      await executor.close?.();
    }
  }, 180_000);
});

// The same semantics when each child runs a slice of the items (`itemsPerJob`): every item is
// still a task with its own attempts, logs and end, whichever item of a child fails or crashes.
describe("batch array jobs whose children run several items (itemsPerJob: 3)", () => {
  const sliced: BatchOptions = { ...options, itemsPerJob: 3 };
  const byIndex = async <T extends { index: number | undefined }>(tasks: PromiseLike<T[]>) => [...(await tasks)].sort((a, b) => a.index! - b.index!);

  it("runs 7 items in 3 children; a failing item is retried alone, each item keeps its own log", async () => {
    const executor = batchExecutor(sliced);
    const jobs0 = server.jobs.list().length;
    try {
      const run = await runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 7, flaky: 4 }, maxWorkers: 1 });
      expect(run.error).toBeUndefined();
      expect(await run.data("total")).toBe([0, 1, 2, 3, 4, 5, 6].reduce((a, i) => a + i * i, 0));
      const { parents, children } = jobsSince(jobs0);
      expect(parents).toHaveLength(1);
      expect(parents[0]!.arrayProperties!.size).toBe(3);
      expect(children).toHaveLength(3);
      const tasks = await byIndex(run.step("work").tasks());
      expect(tasks.map((t) => t.attempt)).toEqual([0, 0, 0, 0, 1, 0, 0]);
      // Item 4's child went on with item 5 after item 4's step failed; each log is its item's only.
      for (const t of tasks) expect((await t.stdout()).trim()).toBe(`item ${t.index} attempt ${t.attempt}`);
      expect(await tasks[4]!.stdout(0)).toBe("");
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("an item that succeeds writes its task's done.json and its log, nothing more (no task.json, start.json or result.json)", async () => {
    // The job's task commits itself on S3 (durable on its answer) and reports its result: the
    // orchestrator writes no record of its own for it. A slow item would write its task.json
    // while running (TSFLOW_SELF_RECORD_MS): set past the run, so a loaded machine changes nothing.
    const executor = batchExecutor(sliced);
    const before = process.env.TSFLOW_SELF_RECORD_MS;
    process.env.TSFLOW_SELF_RECORD_MS = "600000";
    try {
      const from = await mark();
      const run = await runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 6 }, maxWorkers: 1 });
      expect(run.error).toBeUndefined();
      const to = await mark();
      const tasks = await byIndex(run.step("work").tasks());
      expect(tasks.map((t) => t.successful)).toEqual([true, true, true, true, true, true]);
      // The readers still find each task's record (in done.json) and its one attempt.
      for (const t of tasks) expect(await t.attempts()).toEqual([0]);
      const writes = s3.requests.slice(from + 1, to).filter((r) => r.startsWith("PUT ")).map((r) => decodeURIComponent(r.split(" ")[1]!.split("?")[0]!));
      for (const t of tasks) {
        const [flow, runId, step, id] = t.pathspec.split("/");
        const dir = `/tsflow/array/flows/${flow}/runs/${runId}/tasks/${step}/${id}/`;
        // The array's specs and end reports live under its first task's attempt.
        const files = writes.filter((w) => w.startsWith(dir) && !w.startsWith(`${dir}0/array/`)).map((w) => w.slice(dir.length).replace(/\/\d+$/, "/<chunk>"));
        expect(files.sort(), t.pathspec).toEqual(["0/stdout/<chunk>", "done.json"]);
      }
    } finally {
      if (before === undefined) delete process.env.TSFLOW_SELF_RECORD_MS;
      else process.env.TSFLOW_SELF_RECORD_MS = before;
      await executor.close?.();
    }
  }, 180_000);

  it("fails the run when an item fails for good; the items after it in its child still run", async () => {
    const executor = batchExecutor(sliced);
    const jobs0 = server.jobs.list().length;
    try {
      const run = await runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 6, broken: 4 }, maxWorkers: 1 });
      expect(run.successful).toBe(false);
      expect(run.error?.message).toContain("broken item 4");
      const tasks = await byIndex(run.step("work").tasks());
      expect(run.error?.pathspec).toBe(tasks[4]!.pathspec.split("/").slice(1).join("/"));
      expect(tasks[4]!.attempt).toBe(1);
      // Items are sliced in the foreach's order: 3, 4, 5 share a child, which went on past item 4's
      // error (whether the run saw item 5 end before it failed depends on timing, its log does not).
      const { children } = jobsSince(jobs0);
      const second = children.find((c) => c.jobId!.endsWith(":1") && server.jobs.logs(c.jobId!).includes("item 3 attempt 0"));
      expect(second, JSON.stringify(children.map((c) => [c.jobId, server.jobs.logs(c.jobId!)]))).toBeDefined();
      expect(server.jobs.logs(second!.jobId!)).toMatch(/item 3 attempt 0\n[\s\S]*item 5 attempt 0\n/);
      expect(second!.status).toBe("SUCCEEDED");
      for (const i of [0, 1, 2, 3, 5]) expect(await tasks[i]!.attempts()).toEqual([0]);
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("an item whose process dies fails with the items of its child that never ran; those are retried, the items done before are not", async () => {
    const executor = batchExecutor(sliced);
    try {
      const run = await runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 6, crash: 1 }, maxWorkers: 1 });
      expect(run.successful).toBe(false);
      expect(run.error?.message).toMatch(/Batch job .* failed.*: Essential container in task exited \(exit code 3\)/);
      const tasks = await byIndex(run.step("work").tasks());
      expect(run.error?.pathspec).toBe(tasks[1]!.pathspec.split("/").slice(1).join("/"));
      // Child 0 runs items 0, 1, 2: item 0 ended before item 1 killed it, so it is not run again;
      // item 2 never ran there: it failed with the child and was retried. Items 3-5 ran in child 1.
      expect(tasks[0]!.successful).toBe(true);
      expect(await tasks[0]!.attempts()).toEqual([0]);
      expect(await tasks[1]!.attempts()).toEqual([0, 1]);
      expect(await tasks[2]!.attempts()).toEqual([0, 1]);
      for (const i of [3, 4, 5]) expect(await tasks[i]!.attempts()).toEqual([0]);
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("stops every child with one TerminateJob when the run is stopped", async () => {
    const executor = batchExecutor(sliced);
    const jobs0 = server.jobs.list().length;
    const req0 = server.requests.length;
    const stop = new AbortController();
    try {
      const pending = runFlow(ArrayFlow, { file: FILE, exportName: "ArrayFlow", executor, datastore, params: { n: 8, sleepMs: 60_000 }, maxWorkers: 1, signal: stop.signal });
      await expect.poll(() => jobsSince(jobs0).children.filter((c) => c.status === "RUNNING").length, { timeout: 90_000, interval: 200 }).toBeGreaterThan(0);
      stop.abort();
      const run = await pending;
      expect(run.error?.type).toBe("Cancelled");
      const parent = jobsSince(jobs0).parents[0]!;
      expect(parent.arrayProperties!.size).toBe(3);
      await expect.poll(() => server.jobs.get(parent.jobId!)?.status, { timeout: 30_000 }).toBe("FAILED");
      for (const c of jobsSince(jobs0).children) expect(c.status).toBe("FAILED");
      expect(ops(req0).filter((o) => o === "terminatejob")).toHaveLength(1);
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("takes a step's own @batch({ itemsPerJob }), and runs a @timeout step one item per child (Batch times out a whole child)", async () => {
    const executor = batchExecutor(sliced);
    const jobs0 = server.jobs.list().length;
    try {
      const run = await runFlow(SlicedStepsFlow, { file: FILE, exportName: "SlicedStepsFlow", executor, datastore, maxWorkers: 1 });
      expect(run.error).toBeUndefined();
      expect(await run.data("sumB")).toBe(30);
      expect(await (await run.step("joinA").tasks())[0]!.data("sumA")).toBe(30);
      const { parents } = jobsSince(jobs0);
      expect(parents.find((p) => p.jobName!.includes("-double-"))?.arrayProperties?.size).toBe(3);
      expect(parents.find((p) => p.jobName!.includes("-triple-"))?.arrayProperties?.size).toBe(4);
    } finally {
      await executor.close?.();
    }
  }, 180_000);

  it("runs a nested foreach whose inner level is a sliced array job", async () => {
    const executor = batchExecutor({ ...options, itemsPerJob: 2 });
    const jobs0 = server.jobs.list().length;
    try {
      const run = await runFlow(NestedArrayFlow, { file: FILE, exportName: "NestedArrayFlow", executor, datastore, maxWorkers: 1 });
      expect(run.error).toBeUndefined();
      expect(await run.data("all")).toEqual(["1", "2", "3", "1", "2", "3"]);
      const { parents } = jobsSince(jobs0);
      // 3 inner items, 2 per child: arrays of 2 children. The outer split of 2: one item each.
      expect(parents.filter((p: JobDetail) => p.jobName!.includes("-leaf-")).map((p) => p.arrayProperties!.size)).toEqual([2, 2]);
      expect(parents.filter((p: JobDetail) => p.jobName!.includes("-split-")).map((p) => p.arrayProperties!.size)).toEqual([2]);
      const leaves = await run.step("leaf").tasks();
      expect(leaves).toHaveLength(6);
      expect(leaves.every((t) => t.successful && t.attempt === 0)).toBe(true);
    } finally {
      await executor.close?.();
    }
  }, 180_000);
});
