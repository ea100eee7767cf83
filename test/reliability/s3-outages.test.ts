/**
 * A store that goes and comes back (#18.3, #18.4): s3rver restarted on the same port mid-run,
 * and a process killed in the middle of a multipart upload. The run rides the outage out or
 * fails with a clear error and resumes; a killed upload leaves no visible partial object.
 */
import { describe, expect, it } from "vitest";
import type { Datastore } from "../../core/types.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import { cli, STACK_LINE, spawnCli, waitFor } from "../_helpers.ts";
import { type RunningS3rver, S3RVER_CREDENTIALS, startHoldingProxy, startS3rver } from "../_s3rver.ts";
import { checkStore, runStatuses, stepArtifactsOf } from "./_s3check.ts";
import { alive, rfixture, sleep, workersOf } from "./_util.ts";

const awsEnv = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };

/** Resumes the newest run of `flow` until it succeeds (at most 3 times); the final run id. */
async function resumeUntilDone(file: string, flow: string, url: string, env: Record<string, string>, store: Datastore, first: { code: number | null; stdout: string; stderr: string }) {
  let r = first;
  for (let i = 0; r.code !== 0; i++) {
    expect(r.stderr).toMatch(/\[s3\] cannot (read|write|check|list) '[^']+' in s3:\/\/|Run \w+\/\S+ failed/);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(i, r.stderr).toBeLessThan(3);
    const origin = Object.keys(await runStatuses(store, flow)).sort().at(-1)!;
    r = await cli(["resume", file, "--datastore", url, "--origin-run-id", origin], { env, timeoutMs: 240_000 });
  }
  return /Run \w+\/(\S+) succeeded/.exec(r.stdout)![1]!;
}

describe("s3rver restarted on the same port mid-run", () => {
  it("the run rides it out (refused connections are retried) and ends with the right total", async () => {
    let s3: RunningS3rver = await startS3rver({ buckets: ["back"] });
    const { port, dir } = s3;
    const env = { ...awsEnv, TSFLOW_S3_ENDPOINT: s3.endpoint };
    const store = s3Datastore({ url: "s3://back/r", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
    try {
      const run = spawnCli(["run", rfixture("slow-foreach.ts"), "--datastore", "s3://back/r", "--n", "6", "--ms", "300", "--max-workers", "2"], env);
      await waitFor(() => /\/work\/\d+\] start/.test(run.stdout()), 60_000, "a work task to start");
      await s3.close({ keep: true });
      await sleep(1_500);
      s3 = await startS3rver({ buckets: ["back"], port, dir });
      const exit = await run.exited;
      // A refused connection is retried for 8 s (outageSeconds): the run rides the restart out.
      // Before that it failed at once with ECONNREFUSED naming a result.json, and needed a resume.
      expect(exit.code, run.stderr()).toBe(0);
      const runId = await resumeUntilDone(rfixture("slow-foreach.ts"), "SlowForeachFlow", "s3://back/r", env, store, { code: exit.code, stdout: run.stdout(), stderr: run.stderr() });
      console.log(`restart: the first run ${exit.code === 0 ? "rode the restart out" : `failed (${/\[s3\][^\n]*/.exec(run.stderr())?.[0]}) and resumed`}`);
      // 0²+…+5² = 55, whichever way it got there.
      expect((await stepArtifactsOf(store, "SlowForeachFlow", runId, "join")).total).toBe(55);
      expect((await checkStore(store)).problems).toEqual([]);
    } finally {
      await store.close?.();
      await s3.close();
    }
  }, 240_000);
});

describe("a kill during a multipart upload", () => {
  it("leaves no visible partial object, and the run resumes", async () => {
    const s3 = await startS3rver({ buckets: ["mpu"] });
    // Hold the third part of the 40 MB artifact's upload: the first two are in, the object is not.
    const proxy = await startHoldingProxy(s3.port, (method, path) => method === "PUT" && /[?&]partNumber=3(&|$)/.test(path));
    const env = { ...awsEnv, TSFLOW_S3_ENDPOINT: proxy.endpoint };
    const store = s3Datastore({ url: "s3://mpu/k", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
    // ChaosFlow's big artifact is incompressible, so 40 MB go up as a 5-part upload.
    const run = spawnCli(["run", rfixture("chaos.ts"), "--datastore", "s3://mpu/k", "--mb", "40", "--n", "2"], env);
    try {
      let reached = false;
      proxy.reached.then(() => (reached = true));
      await waitFor(() => reached || run.child.exitCode !== null, 120_000, "the third part of the upload");
      expect(reached, run.stdout() + run.stderr()).toBe(true);
      const workers = workersOf(run.child.pid!);
      run.child.kill("SIGKILL");
      for (const w of workers) process.kill(w, "SIGKILL");
      await run.exited;
      await waitFor(() => workers.every((w) => !alive(w)), 10_000, "the workers to die");
      proxy.release();
      expect(s3.requests.some((r) => /^POST \/mpu\/k\/blobs\/.*\?uploads/.test(r))).toBe(true);
      // Nothing of the upload is visible: no blob of 40 MB or any part of it, no done.json.
      const blobs = (await store.listAll!("blobs/")) as string[];
      for (const b of blobs) expect((await store.size!(b))!).toBeLessThan(1024 * 1024);
      const before = await checkStore(store);
      expect(before.problems).toEqual([]);
      expect(before.doneTasks).toBe(0);

      const env2 = { ...awsEnv, TSFLOW_S3_ENDPOINT: s3.endpoint };
      const runId = Object.keys(await runStatuses(store, "ChaosFlow"))[0]!;
      const r = await cli(["resume", rfixture("chaos.ts"), "--datastore", "s3://mpu/k", "--origin-run-id", runId], { env: env2, timeoutMs: 240_000 });
      expect(r.code, r.stderr).toBe(0);
      const resumed = /Run \w+\/(\S+) succeeded/.exec(r.stdout)![1]!;
      expect(((await stepArtifactsOf(store, "ChaosFlow", resumed, "join")).digests as string[]).length).toBe(2);
      expect((await checkStore(store)).problems).toEqual([]);
    } finally {
      run.child.kill("SIGKILL");
      await store.close?.();
      await proxy.close();
      await s3.close();
    }
  }, 240_000);
});
