import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Datastore } from "../../core/types.ts";
import { runFlow } from "../../mod.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import batchExecutor, { type BatchOptions, jobName } from "../../plugins/executors/batch.ts";
import { type BatchServer, startBatchServer } from "../batch-server/server.ts";
import { type RunningS3rver, S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";
import { dockerUnavailable, NODE_IMAGE } from "./_docker.ts";
import { executorSuite, runFixture } from "../../testing/executors.ts";

// Jobs run as local processes (the server's process mode) with this process's environment.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
let s3: RunningS3rver;
let server: BatchServer;
const options: BatchOptions = { queue: "default", image: "tsflow-node:20", poll: { min: 50, max: 400 } };

executorSuite(
  "batch",
  async () => {
    [s3, server] = await Promise.all([startS3rver({ buckets: ["tsflow"] }), startBatchServer({ executor: "process", maxConcurrent: 4, transitionMs: 20 })]);
    Object.assign(process.env, {
      TSFLOW_S3_ENDPOINT: s3.endpoint,
      TSFLOW_BATCH_ENDPOINT: server.url,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_REGION: "us-east-1",
    });
    const datastore = s3Datastore({ url: "s3://tsflow/batch", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
    return { executor: batchExecutor(options), datastore, cleanup: async () => void (await Promise.all([server.close(), s3.close()])) };
  },
  {
    additionalTests: (get) => {
      it("runs the pets and foreach examples green", async () => {
        const { default: PetsFlow } = await import("../../examples/pets.ts");
        const { default: ForeachFlow } = await import("../../examples/foreach.ts");
        const pets = await runFlow(PetsFlow, { file: new URL("../../examples/pets.ts", import.meta.url).pathname, executor: get().executor, datastore: get().datastore });
        expect(pets.error).toBeUndefined();
        const foreach = await runFlow(ForeachFlow, {
          file: new URL("../../examples/foreach.ts", import.meta.url).pathname,
          executor: get().executor,
          datastore: get().datastore,
          params: { n: 5 },
          maxWorkers: 4,
        });
        expect(foreach.error).toBeUndefined();
        expect(foreach.tasks).toBe(8);
        for (const job of server.jobs.list()) expect(job.jobName).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/);
      }, 120_000);

      it("registers a job definition once and reuses it", async () => {
        const count = () => server.requests.filter((r) => r.op === "RegisterJobDefinition" || r.op === "registerjobdefinition").length;
        const before = count();
        await runFixture(get(), "OkFlow");
        await runFixture(get(), "OkFlow");
        expect(count()).toBe(before);
      }, 60_000);

      it("rides out throttling (HTTP 429) of the Batch API", async () => {
        server.faults.throttleNext(4);
        const run = await runFixture(get(), "OkFlow");
        expect(run.error).toBeUndefined();
        expect(server.requests.filter((r) => r.status === 429).length).toBeGreaterThanOrEqual(4);
      }, 60_000);

      it("lets Batch retry an attempt whose host vanished", async () => {
        server.faults.failNextJob();
        const run = await runFixture(get(), "OkFlow");
        expect(run.error).toBeUndefined();
        expect(server.jobs.list().some((j) => (j.attempts?.length ?? 0) > 1 && j.status === "SUCCEEDED")).toBe(true);
      }, 60_000);

      it("fails a task whose job stays RUNNABLE past runnableTimeoutSeconds, and terminates the job", async () => {
        const executor = batchExecutor({ ...options, runnableTimeoutSeconds: 1 });
        server.faults.holdRunnable(true);
        try {
          const run = await runFixture({ ...get(), executor }, "OkFlow");
          expect(run.successful).toBe(false);
          expect(run.error?.message).toContain("stayed RUNNABLE");
        } finally {
          server.faults.holdRunnable(false);
          await executor.close?.();
        }
        const held = server.jobs.list().at(-1)!;
        await expect.poll(() => server.jobs.get(held.jobId!)?.status, { timeout: 5000 }).toBe("FAILED");
      }, 60_000);

      it("refuses a local datastore before submitting anything or writing a run record", async () => {
        const dir = await mkdtemp(join(tmpdir(), "tsflow-batch-local-"));
        const local: Datastore = fsDatastore({ root: dir });
        const jobs = server.jobs.list().length;
        const executor = batchExecutor(options);
        try {
          // Refused before the run record is written: no failed run is left behind.
          await expect(runFixture({ ...get(), executor, datastore: local }, "OkFlow")).rejects.toThrow(/cannot reach datastore .*s3:\/\//);
          expect(server.jobs.list().length).toBe(jobs);
          expect(await local.list("flows/")).toEqual([]);
        } finally {
          await executor.close?.();
          await rm(dir, { recursive: true, force: true });
        }
      });

      it("names jobs within Batch's rules", () => {
        expect(jobName({ flowName: "My.Flow", runId: "123-ab", step: "st@p", taskId: "7", attempt: 0 })).toBe("My_Flow-123-ab-st_p-7-0");
        expect(jobName({ flowName: "_x".repeat(100), runId: "r", step: "s", taskId: "1", attempt: 0 })).toMatch(/^t_x[\w-]{125}$/);
      });
    },
  },
);

// Jobs in containers: the task finds its code package and the datastore over S3 only.
const noDocker = dockerUnavailable();
describe.skipIf(noDocker)(`batch with jobs in docker containers${noDocker ? ` (skipped: ${noDocker})` : ""}`, () => {
  it("runs the pets example green", async () => {
    const [s3d, srv] = await Promise.all([startS3rver({ buckets: ["tsflow"] }), startBatchServer({ executor: "docker", transitionMs: 20 })]);
    const executor = batchExecutor({ ...options, image: NODE_IMAGE, mountRuntime: true, passCredentials: true, endpoint: srv.url });
    const saved = { ...process.env };
    Object.assign(process.env, { TSFLOW_S3_ENDPOINT: s3d.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" });
    try {
      const { default: PetsFlow } = await import("../../examples/pets.ts");
      const datastore = s3Datastore({ url: "s3://tsflow/docker-jobs", endpoint: s3d.endpoint, credentials: S3RVER_CREDENTIALS });
      const run = await runFlow(PetsFlow, { file: new URL("../../examples/pets.ts", import.meta.url).pathname, executor, datastore });
      expect(run.error).toBeUndefined();
      expect(srv.jobs.list()).toHaveLength(5);
      expect(srv.jobs.logs(srv.jobs.list().at(-1)!.jobId!)).toContain("total of 6 pets");
    } finally {
      process.env = saved;
      await executor.close?.();
      await Promise.all([srv.close(), s3d.close()]);
    }
  }, 120_000);
});
