/**
 * A log-heavy task on the S3 datastore writes O(output) bytes to S3 (issue #12 item 5): 10 MB
 * of output over 60 s used to be rewritten whole every second (~300 MB). The time is scaled to
 * 6 s here; `TSFLOW_SOAK=1` runs the full 60 s. Bytes are counted at the S3 server.
 */
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { cli } from "../_helpers.ts";
import { type RunningS3rver, S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";
import { fixture } from "../_helpers.ts";

const SECONDS = process.env.TSFLOW_SOAK === "1" ? 60 : 6;
const MB = 10;
let s3: RunningS3rver;

beforeAll(async () => {
  s3 = await startS3rver({ buckets: ["logs"] });
});
afterAll(async () => {
  await s3?.close();
});

it(`a task printing ${MB} MB over ${SECONDS} s writes its output to S3 about once`, async () => {
  const env = { TSFLOW_S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: "us-east-1" };
  const t0 = Date.now();
  const r = await cli(["run", fixture("log-heavy.ts"), "--mb", String(MB), "--seconds", String(SECONDS), "--datastore", "s3://logs/team"], { env, timeoutMs: (SECONDS + 120) * 1000 });
  expect(r.code, r.stderr).toBe(0);
  const output = MB * 1024 * 1024;
  // The log reads back whole through the CLI.
  const runId = /Run LogHeavyFlow\/(\S+) succeeded/.exec(r.stdout)![1]!;
  const logs = await cli(["logs", `LogHeavyFlow/${runId}/talk`, "--datastore", "s3://logs/team"], { env, timeoutMs: 60_000 });
  expect(logs.stdout.length).toBe(output);
  // s3rver's request log comes over a pipe and may trail the run's exit when this process is
  // starved; once it has the reads of `logs` above, it has every write of the run before them.
  const chunk = /\/tasks\/talk\/\d+\/0\/stdout\//;
  await vi.waitFor(() => expect(s3.requests.some((req) => req.startsWith("GET ") && chunk.test(req))).toBe(true), { timeout: 15_000 });
  const logPuts = s3.requests.map((req, i) => ({ req, bytes: s3.requestBytes[i]! })).filter(({ req }) => req.startsWith("PUT ") && chunk.test(req));
  const written = logPuts.reduce((a, p) => a + p.bytes, 0);
  console.log(`log-heavy on s3: ${output} bytes of output in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${written} bytes in ${logPuts.length} PUTs (${(written / output).toFixed(3)}× the output)`);
  expect(written).toBeGreaterThanOrEqual(output);
  expect(written).toBeLessThan(output * 1.01);
}, (SECONDS + 180) * 1000);
