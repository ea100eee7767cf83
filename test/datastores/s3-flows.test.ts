/**
 * Whole flows on the s3 datastore against a real s3rver on 127.0.0.1, through the real CLI,
 * and the faults a user meets with S3: unreachable, missing bucket, connection cut mid-upload.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson } from "../../core/_datastore.ts";
import { doneKey, runIndexKey, runsPrefix } from "../../core/_layout.ts";
import { loadArtifact } from "../../core/artifacts.ts";
import { createClient } from "../../core/client.ts";
import type { DoneRecord } from "../../core/task.ts";
import type { Datastore } from "../../core/types.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import nodeHost from "../../plugins/host/node.ts";
import { cli } from "../_helpers.ts";
import { closedPort, type RunningS3rver, S3RVER_CREDENTIALS, startDroppingProxy, startS3rver } from "../_s3rver.ts";

const host = nodeHost();

const awsEnv = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: "us-east-1" };

async function tsflow(args: string[], env: Record<string, string>) {
  const r = await cli(args, { env: { ...awsEnv, ...env }, timeoutMs: 120_000 });
  return { code: r.code ?? 1, out: r.stdout, err: r.stderr };
}

const runIdOf = (out: string) => /Run \w+\/(\S+) (succeeded|failed)/.exec(out)?.[1];

describe("flows on the s3 datastore (s3rver)", () => {
  let s3: RunningS3rver;
  let store: Datastore;
  let env: Record<string, string>;

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ["flows"] });
    env = { TSFLOW_S3_ENDPOINT: s3.endpoint };
    store = s3Datastore({ url: "s3://flows/team", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
  });
  afterAll(async () => {
    await store?.close?.();
    await s3?.close();
  });

  it("runs pets and foreach end to end, and the artifacts read back from S3", async () => {
    const pets = await tsflow(["run", "examples/pets.ts", "--datastore", "s3://flows/team"], env);
    expect(pets.err).toBe("");
    expect(pets.code).toBe(0);
    expect(pets.out).toContain("total of 6 pets");
    const petsRun = runIdOf(pets.out)!;
    const end = (await store.list(`${runsPrefix("PetsFlow")}${petsRun}/tasks/end/`))[0]!.replace(/\/$/, "");
    const done = (await getJson<DoneRecord>(store, doneKey("PetsFlow", petsRun, "end", end)))!;
    expect(await loadArtifact(store, host, done.artifacts.pets!, "pets")).toEqual(["dogs", "cats", "budgies", "lions", "wolves", "elephants"]);

    const each = await tsflow(["run", "examples/foreach.ts", "--n", "12", "--datastore", "s3://flows/team"], env);
    expect(each.code).toBe(0);
    expect(each.out).toContain("sum of squares of 0..11 = 506");

    // The finished run is read whole (every task of every step) from its run index: a few
    // requests, not a few per task; the same run without its index costs more than one a task.
    const foreachRun = runIdOf(each.out)!;
    const readAll = async () => {
      const before = s3.requests.length;
      const client = createClient(s3Datastore({ url: "s3://flows/team", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS }), host);
      client.namespace(null);
      const run = await client.Flow.get("ForeachFlow").run(foreachRun);
      const tasks: string[] = [];
      for (const step of await run.steps()) for await (const t of step.tasks()) if (t.successful) tasks.push(t.pathspec);
      // s3rver reports each request over a pipe: wait until the count settles.
      let n = -1;
      while (n !== s3.requests.length) {
        n = s3.requests.length;
        await new Promise((r) => setTimeout(r, 200));
      }
      return { tasks, requests: n - before };
    };
    const indexed = await readAll();
    expect(indexed.tasks.length).toBe(15);
    expect(indexed.requests).toBeLessThanOrEqual(8);
    await store.delete(runIndexKey("ForeachFlow", foreachRun));
    const plain = await readAll();
    expect(plain.tasks).toEqual(indexed.tasks);
    expect(plain.requests).toBeGreaterThan(15);
  });

  it("names the datastore when S3 cannot be reached, and leaves nothing behind", async () => {
    const port = await closedPort();
    const r = await tsflow(["run", "examples/hello.ts", "--datastore", "s3://flows/unreachable"], { TSFLOW_S3_ENDPOINT: `http://127.0.0.1:${port}`, TSFLOW_S3_OUTAGE_SECONDS: "1" });
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/s3:\/\/flows\/unreachable/);
    expect(r.err).toMatch(/cannot reach/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it("names the bucket when it does not exist", async () => {
    const r = await tsflow(["run", "examples/hello.ts", "--datastore", "s3://no-such-bucket/x"], env);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/s3:\/\/no-such-bucket\/x/);
    expect(r.err).toMatch(/bucket/i);
  });

  it("fails cleanly when the connection drops mid-upload: no task looks done", async () => {
    const proxy = await startDroppingProxy(s3.port, 3 * 1024 * 1024);
    try {
      const r = await tsflow(["run", "test/fixtures/random-bytes.ts", "--mb", "24", "--datastore", "s3://flows/dropped"], { TSFLOW_S3_ENDPOINT: proxy.endpoint });
      expect(r.code).not.toBe(0);
      expect(`${r.out}${r.err}`).toMatch(/s3:\/\/flows\/dropped: the connection .* was dropped/);
      expect(r.out).not.toMatch(/\n\S*\s+at /);
      const runId = runIdOf(`${r.out}${r.err}`);
      expect(runId).toBeDefined();
      const dropped = s3Datastore({ url: "s3://flows/dropped", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
      // The step that was writing its artifact has no success marker.
      const startTasks = await dropped.list(`${runsPrefix("RandomBytesFlow")}${runId}/tasks/start/`);
      for (const t of startTasks) expect(await dropped.has(doneKey("RandomBytesFlow", runId!, "start", t.replace(/\/$/, "")))).toBe(false);
      await dropped.close?.();
    } finally {
      await proxy.close();
    }
  }, 120_000);
});
