/**
 * Chaos on S3 (#18.1): flows run through a proxy that injects latency, 500/503s, SlowDown,
 * connections reset mid-body and truncated responses at seeded rates. Every run succeeds with
 * the right artifacts, or fails with a clear `[s3]` error and resumes (through the same chaos)
 * to the same result; no blob is ever wrong and no done.json names a missing blob.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Datastore } from "../../core/types.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import { cli, STACK_LINE } from "../_helpers.ts";
import { type RunningS3rver, S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";
import { type ChaosProxy, startChaosProxy, totalFaults } from "./_chaos.ts";
import { checkStore, runStatuses, stepArtifactsOf } from "./_s3check.ts";
import { SOAK, rfixture } from "./_util.ts";
import { bytes } from "./fixtures/chaos.ts";

const awsEnv = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };
const SEED = Number(process.env.TSFLOW_CHAOS_SEED ?? 18);

/** What the chaos run's join must hold, computed here from the same seed. */
function expected(seed: number, mb: number, n: number) {
  const big = bytes(seed, mb * 1024 * 1024);
  const size = big.length / n;
  const digests = Array.from({ length: n }, (_, i) => createHash("sha256").update(big.subarray(i * size, (i + 1) * size)).digest("hex"));
  return { digests, bigDigest: createHash("sha256").update(big).digest("hex") };
}

describe("a read whose body is cut short after the headers", () => {
  it("is retried by the s3 datastore: every GET through a proxy truncating or resetting half the bodies returns the right bytes", async () => {
    const s3 = await startS3rver({ buckets: ["cut"] });
    const proxy = await startChaosProxy(s3.port, { seed: 5, rates: { truncated: 0.3, resetResponse: 0.3 }, target: (method) => method === "GET" });
    const direct = s3Datastore({ url: "s3://cut/t", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
    const flaky = s3Datastore({ url: "s3://cut/t", endpoint: proxy.endpoint, credentials: S3RVER_CREDENTIALS, maxAttempts: 8 });
    try {
      const values = Array.from({ length: 20 }, (_, i) => bytes(i + 1, 64 * 1024));
      await Promise.all(values.map((v, i) => direct.put(`k${i}`, v)));
      for (const [i, v] of values.entries()) expect(Buffer.from((await flaky.get(`k${i}`))!).equals(Buffer.from(v))).toBe(true);
      // Before the fix a single cut body failed the read: "connection ended after N of M bytes".
      expect(proxy.injected.truncated + proxy.injected.resetResponse).toBeGreaterThan(5);
    } finally {
      await direct.close?.();
      await flaky.close?.();
      await proxy.close();
      await s3.close();
    }
  });
});

describe("a big read in parallel ranges whose parts are cut short", () => {
  it("fetches each cut range again on its own and returns the right bytes", async () => {
    const s3 = await startS3rver({ buckets: ["cut"] });
    const proxy = await startChaosProxy(s3.port, { seed: 7, rates: { truncated: 0.25, resetResponse: 0.25 }, target: (method) => method === "GET" });
    const options = { url: "s3://cut/big", credentials: S3RVER_CREDENTIALS, multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 };
    const direct = s3Datastore({ ...options, endpoint: s3.endpoint });
    const flaky = s3Datastore({ ...options, endpoint: proxy.endpoint, maxAttempts: 8 });
    try {
      const values = [bytes(1, 26 * 1024 * 1024), bytes(2, 11 * 1024 * 1024)];
      for (const [i, v] of values.entries()) await direct.put(`v${i}`, v);
      for (const [i, v] of values.entries()) {
        const digest = createHash("sha256");
        let fed = 0;
        const hasher = { update: (b: Uint8Array) => {
            digest.update(b);
            fed += b.byteLength;
          }, digest: () => digest.digest("hex") };
        const got = (await flaky.get(`v${i}`, { hasher }))!;
        expect(Buffer.from(got).equals(Buffer.from(v))).toBe(true);
        // What was hashed on the way is the value, or (after a retry of the whole read) nothing to trust.
        if (fed === v.byteLength) expect(hasher.digest()).toBe(createHash("sha256").update(v).digest("hex"));
      }
      expect(proxy.injected.truncated + proxy.injected.resetResponse).toBeGreaterThan(1);
    } finally {
      await direct.close?.();
      await flaky.close?.();
      await proxy.close();
      await s3.close();
    }
  });
});

const NORMAL = { latency: 0.06, error500: 0.03, error503: 0.02, slowDown: 0.03, resetRequest: 0.02, resetResponse: 0.02, truncated: 0.03 };
/** Read by the proxy at every request: a test may make the weather worse for a while. */
const rates: Partial<Record<string, number>> = { ...NORMAL };

describe("chaos between tsflow and S3", () => {
  let s3: RunningS3rver;
  let proxy: ChaosProxy;
  let store: Datastore;
  const outcomes: { run: string; attempts: number; errors: string[] }[] = [];

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ["chaos"] });
    proxy = await startChaosProxy(s3.port, { seed: SEED, rates });
    store = s3Datastore({ url: "s3://chaos/team", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
  });
  afterAll(async () => {
    console.log(`chaos (seed ${SEED}): ${proxy?.requests} requests, ${proxy ? totalFaults(proxy) : 0} faults ${JSON.stringify(proxy?.injected)}; runs ${JSON.stringify(outcomes)}`);
    await store?.close?.();
    await proxy?.close();
    await s3?.close();
  });

  /**
   * Runs the flow through the chaos; resumes a failed run until it succeeds (at most 4 times).
   * `storm` makes the first run's weather bad enough that retries run out.
   */
  async function runThroughChaos(args: string[], storm?: Partial<Record<string, number>>) {
    const env = { ...awsEnv, TSFLOW_S3_ENDPOINT: proxy.endpoint };
    const before = new Set(Object.keys(await runStatuses(store, "ChaosFlow")));
    if (storm) Object.assign(rates, storm);
    let r = await cli(["run", rfixture("chaos.ts"), "--datastore", "s3://chaos/team", ...args], { env, timeoutMs: 240_000 });
    Object.assign(rates, NORMAL);
    const errors: string[] = [];
    let attempts = 1;
    while (r.code !== 0) {
      // The final status write's response was lost although the write landed: the run did succeed.
      const landed = /run ChaosFlow\/(\S+) succeeded, so there is nothing to resume/.exec(r.stderr);
      if (landed && !before.has(landed[1]!)) {
        outcomes.push({ run: landed[1]!, attempts, errors });
        return landed[1]!;
      }
      // A failure is one clear sentence naming the S3 key and what went wrong, never a stack.
      expect(r.stderr, r.stderr).toMatch(/\[s3\] cannot (read|write|check|list|delete) '[^']+' in s3:\/\/chaos\/team: /);
      expect(r.stderr).not.toMatch(STACK_LINE);
      errors.push(/\[s3\] cannot[^\n]*/.exec(r.stderr)![0].slice(0, 200));
      expect(attempts, `still failing after ${attempts} attempts: ${errors.join(" | ")}`).toBeLessThan(5);
      const origin = Object.keys(await runStatuses(store, "ChaosFlow"))
        .filter((id) => !before.has(id))
        .sort()
        .at(-1);
      // A run that failed before its run.json was written left nothing to resume (a resume
      // without an origin would pick an earlier test's run): run it again.
      r = origin
        ? await cli(["resume", rfixture("chaos.ts"), "--datastore", "s3://chaos/team", "--origin-run-id", origin], { env, timeoutMs: 240_000 })
        : await cli(["run", rfixture("chaos.ts"), "--datastore", "s3://chaos/team", ...args], { env, timeoutMs: 240_000 });
      attempts++;
    }
    const run = /Run \w+\/(\S+) succeeded/.exec(r.stdout)?.[1];
    expect(run, r.stdout + r.stderr).toBeDefined();
    outcomes.push({ run: run!, attempts, errors });
    return run!;
  }

  it("a foreach with small artifacts: succeeds or resumes to the right digests", async () => {
    const runs = SOAK ? 6 : 1;
    for (let i = 0; i < runs; i++) {
      const run = await runThroughChaos(["--seed", String(i + 1), "--mb", "1", "--n", "6", "--max-workers", "3"]);
      const join = await stepArtifactsOf(store, "ChaosFlow", run, "join");
      expect({ digests: join.digests, bigDigest: join.bigDigest }).toEqual(expected(i + 1, 1, 6));
    }
  }, 600_000);

  it("a big artifact (multipart upload, 17 MB): succeeds or resumes to the right digest", async () => {
    const run = await runThroughChaos(["--seed", "7", "--mb", "17", "--n", "2", "--max-workers", "2"]);
    const join = await stepArtifactsOf(store, "ChaosFlow", run, "join");
    expect({ digests: join.digests, bigDigest: join.bigDigest }).toEqual(expected(7, 17, 2));
  }, 600_000);

  it("a storm that outlasts the retries: the run fails with a clear error, and resume reaches the same digests", async () => {
    // 45% of requests fail (500, resets, cut bodies): 5 attempts all failing is ~2% per request,
    // so a run of ~150 requests almost surely fails somewhere; the resumes see normal weather.
    const run = await runThroughChaos(["--seed", "9", "--mb", "1", "--n", "6", "--max-workers", "3"], { error500: 0.25, resetResponse: 0.1, truncated: 0.1 });
    const join = await stepArtifactsOf(store, "ChaosFlow", run, "join");
    expect({ digests: join.digests, bigDigest: join.bigDigest }).toEqual(expected(9, 1, 6));
  }, 600_000);

  it("afterwards: every blob matches its hash, every done.json's artifacts exist and load", async () => {
    expect(totalFaults(proxy)).toBeGreaterThan(10);
    const c = await checkStore(store);
    expect(c.problems).toEqual([]);
    expect(c.doneTasks).toBeGreaterThan(0);
  }, 300_000);
});
