import { expect, it } from "vitest";
import dockerExecutor from "../../plugins/executors/docker.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import s3Datastore from "../../plugins/datastores/s3.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";
import { cli } from "../_helpers.ts";
import { dockerUnavailable, NODE_IMAGE } from "./_docker.ts";
import { executorSuite, runFixture } from "../../testing/executors.ts";

const skipAll = dockerUnavailable();

executorSuite("docker", async () => ({ executor: dockerExecutor({ image: NODE_IMAGE }) }), {
  skipAll,
  additionalTests: (get) => {
    it("stores the flow's code package once and reuses it while the flow is unchanged", async () => {
      await runFixture(get(), "OkFlow");
      const before = await get().datastore.list("packages/");
      await runFixture(get(), "OkFlow");
      expect(before).toHaveLength(1);
      expect(await get().datastore.list("packages/")).toEqual(before);
    });

    it("runs one flow across executors: start and end in processes, a @docker step in a container", async () => {
      const dir = await mkdtemp(join(tmpdir(), "tsflow-mixed-"));
      try {
        const out = await cli(["run", "test/executors/fixtures/mixed.ts", "--datastore", dir], { env: { TSFLOW_NODE_IMAGE: NODE_IMAGE }, timeoutMs: 120_000 });
        expect(out.stdout + out.stderr).toContain("places: host,container,host");
        expect(out.code).toBe(0);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it("runs against an s3 datastore, reached over the host network", async () => {
      const s3 = await startS3rver({ buckets: ["tsflow"] });
      const saved = { ...process.env };
      Object.assign(process.env, { TSFLOW_S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" });
      const executor = dockerExecutor({ image: NODE_IMAGE });
      try {
        const datastore = s3Datastore({ url: "s3://tsflow/docker", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
        const run = await runFixture({ executor, datastore }, "OkFlow");
        expect(run.error).toBeUndefined();
        expect(await datastore.list("packages/")).toHaveLength(1);
      } finally {
        await executor.close?.();
        process.env = saved;
        await s3.close();
      }
    });

    it("runs the pets and foreach examples green from the CLI", async () => {
      const dir = await mkdtemp(join(tmpdir(), "tsflow-docker-cli-"));
      try {
        const env = { TSFLOW_DOCKER_IMAGE: NODE_IMAGE };
        const pets = await cli(["run", "examples/pets.ts", "--executor", "docker", "--datastore", dir], { env: env, timeoutMs: 120_000 });
        expect(pets.stdout + pets.stderr).toContain("total of 6 pets");
        const foreach = await cli(["run", "examples/foreach.ts", "--n", "20", "--executor", "docker", "--with", `docker:image=${NODE_IMAGE}`, "--datastore", dir], { timeoutMs: 120_000 });
        expect(foreach.stdout + foreach.stderr).toContain("sum of squares of 0..19 = 2470");
        expect([pets.code, foreach.code]).toEqual([0, 0]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  },
});

executorSuite("docker (fresh containers)", async () => ({ executor: dockerExecutor({ image: NODE_IMAGE, fresh: true }) }), { skipAll });
