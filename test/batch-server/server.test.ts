// The local AWS Batch server, driven by the real @aws-sdk/client-batch BatchClient, so the batch
// executor's tests can trust it: jobs really run (as processes, and in Docker when a daemon and
// the tsflow-node:20 image are there), and injected faults look to the SDK like AWS's own.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BatchClient,
  CancelJobCommand,
  CreateJobQueueCommand,
  DeregisterJobDefinitionCommand,
  DescribeJobDefinitionsCommand,
  DescribeJobQueuesCommand,
  DescribeJobsCommand,
  type JobStatus,
  ListJobsCommand,
  RegisterJobDefinitionCommand,
  SubmitJobCommand,
  type SubmitJobCommandInput,
  TerminateJobCommand,
} from "@aws-sdk/client-batch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BatchServer, startBatchServer } from "./server.ts";

const NODE_IMAGE = "tsflow-node:20";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function client(server: BatchServer, maxAttempts = 3) {
  return new BatchClient({
    endpoint: server.url,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts,
  });
}

/** Polls DescribeJobs until the job reaches one of `until`; returns it and every status seen. */
async function waitFor(batch: BatchClient, jobId: string, until: JobStatus[] = ["SUCCEEDED", "FAILED"], timeoutMs = 10_000) {
  const seen: JobStatus[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { jobs } = await batch.send(new DescribeJobsCommand({ jobs: [jobId] }));
    const job = jobs![0]!;
    if (seen.at(-1) !== job.status) seen.push(job.status!);
    if (until.includes(job.status!)) return { job, seen };
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${job.status} after ${timeoutMs} ms (seen ${seen.join(" → ")})`);
    await sleep(15);
  }
}

async function register(batch: BatchClient, name: string, containerProperties: object, extra: object = {}) {
  const out = await batch.send(
    new RegisterJobDefinitionCommand({ jobDefinitionName: name, type: "container", containerProperties, ...extra }),
  );
  return out.jobDefinitionArn!;
}

const submit = (batch: BatchClient, input: Partial<SubmitJobCommandInput> & { jobDefinition: string }) =>
  batch.send(new SubmitJobCommand({ jobName: "job", jobQueue: "default", ...input })).then((o) => o.jobId!);

const node = (code: string) => ["node", "-e", code];
const ORDER: JobStatus[] = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"];
const inOrder = (seen: JobStatus[]) => seen.every((s, i) => i === 0 || ORDER.indexOf(s) > ORDER.indexOf(seen[i - 1]!));

describe("batch server, process executor", () => {
  let server: BatchServer;
  let batch: BatchClient;
  let nodeDef: string;

  beforeAll(async () => {
    server = await startBatchServer({ executor: "process", transitionMs: 10, killGraceSeconds: 1 });
    batch = client(server);
    nodeDef = await register(batch, "node", { image: NODE_IMAGE, command: node("console.log('default command')") });
  });
  afterAll(async () => {
    batch?.destroy();
    await server?.close();
  });

  it("answers on 127.0.0.1 only, with a default queue and CreateJobQueue", async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const created = await batch.send(new CreateJobQueueCommand({ jobQueueName: "gpu", priority: 10 }));
    expect(created.jobQueueArn).toBe("arn:aws:batch:us-east-1:123456789012:job-queue/gpu");
    const { jobQueues } = await batch.send(new DescribeJobQueuesCommand({}));
    expect(jobQueues!.map((q) => [q.jobQueueName, q.state, q.status])).toEqual([
      ["default", "ENABLED", "VALID"],
      ["gpu", "ENABLED", "VALID"],
    ]);
    const again = batch.send(new CreateJobQueueCommand({ jobQueueName: "gpu", priority: 1 }));
    await expect(again).rejects.toMatchObject({ name: "ClientException", $metadata: { httpStatusCode: 400 } });
  });

  it("registers revisions, describes and deregisters job definitions", async () => {
    const first = await register(batch, "defs", { image: "x", command: ["true"] });
    const second = await register(batch, "defs", { image: "y", command: ["true"] });
    expect([first, second]).toEqual([
      "arn:aws:batch:us-east-1:123456789012:job-definition/defs:1",
      "arn:aws:batch:us-east-1:123456789012:job-definition/defs:2",
    ]);
    await batch.send(new DeregisterJobDefinitionCommand({ jobDefinition: "defs:2" }));
    const { jobDefinitions } = await batch.send(new DescribeJobDefinitionsCommand({ jobDefinitionName: "defs" }));
    expect(jobDefinitions!.map((d) => [d.revision, d.status, d.containerProperties?.image])).toEqual([
      [1, "ACTIVE", "x"],
      [2, "INACTIVE", "y"],
    ]);
    const active = await batch.send(new DescribeJobDefinitionsCommand({ jobDefinitions: ["defs"], status: "ACTIVE" }));
    expect(active.jobDefinitions!.map((d) => d.jobDefinitionArn)).toEqual([first]);
    // A bare name resolves to the latest ACTIVE revision.
    const jobId = await submit(batch, { jobDefinition: "defs" });
    expect(server.jobs.get(jobId)!.jobDefinition).toBe(first);
  });

  it("runs a job through every state to SUCCEEDED, with overrides, parameters and AWS_BATCH_* env", async () => {
    const def = await register(
      batch,
      "greet",
      {
        image: NODE_IMAGE,
        command: ["node", "-e", "console.log(process.argv[1], process.env.GREETING, process.env.AWS_BATCH_JOB_ID)", "Ref::who"],
        environment: [{ name: "GREETING", value: "hello" }],
        resourceRequirements: [
          { type: "VCPU", value: "1" },
          { type: "MEMORY", value: "512" },
        ],
      },
      { parameters: { who: "nobody" } },
    );
    const jobId = await submit(batch, {
      jobName: "greet-1",
      jobDefinition: def,
      parameters: { who: "world" },
      containerOverrides: {
        environment: [{ name: "GREETING", value: "bonjour" }],
        resourceRequirements: [{ type: "MEMORY", value: "1024" }],
      },
    });
    const { job, seen } = await waitFor(batch, jobId);
    expect(job.status).toBe("SUCCEEDED");
    // Every state, in order, as the server went through them; what the client saw by polling is
    // in the same order (it may miss states that last 10 ms on a loaded machine).
    expect(server.jobs.history(jobId)).toEqual(["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]);
    expect(inOrder(seen)).toBe(true);
    expect(job.statusReason).toBe("Essential container in task exited");
    expect(job.container!.exitCode).toBe(0);
    expect(job.container!.resourceRequirements).toEqual([
      { type: "VCPU", value: "1" },
      { type: "MEMORY", value: "1024" },
    ]);
    expect(job.attempts).toHaveLength(1);
    expect(job.attempts![0]!.container!.exitCode).toBe(0);
    expect(job.createdAt!).toBeLessThanOrEqual(job.startedAt!);
    expect(job.startedAt!).toBeLessThanOrEqual(job.stoppedAt!);
    expect(server.jobs.logs(jobId)).toBe(`world bonjour ${jobId}\n`);
  });

  it("gives a job a container's environment, not the server's: its own variables, the image's, credentials and endpoints", async () => {
    const names = ["GREETING", "FROM_IMAGE", "PATH", "AWS_ACCESS_KEY_ID", "TSFLOW_S3_ENDPOINT", "NODE_EXTRA_CA_CERTS", "NODE_OPTIONS", "SUBMITTER_ONLY", "TSFLOW_LOG_FLUSH_MS"];
    const saved = { ...process.env };
    // What the submitting process has: only credentials and endpoints stand for something a real
    // job gets (its role, a network to the services); the rest is this machine's and stays here.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: "role-key", TSFLOW_S3_ENDPOINT: "http://127.0.0.1:9", NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt", NODE_OPTIONS: "--no-warnings", SUBMITTER_ONLY: "x", TSFLOW_LOG_FLUSH_MS: "5" });
    const local = await startBatchServer({ executor: "process", transitionMs: 10, environment: { FROM_IMAGE: "yes" } });
    const c = client(local);
    try {
      const def = await register(c, "env", { image: NODE_IMAGE, command: node(`console.log(JSON.stringify(Object.fromEntries(${JSON.stringify(names)}.map((n) => [n, process.env[n] ?? null]))))`) });
      const jobId = await submit(c, { jobDefinition: def, containerOverrides: { environment: [{ name: "GREETING", value: "hi" }] } });
      expect((await waitFor(c, jobId)).job.status).toBe("SUCCEEDED");
      const seen = JSON.parse(local.jobs.logs(jobId)) as Record<string, string | null>;
      expect(seen).toMatchObject({ GREETING: "hi", FROM_IMAGE: "yes", AWS_ACCESS_KEY_ID: "role-key", TSFLOW_S3_ENDPOINT: "http://127.0.0.1:9" });
      expect(seen.PATH).toBeTruthy();
      expect(seen).toMatchObject({ NODE_EXTRA_CA_CERTS: null, NODE_OPTIONS: null, SUBMITTER_ONLY: null, TSFLOW_LOG_FLUSH_MS: null });
    } finally {
      process.env = saved;
      c.destroy();
      await local.close();
    }
  });

  it("retries a failed job per retryStrategy and reports every attempt's exit code", async () => {
    const flaky = await submit(batch, {
      jobDefinition: nodeDef,
      retryStrategy: { attempts: 3 },
      containerOverrides: { command: node("process.exit(process.env.AWS_BATCH_JOB_ATTEMPT === '1' ? 4 : 0)") },
    });
    const broken = await submit(batch, {
      jobDefinition: nodeDef,
      retryStrategy: { attempts: 2 },
      containerOverrides: { command: node("process.exit(3)") },
    });
    const ok = (await waitFor(batch, flaky)).job;
    expect(ok.status).toBe("SUCCEEDED");
    expect(ok.attempts!.map((a) => a.container!.exitCode)).toEqual([4, 0]);
    const failed = (await waitFor(batch, broken)).job;
    expect(failed.status).toBe("FAILED");
    expect(failed.container!.exitCode).toBe(3);
    expect(failed.attempts!.map((a) => a.container!.exitCode)).toEqual([3, 3]);
  });

  it("runs an array job: children <parent>:<index> with AWS_BATCH_JOB_ARRAY_INDEX, retried per child; the parent sums them up", async () => {
    // Child 1 fails its first attempt (retried), child 2 fails for good, the others succeed.
    const code = "const i = process.env.AWS_BATCH_JOB_ARRAY_INDEX, a = process.env.AWS_BATCH_JOB_ATTEMPT; console.log('child', i); process.exit(i === '2' ? 5 : i === '1' && a === '1' ? 4 : 0)";
    const parentId = await submit(batch, { jobDefinition: nodeDef, arrayProperties: { size: 4 }, retryStrategy: { attempts: 2 }, containerOverrides: { command: node(code) } });
    const { job: parent, seen } = await waitFor(batch, parentId);
    expect(server.jobs.history(parentId)).toEqual(["SUBMITTED", "PENDING", "FAILED"]);
    expect(seen.every((s) => ["SUBMITTED", "PENDING", "FAILED"].includes(s))).toBe(true);
    expect(parent.status).toBe("FAILED");
    expect(parent.arrayProperties).toMatchObject({ size: 4, statusSummary: { SUCCEEDED: 3, FAILED: 1 } });
    const { jobs: children } = await batch.send(new DescribeJobsCommand({ jobs: [0, 1, 2, 3].map((i) => `${parentId}:${i}`) }));
    expect(children!.map((c) => [c.arrayProperties?.index, c.status, c.attempts!.map((a) => a.container!.exitCode)])).toEqual([
      [0, "SUCCEEDED", [0]],
      [1, "SUCCEEDED", [4, 0]],
      [2, "FAILED", [5, 5]],
      [3, "SUCCEEDED", [0]],
    ]);
    expect(server.jobs.logs(`${parentId}:3`)).toBe("child 3\n");
    const failed = await batch.send(new ListJobsCommand({ arrayJobId: parentId, jobStatus: "FAILED" }));
    expect(failed.jobSummaryList!.map((j) => [j.jobId, j.arrayProperties?.index, j.container?.exitCode])).toEqual([[`${parentId}:2`, 2, 5]]);
    await expect(submit(batch, { jobDefinition: nodeDef, arrayProperties: { size: 1 } })).rejects.toThrow(/between 2 and 10000/);
  });

  it("terminates every child of an array job through its parent", async () => {
    const parentId = await submit(batch, { jobDefinition: nodeDef, arrayProperties: { size: 3 }, containerOverrides: { command: node("setInterval(() => {}, 1000)") } });
    await waitFor(batch, `${parentId}:0`, ["RUNNING"]);
    await batch.send(new TerminateJobCommand({ jobId: parentId, reason: "stopped by the test" }));
    const { job } = await waitFor(batch, parentId);
    expect(job.status).toBe("FAILED");
    const { jobs: children } = await batch.send(new DescribeJobsCommand({ jobs: [0, 1, 2].map((i) => `${parentId}:${i}`) }));
    expect(children!.map((c) => [c.status, c.statusReason])).toEqual(Array(3).fill(["FAILED", "stopped by the test"]));
  });

  it("stops retrying when evaluateOnExit says EXIT", async () => {
    const jobId = await submit(batch, {
      jobDefinition: nodeDef,
      retryStrategy: { attempts: 3, evaluateOnExit: [{ onExitCode: "2*", action: "EXIT" }] },
      containerOverrides: { command: node("process.exit(23)") },
    });
    const { job } = await waitFor(batch, jobId);
    expect([job.status, job.attempts!.length, job.container!.exitCode]).toEqual(["FAILED", 1, 23]);
  });

  it("fails a job whose command cannot start, without an exit code", async () => {
    const jobId = await submit(batch, { jobDefinition: nodeDef, containerOverrides: { command: ["no-such-binary-xyz"] } });
    const { job } = await waitFor(batch, jobId);
    expect(job.status).toBe("FAILED");
    expect(job.statusReason).toBe("Task failed to start");
    expect(job.container!.exitCode).toBeUndefined();
    expect(job.container!.reason).toMatch(/^CannotStartContainerError: .*ENOENT/);
  });

  it("terminates a running job", async () => {
    const jobId = await submit(batch, { jobDefinition: nodeDef, containerOverrides: { command: node("setInterval(() => {}, 1000)") } });
    await waitFor(batch, jobId, ["RUNNING"]);
    await batch.send(new TerminateJobCommand({ jobId, reason: "stopped by the test" }));
    const { job } = await waitFor(batch, jobId);
    expect(job.status).toBe("FAILED");
    expect(job.statusReason).toBe("stopped by the test");
    expect(job.isTerminated).toBe(true);
    expect(job.container!.exitCode).toBe(143); // 128 + SIGTERM
  });

  it("kills an attempt that exceeds timeout.attemptDurationSeconds and does not retry it", async () => {
    const jobId = await submit(batch, {
      jobDefinition: nodeDef,
      timeout: { attemptDurationSeconds: 0.3 },
      retryStrategy: { attempts: 3 },
      containerOverrides: { command: node("setTimeout(() => {}, 60_000)") },
    });
    const { job } = await waitFor(batch, jobId);
    expect([job.status, job.statusReason, job.attempts!.length]).toEqual([
      "FAILED",
      "Job attempt duration exceeded timeout",
      1,
    ]);
    // Stopped at its timeout, not at its command's end 60 s later (the bound leaves room for a
    // loaded machine: the kill's SIGTERM and the exit it waits for are not instant there).
    expect(job.stoppedAt! - job.attempts![0]!.startedAt!).toBeLessThan(15_000);
  });

  it("fails a job whose dependency failed", async () => {
    const first = await submit(batch, { jobDefinition: nodeDef, containerOverrides: { command: node("process.exit(1)") } });
    const second = await submit(batch, { jobDefinition: nodeDef, dependsOn: [{ jobId: first }] });
    const { job } = await waitFor(batch, second);
    expect([job.status, job.statusReason, job.attempts!.length]).toEqual(["FAILED", "Dependent Job failed", 0]);
  });

  it("keeps jobs RUNNABLE while holdRunnable is on, lists them, and cancels one", async () => {
    server.faults.holdRunnable(true);
    try {
      const held = await submit(batch, { jobName: "held-a", jobDefinition: nodeDef });
      const cancelled = await submit(batch, { jobName: "held-b", jobDefinition: nodeDef });
      await waitFor(batch, held, ["RUNNABLE"]);
      await waitFor(batch, cancelled, ["RUNNABLE"]);
      await sleep(300);
      expect(server.jobs.get(held)!.status).toBe("RUNNABLE");
      const { jobSummaryList } = await batch.send(new ListJobsCommand({ jobQueue: "default", jobStatus: "RUNNABLE" }));
      expect(jobSummaryList!.map((j) => j.jobId).sort()).toEqual([held, cancelled].sort());
      const byName = await batch.send(
        new ListJobsCommand({ jobQueue: "default", filters: [{ name: "JOB_NAME", values: ["HELD-*"] }] }),
      );
      expect(byName.jobSummaryList!.map((j) => j.jobName)).toEqual(["held-b", "held-a"]); // newest first

      await batch.send(new CancelJobCommand({ jobId: cancelled, reason: "not needed" }));
      const gone = await waitFor(batch, cancelled);
      expect([gone.job.status, gone.job.statusReason, gone.job.isCancelled]).toEqual(["FAILED", "not needed", true]);

      server.faults.holdRunnable(false);
      expect((await waitFor(batch, held)).job.status).toBe("SUCCEEDED");
    } finally {
      server.faults.holdRunnable(false);
    }
  });

  it("failNextJob loses the host of the next attempt; the retry then runs it", async () => {
    server.faults.failNextJob();
    const jobId = await submit(batch, { jobDefinition: nodeDef, retryStrategy: { attempts: 2 } });
    const { job } = await waitFor(batch, jobId);
    expect(job.status).toBe("SUCCEEDED");
    expect(job.attempts!.map((a) => [a.statusReason, a.container!.exitCode])).toEqual([
      ["Host EC2 (instance i-0123456789abcdef0) terminated.", undefined],
      ["Essential container in task exited", 0],
    ]);
  });

  it("throttles with HTTP 429 TooManyRequestsException, which the SDK retries", async () => {
    const before = server.requests.length;
    server.faults.throttleNext(2);
    const ok = await batch.send(new DescribeJobQueuesCommand({}));
    expect(ok.$metadata.attempts).toBe(3);
    expect(server.requests.slice(before).map((r) => r.status)).toEqual([429, 429, 200]);

    // Retries exhausted: the SDK surfaces the throttling error itself.
    const twice = client(server, 2);
    server.faults.throttleNext(2);
    const err: any = await twice.send(new DescribeJobQueuesCommand({})).catch((e) => e);
    twice.destroy();
    expect(err.name).toBe("TooManyRequestsException");
    expect(err.$metadata).toMatchObject({ httpStatusCode: 429, attempts: 2 });
  }, 15_000); // the SDK backs off up to 1 s, then 2 s, after a throttle

  it("answers 500 ServerException and drops connections on demand; the SDK retries both", async () => {
    server.faults.serverErrorNext(1);
    expect((await batch.send(new DescribeJobQueuesCommand({}))).$metadata.attempts).toBe(2);
    server.faults.resetNext(1);
    expect((await batch.send(new DescribeJobQueuesCommand({}))).$metadata.attempts).toBe(2);
    const once = client(server, 1);
    server.faults.serverErrorNext(1);
    await expect(once.send(new DescribeJobQueuesCommand({}))).rejects.toMatchObject({ name: "ServerException" });
    once.destroy();
  });

  it("rejects unknown queues and definitions with ClientException", async () => {
    await expect(submit(batch, { jobDefinition: nodeDef, jobQueue: "nope" })).rejects.toMatchObject({
      name: "ClientException",
      message: "Job queue nope does not exist",
    });
    await expect(submit(batch, { jobDefinition: "missing:1" })).rejects.toMatchObject({ name: "ClientException" });
  });
});

/** A daemon from $DOCKER_HOST, the default socket, or .ci/docker.sh's, and the image in it. */
function findDocker(): { host?: string; reason?: string } {
  const candidates = [
    process.env.DOCKER_HOST,
    "unix:///var/run/docker.sock",
    "unix:///tmp/tsflow-docker/docker.sock",
  ].filter((h): h is string => !!h);
  for (const host of candidates) {
    try {
      execFileSync("docker", ["info", "--format", "{{.ServerVersion}}"], {
        env: { ...process.env, DOCKER_HOST: host },
        stdio: "pipe",
        timeout: 5000,
      });
    } catch {
      continue;
    }
    try {
      execFileSync("docker", ["image", "inspect", NODE_IMAGE], { env: { ...process.env, DOCKER_HOST: host }, stdio: "pipe" });
      return { host };
    } catch {
      return { reason: `image ${NODE_IMAGE} missing on ${host}: run .ci/docker.sh image` };
    }
  }
  return { reason: `no docker daemon answers on ${candidates.join(", ")}: run .ci/docker.sh start` };
}

const docker = findDocker();
if (docker.reason) console.warn(`[batch-server test] skipping docker tests: ${docker.reason}`);

describe.skipIf(!docker.host)(`batch server, docker executor${docker.reason ? ` (skipped: ${docker.reason})` : ""}`, () => {
  let server: BatchServer;
  let batch: BatchClient;
  let def: string;
  let dir: string;

  beforeAll(async () => {
    server = await startBatchServer({ executor: "docker", dockerHost: docker.host, transitionMs: 10, killGraceSeconds: 1 });
    batch = client(server);
    dir = mkdtempSync(join(tmpdir(), "batch-server-"));
    def = await register(batch, "in-docker", {
      image: NODE_IMAGE,
      command: node("console.log('hi')"),
      volumes: [{ name: "work", host: { sourcePath: dir } }],
      mountPoints: [{ sourceVolume: "work", containerPath: "/work" }],
    });
  });
  afterAll(async () => {
    batch?.destroy();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("runs a container with env, memory limit, a bind mount and its exit code", async () => {
    const script = `
      const fs = require("fs");
      const read = (p) => { try { return fs.readFileSync(p, "utf8").trim(); } catch { return ""; } };
      const limit = read("/sys/fs/cgroup/memory/memory.limit_in_bytes") || read("/sys/fs/cgroup/memory.max");
      fs.writeFileSync("/work/out.txt", process.env.MESSAGE + " " + process.env.AWS_BATCH_JOB_ID);
      console.log("limit=" + limit);
      process.exit(7);`;
    const jobId = await submit(batch, {
      jobDefinition: def,
      containerOverrides: {
        command: node(script),
        environment: [{ name: "MESSAGE", value: "from docker" }],
        resourceRequirements: [
          { type: "MEMORY", value: "256" },
          { type: "VCPU", value: "1" },
        ],
      },
    });
    const { job, seen } = await waitFor(batch, jobId);
    expect(inOrder(seen)).toBe(true);
    expect([job.status, job.container!.exitCode]).toEqual(["FAILED", 7]);
    expect(server.jobs.logs(jobId)).toContain(`limit=${256 * 1024 * 1024}`);
    expect(readFileSync(join(dir, "out.txt"), "utf8")).toBe(`from docker ${jobId}`);
  });

  it("terminates a running container", async () => {
    const jobId = await submit(batch, { jobDefinition: def, containerOverrides: { command: node("setInterval(() => {}, 1000)") } });
    await waitFor(batch, jobId, ["RUNNING"]);
    await sleep(500); // let the container exist, so this is `docker stop`, not the not-yet-created path
    await batch.send(new TerminateJobCommand({ jobId, reason: "enough" }));
    const { job } = await waitFor(batch, jobId);
    expect([job.status, job.statusReason, job.isTerminated]).toEqual(["FAILED", "enough", true]);
    // node as PID 1 ignores SIGTERM, so docker stop ends with SIGKILL after the grace period.
    expect([137, 143]).toContain(job.container!.exitCode);
  });

  it("fails to start a container whose image is missing (no registry here)", async () => {
    const missing = await register(batch, "missing-image", { image: "tsflow-no-such-image:1", command: ["true"] });
    const { job } = await waitFor(batch, await submit(batch, { jobDefinition: missing }));
    expect(job.status).toBe("FAILED");
    expect(job.container!.exitCode).toBeUndefined();
    expect(job.container!.reason).toMatch(/^CannotStartContainerError: .*No such image/i);
  });
});
