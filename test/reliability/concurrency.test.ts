/**
 * Many runs of one flow at once into one datastore: every run succeeds under its own id, and
 * every run's artifacts are its own (the end artifact echoes the run's own parameter).
 */
import { describe, expect, it } from "vitest";
import { spawnCli, tempStore } from "../_helpers.ts";
import { startS3rver } from "../_s3rver.ts";
import { checkConsistency, endArtifacts, rfixture, runDirs } from "./_util.ts";

const FLOW = rfixture("slow-foreach.ts");
const expectedTotal = (n: number) => Array.from({ length: n }, (_, i) => i * i).reduce((a, b) => a + b, 0);

describe("concurrent runs", () => {
  it("10 runs of one flow at once on the fs datastore: distinct ids, each run keeps its own artifacts", async () => {
    const root = tempStore();
    const runs = Array.from({ length: 10 }, (_, seed) =>
      spawnCli(["run", FLOW, "--datastore", root, "--n", "4", "--ms", "10", "--seed", String(seed), "--max-workers", "1"]),
    );
    const exits = await Promise.all(runs.map((r) => r.exited));
    for (const [i, e] of exits.entries()) expect(e.code, runs[i]!.stderr()).toBe(0);
    const ids = runDirs(root, "SlowForeachFlow");
    expect(new Set(ids).size).toBe(10);
    const seeds = new Set<unknown>();
    for (const id of ids) {
      const end = await endArtifacts(root, "SlowForeachFlow", id);
      expect(end.total).toBe(expectedTotal(4));
      // The seed parameter made each run's chunks distinct: join checked them, end echoes it.
      seeds.add(end.echo);
      expect(end.seed).toBe(end.echo);
    }
    expect(seeds.size).toBe(10);
    expect((await checkConsistency(root)).problems).toEqual([]);
  }, 120_000);

  it("3 runs at once on s3rver: all succeed with their own artifacts", async () => {
    const s3 = await startS3rver({ buckets: ["conc"] });
    try {
      const env = { TSFLOW_S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };
      const runs = Array.from({ length: 3 }, (_, seed) =>
        spawnCli(["run", FLOW, "--datastore", "s3://conc/x", "--n", "3", "--ms", "10", "--seed", String(seed + 100), "--max-workers", "1"], env),
      );
      const exits = await Promise.all(runs.map((r) => r.exited));
      for (const [i, e] of exits.entries()) expect(e.code, runs[i]!.stderr()).toBe(0);
      const ids = runs.map((r) => /Run SlowForeachFlow\/(\S+) succeeded/.exec(r.stdout())?.[1]);
      expect(new Set(ids).size).toBe(3);
      const { default: s3Datastore } = await import("../../plugins/datastores/s3.ts");
      const { default: nodeHost } = await import("../../plugins/host/node.ts");
      const { loadArtifact } = await import("../../core/artifacts.ts");
      const { getJson, listAll } = await import("../../core/_datastore.ts");
      const store = s3Datastore({ url: "s3://conc/x", endpoint: s3.endpoint, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } });
      for (const [i, id] of ids.entries()) {
        const keys = (await listAll(store, `flows/SlowForeachFlow/runs/${id}/tasks/end/`)).filter((k) => k.endsWith("done.json"));
        expect(keys).toHaveLength(1);
        const done = (await getJson<{ artifacts: Record<string, any> }>(store, keys[0]!))!;
        expect(await loadArtifact(store, nodeHost(), done.artifacts.echo, "echo")).toBe(i + 100);
        expect(await loadArtifact(store, nodeHost(), done.artifacts.total, "total")).toBe(expectedTotal(3));
      }
      await store.close?.();
    } finally {
      await s3.close();
    }
  }, 120_000);
});
