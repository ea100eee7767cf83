/** Artifacts through real runs: values JSON would lose, dedupe by content, unserializable values. */
import { cpSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { blobFiles, cli, cliRun, fixture, latestRun, matchesBlobName, stepArtifacts, tempStore } from "../_helpers.ts";

const MB = 1024 * 1024;

describe("artifacts", () => {
  it("round-trip Date, Map, Set, BigInt, typed arrays, cyclic objects and empty buffers between tasks", async () => {
    const ds = tempStore();
    const res = await cliRun(fixture("values.ts"), ds);
    expect(res.code, res.stderr).toBe(0);
    const run = latestRun(ds, "ValuesFlow");
    // `check` ran in a worker process and verified every value it received.
    const [check] = await stepArtifacts(ds, "ValuesFlow", run.runId, "check");
    expect(check!.report).toEqual(["date", "map", "set", "bigint", "floats", "ints", "empty", "emptyBuffer", "cyclic"].map((k) => `${k}:ok`));
    // And the end step's copies (passed by reference) read back intact here.
    const [end] = await stepArtifacts(ds, "ValuesFlow", run.runId, "end");
    expect(end!.date).toEqual(new Date("2024-02-29T12:34:56.789Z"));
    expect(end!.map).toEqual(new Map<string, unknown>([["a", 1], ["nested", new Map([[1, "one"]])]]));
    expect(end!.set).toEqual(new Set<unknown>([1, "two", 3n]));
    expect(end!.big).toBe(2n ** 100n + 1n);
    expect(end!.ints).toEqual(new Int32Array([-1, 2 ** 31 - 1, 7]));
    expect(end!.empty).toEqual(new Uint8Array(0));
    expect((end!.emptyBuffer as ArrayBuffer).byteLength).toBe(0);
    const c = end!.cyclic as Record<string, any>;
    expect(c.self).toBe(c);
    expect(c.kids[0].parent).toBe(c);
    // Unchanged artifacts are passed by reference: end's refs are check's refs.
    const tasks = join(ds, "flows", "ValuesFlow", "runs", run.runId, "tasks");
    const refs = (step: string) => {
      const [id] = readdirSync(join(tasks, step));
      return JSON.parse(readFileSync(join(tasks, step, id!, "done.json"), "utf8")).artifacts;
    };
    expect(refs("end").cyclic).toEqual(refs("start").cyclic);
  });

  it("stores the same 50 MB value written by two tasks once", async () => {
    const ds = tempStore();
    const res = await cliRun(fixture("dedupe.ts"), ds);
    expect(res.code, res.stderr).toBe(0);
    const blobs = blobFiles(ds);
    const big = blobs.filter((b) => b.size >= 50 * MB);
    expect(big).toHaveLength(1);
    const total = blobs.reduce((s, b) => s + b.size, 0);
    expect(total).toBeLessThan(51 * MB);
    const [join_] = await stepArtifacts(ds, "DedupeFlow", latestRun(ds, "DedupeFlow").runId, "join");
    expect(join_!.sizes).toEqual([50 * MB, 50 * MB]);
  });

  it("an artifact holding a function fails the task naming the artifact and the path, and damages nothing", async () => {
    const ds = tempStore();
    const res = await cliRun(fixture("function-artifact.ts"), ds);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/artifact 'model' cannot be serialized: model\.layers\[1\]\.activate is a function/);
    const run = latestRun(ds, "FunctionArtifactFlow");
    expect(run.status).toBe("failed");
    expect(run.error.pathspec).toMatch(/\/bad\//);
    const tasks = join(ds, "flows", "FunctionArtifactFlow", "runs", run.runId, "tasks");
    const [badId] = readdirSync(join(tasks, "bad"));
    expect(existsSync(join(tasks, "bad", badId!, "done.json"))).toBe(false);
    // What start persisted still reads back (hash-verified), and every blob matches its name.
    const [start] = await stepArtifacts(ds, "FunctionArtifactFlow", run.runId, "start");
    expect(start!.good).toEqual([1, 2, 3]);
    for (const b of blobFiles(ds)) expect(matchesBlobName(readFileSync(b.path), basename(b.path))).toBe(true);
  });

  it("a datastore written before BLAKE3 (SHA-256 addresses) still reads, and resumes: unchanged artifacts keep their old references", async () => {
    const ds = tempStore();
    cpSync(fixture("old-store"), ds, { recursive: true });
    const origin = latestRun(ds, "OldStoreFlow");
    expect(origin.status).toBe("failed");
    const [start] = await stepArtifacts(ds, "OldStoreFlow", origin.runId, "start");
    expect(start!.bytes).toEqual(new Uint8Array(100_000).map((_, i) => i % 251));
    expect((start!.numbers as number[]).at(-1)).toBe(999 / 4);
    expect(start!.label).toBe("written before BLAKE3");

    const res = await cli(["resume", fixture("old-store.ts"), "--origin-run-id", origin.runId, "--datastore", ds]);
    expect(res.code, res.stderr).toBe(0);
    const run = latestRun(ds, "OldStoreFlow");
    expect(run.runId).not.toBe(origin.runId);
    expect(run.status).toBe("succeeded");
    const done = (runId: string, step: string) => {
      const dir = join(ds, "flows", "OldStoreFlow", "runs", runId, "tasks", step);
      const [id] = readdirSync(dir).filter((e) => !e.endsWith(".json"));
      return JSON.parse(readFileSync(join(dir, id!, "done.json"), "utf8")).artifacts;
    };
    const old = done(origin.runId, "start");
    const sum = done(run.runId, "sum");
    // Read (and so re-hashed) by `sum` but unchanged: passed on by the old SHA-256 reference.
    expect(sum.bytes).toEqual(old.bytes);
    expect(sum.numbers).toEqual(old.numbers);
    expect(old.bytes.alg).toBeUndefined();
    const [sumValues] = await stepArtifacts(ds, "OldStoreFlow", run.runId, "sum");
    expect(sumValues!.total).toBe(((999 / 4) * 1000) / 2 + Array.from({ length: 100_000 }, (_, i) => i % 251).reduce((a, b) => a + b, 0));
    const [end] = await stepArtifacts(ds, "OldStoreFlow", run.runId, "end");
    expect(end!.label).toBe("written before BLAKE3, resumed");
    // Old and new blobs side by side, each verified by its own algorithm.
    for (const b of blobFiles(ds)) expect(matchesBlobName(readFileSync(b.path), basename(b.path))).toBe(true);
  });

  it("new artifacts of 1 MiB or more are addressed by BLAKE3 where the host has it natively, by SHA-256 when TSFLOW_HASH=sha256", async () => {
    for (const [hash, alg] of [
      ["", "blake3"],
      ["sha256", undefined],
    ] as const) {
      const ds = tempStore();
      const res = await cli(["run", fixture("handoff.ts"), "--datastore", ds], { env: { TSFLOW_HASH: hash } });
      expect(res.code, res.stderr).toBe(0);
      const run = latestRun(ds, "HandoffFlow");
      const refs = JSON.parse(readFileSync(join(ds, "flows", "HandoffFlow", "runs", run.runId, "tasks", "start", "1", "done.json"), "utf8")).artifacts;
      expect(refs.big.alg).toBe(alg);
      expect(refs.other.alg).toBe(alg);
      expect(refs.pids.alg).toBeUndefined();
      const [use] = await stepArtifacts(ds, "HandoffFlow", run.runId, "use");
      expect(use!.seen).toBe("1,1,0.5");
      for (const b of blobFiles(ds)) expect(matchesBlobName(readFileSync(b.path), basename(b.path))).toBe(true);
    }
  });

  it("a worker hands a big value to its next task without reading it back, unless it changed in between", async () => {
    for (const mutate of ["", "1"]) {
      const ds = tempStore();
      const log = join(ds, "reads.log");
      const res = await cli(["run", fixture("handoff.ts"), "--datastore", `./test/fixtures/reads-logged-store.ts:dir=${ds},log=${log}`, "--max-workers", "1"], {
        env: { HANDOFF_MUTATE: mutate },
      });
      expect(res.code, res.stderr).toBe(0);
      const [use] = await stepArtifacts(ds, "HandoffFlow", latestRun(ds, "HandoffFlow").runId, "use");
      const pids = use!.pids as number[];
      // The scenario needs both tasks in one worker; the process executor reuses its warm one.
      expect(pids[1]).toBe(pids[0]);
      // Written through a reference start kept: the handed-over value no longer hashes to its
      // reference, so `use` reads the stored one.
      expect(use!.seen).toBe("1,1,0.5");
      const refs = JSON.parse(readFileSync(join(ds, "flows", "HandoffFlow", "runs", latestRun(ds, "HandoffFlow").runId, "tasks", "start", "1", "done.json"), "utf8")).artifacts;
      const reads = existsSync(log) ? readFileSync(log, "utf8") : "";
      expect(reads.includes(refs.other.hash)).toBe(false);
      expect(reads.includes(refs.big.hash)).toBe(mutate === "1");
    }
  });
});
