/**
 * @secrets: values fetched at task start from AWS Secrets Manager (the real SDK against the local
 * API in test/secrets-server), the environment, a dotenv file and a plugin file; set as that
 * task's environment only; and found nowhere else — not in any file of the datastore, the
 * terminal output, the job definitions or the logs of a run that used them, even when the step
 * prints one or fails with one in its message.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { BatchClient, DescribeJobDefinitionsCommand } from "@aws-sdk/client-batch";
import { runFlow } from "tsflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { cli, tempStore } from "../_helpers.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";
import { startBatchServer } from "../batch-server/server.ts";
import { dockerUnavailable, NODE_IMAGE } from "../executors/_docker.ts";
import { type SecretsServer, startSecretsServer } from "../secrets-server/server.ts";
import SecretSourcesFlow from "./fixtures/secret-sources.ts";
import { endArtifacts, rfixture, runDirs, walk } from "./_util.ts";

const VALUES = {
  DB_PASSWORD: "sm-db-pw-7f3a9c2e1b8d4f60",
  DB_USER: "app_user_41d9",
  API_TOKEN: "sm-api-token-2e8c4d6f0a1b",
  LOCAL_TOKEN: "env-token-5d2c8e1f9a7b",
  FILE_SECRET: "file-secret-3b9d7f1e2c4a",
  VAULT_SECRET: "vault-value-alpha-91c2e7",
};
const sha = (v: string) => createHash("sha256").update(v).digest("hex");
const FLOW = rfixture("secret-sources.ts");

let sm: SecretsServer;
let env: Record<string, string>;
beforeAll(async () => {
  sm = await startSecretsServer({ secrets: { "prod/db": JSON.stringify({ DB_PASSWORD: VALUES.DB_PASSWORD, DB_USER: VALUES.DB_USER }), "api-token": VALUES.API_TOKEN } });
  // The SDK's own variable for another endpoint: no tsflow-specific switch.
  env = { AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.url, AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: "us-east-1", LOCAL_TOKEN: VALUES.LOCAL_TOKEN };
});
afterAll(() => sm?.close());

/** Every file under `dir` holding `secret` (gzipped blobs searched inflated too). */
function leaks(dir: string, secret: string): string[] {
  return walk(dir).filter((f) => {
    const bytes = readFileSync(f);
    return bytes.includes(secret) || (bytes[0] === 0x1f && bytes[1] === 0x8b && gunzipSync(bytes).includes(secret));
  });
}

function expectNowhere(dir: string, text: string) {
  expect(walk(dir).length).toBeGreaterThan(5);
  for (const [name, value] of Object.entries(VALUES)) {
    expect(leaks(dir, value), name).toEqual([]);
    expect(text, name).not.toContain(value);
  }
}

const expectedSeen = { db: sha(VALUES.DB_PASSWORD), user: sha(VALUES.DB_USER), api: sha(VALUES.API_TOKEN), local: sha(VALUES.LOCAL_TOKEN), file: sha(VALUES.FILE_SECRET), vault: sha(VALUES.VAULT_SECRET) };

describe("@secrets", () => {
  it("fetches every kind of source at task start, for that task only, and leaves no value in the datastore or the output", async () => {
    const ds = tempStore();
    const before = sm.requests.length;
    // One warm worker runs both tasks: `end` must not inherit `start`'s secrets.
    const r = await cli(["run", FLOW, "--datastore", ds, "--max-workers", "1"], { env });
    expect(r.code, r.stderr).toBe(0);
    const end = await endArtifacts(ds, "SecretSourcesFlow", runDirs(ds, "SecretSourcesFlow")[0]!);
    expect(end.seen).toEqual(expectedSeen);
    expect(end.after).toEqual({ db: false, api: false, file: false, vault: false });
    // Fetched by the real SDK (signed requests), once per source, by the task that has @secrets.
    expect(sm.requests.slice(before).map((q) => [q.operation, q.secretId, q.signed])).toEqual([
      ["GetSecretValue", "prod/db", true],
      ["GetSecretValue", "api-token", true],
    ]);
    // The step printed two values: they reached the terminal (and the stored log) masked.
    expect(r.stdout).toContain("connecting as **** with password ****");
    // The viewer shows the run, the tasks, their logs and artifacts: all without a value.
    const app = createViewerApp({ store: fsDatastore({ root: ds }), host: nodeHost() });
    const runId = runDirs(ds, "SecretSourcesFlow")[0]!;
    const base = `SecretSourcesFlow/${runId}`;
    const pages = ["/", "/runs", `/runs/${base}`, `/runs/${base}/start/1`, `/runs/${base}/end/2`, `/api/live/${base}`, `/api/live/${base}/start/1`, `/artifacts/${base}/start/1/seen?format=json`];
    let viewer = "";
    for (const page of pages) {
      const res = await app.request(page);
      expect(res.status, page).toBe(200);
      viewer += await res.text();
    }
    expect(viewer).toContain("with password ****");
    expectNowhere(ds, r.stdout + r.stderr + viewer);
    // The search does find what is there: the value's hash, which the step stored.
    expect(leaks(ds, sha(VALUES.DB_PASSWORD)).length).toBeGreaterThan(0);
  });

  it("masks a value in a step's error, in the terminal and in the stored result", async () => {
    const ds = tempStore();
    const r = await cli(["run", FLOW, "--datastore", ds, "--explode"], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cannot connect with ****");
    expectNowhere(ds, r.stdout + r.stderr);
  });

  it("fails the task naming the source when a secret cannot be fetched", async () => {
    const ds = tempStore();
    const missing = await cli(["run", FLOW, "--datastore", ds, "--config", 'sources={"sources":["aws-secrets-manager:prod/nope"]}'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("@secrets source 'aws-secrets-manager:prod/nope' failed: ResourceNotFoundException: Secrets Manager can't find the specified secret.");
    const unset = await cli(["run", FLOW, "--datastore", ds, "--config", 'sources={"sources":["env:NOT_SET_ANYWHERE"]}'], { env });
    expect(unset.stderr).toContain("@secrets source 'env:NOT_SET_ANYWHERE' failed: environment variable NOT_SET_ANYWHERE is not set");
    const clash = await cli(["run", FLOW, "--datastore", ds, "--config", 'sources={"sources":["env:LOCAL_TOKEN","env:LOCAL_TOKEN"]}'], { env });
    expect(clash.stderr).toContain("@secrets sources 'env:LOCAL_TOKEN' and 'env:LOCAL_TOKEN' both set LOCAL_TOKEN");
    const badType = await cli(["run", FLOW, "--datastore", ds, "--config", 'sources={"sources":["vault9:x"]}'], { env });
    expect(badType.stderr).toContain("unknown secrets source type 'vault9'");
    for (const r of [missing, unset, clash, badType]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it.each(["process", "inline"] as const)("works from the library (runFlow, %s executor)", async (executor) => {
    const ds = tempStore();
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      const r = await runFlow(SecretSourcesFlow, { datastore: ds, executor });
      expect(r.successful, JSON.stringify(r.error)).toBe(true);
      const end = await endArtifacts(ds, "SecretSourcesFlow", r.runId);
      expect(end.seen).toEqual(expectedSeen);
      // Inline tasks share this process: the secrets were set for `start` only.
      expect(end.after).toEqual({ db: false, api: false, file: false, vault: false });
      expect(process.env.DB_PASSWORD).toBeUndefined();
      expectNowhere(ds, "");
    } finally {
      process.env = saved;
    }
  });

  it("AWS Batch (local server, s3rver): fetched inside the job; no value in the bucket, the job definitions or the job logs", async () => {
    const [s3, batch] = await Promise.all([startS3rver({ buckets: ["secrets"] }), startBatchServer({ executor: "process", transitionMs: 20 })]);
    // Jobs of the local Batch server get this process's endpoints and S3 credentials (on AWS the
    // job role gives them), nothing else of it. The env: source is left out: a job has no such variable.
    const saved = { ...process.env };
    Object.assign(process.env, env, { TSFLOW_S3_ENDPOINT: s3.endpoint });
    delete process.env.LOCAL_TOKEN;
    const sources = { sources: ["aws-secrets-manager:prod/db", "aws-secrets-manager:api-token", `file:${rfixture("secrets/local.env")}`, `${rfixture("secrets/vault.ts")}:alpha`] };
    try {
      const before = sm.requests.length;
      const r = await cli(["run", FLOW, "--datastore", "s3://secrets/batch", "--executor", "batch", "--config", `sources=${JSON.stringify(sources)}`], {
        env: { ...env, LOCAL_TOKEN: "", TSFLOW_S3_ENDPOINT: s3.endpoint, TSFLOW_BATCH_ENDPOINT: batch.url, TSFLOW_BATCH_QUEUE: "default", TSFLOW_BATCH_IMAGE: NODE_IMAGE },
        timeoutMs: 240_000,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("with password ****");
      expect(sm.requests.slice(before).filter((q) => q.operation === "GetSecretValue")).toHaveLength(2);
      const jobs = batch.jobs.list();
      expect(jobs).toHaveLength(2);
      const logs = jobs.map((j) => batch.jobs.logs(j.jobId!)).join("\n");
      const client = new BatchClient({ endpoint: batch.url, region: "us-east-1", credentials: S3RVER_CREDENTIALS });
      const defs = await client.send(new DescribeJobDefinitionsCommand({}));
      client.destroy();
      expect(defs.jobDefinitions?.length).toBeGreaterThan(0);
      // The jobs' own environment (container overrides) too: only the sources' names travel.
      const submitted = JSON.stringify(jobs.map((j) => j.container));
      expect(submitted).toContain("aws-secrets-manager:prod/db");
      expectNowhere(s3.dir, `${r.stdout}${r.stderr}${logs}${JSON.stringify(defs.jobDefinitions)}${submitted}`);
    } finally {
      process.env = saved;
      await Promise.all([batch.close(), s3.close()]);
    }
  }, 300_000);

  const noDocker = dockerUnavailable();
  it.skipIf(noDocker)(`Docker${noDocker ? ` (skipped: ${noDocker})` : ""}: fetched inside the container; no value in the datastore or the output`, async () => {
    const ds = tempStore();
    const before = sm.requests.length;
    const r = await cli(["run", FLOW, "--datastore", ds, "--executor", "docker", "--config", 'sources={"sources":["aws-secrets-manager:prod/db","aws-secrets-manager:api-token"]}'], {
      env: { ...env, TSFLOW_DOCKER_IMAGE: NODE_IMAGE },
      timeoutMs: 240_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("with password ****");
    expect(sm.requests.slice(before).filter((q) => q.operation === "GetSecretValue")).toHaveLength(2);
    const runId = runDirs(ds, "SecretSourcesFlow")[0]!;
    const started = JSON.parse(readFileSync(`${ds}/flows/SecretSourcesFlow/runs/${runId}/tasks/start/1/0/start.json`, "utf8"));
    expect(started.executor).toBe("docker");
    const end = await endArtifacts(ds, "SecretSourcesFlow", runId);
    expect(end.seen).toMatchObject({ db: expectedSeen.db, api: expectedSeen.api });
    expectNowhere(ds, r.stdout + r.stderr);
  }, 300_000);
});
