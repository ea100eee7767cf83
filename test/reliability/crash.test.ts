/**
 * Crashes: SIGKILL the orchestrator at seeded random points of a foreach run, SIGKILL a worker
 * mid-task and mid-artifact-write. Afterwards the datastore must hold no task that looks done
 * but is not, and a run whose orchestrator died must read as abandoned, not running forever.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ABANDONED_AFTER_MS, effectiveStatus, runStatus } from "../../core/_status.ts";
import { cli, cliRun, spawnCli, tempStore, waitFor } from "../_helpers.ts";
import { alive, checkConsistency, childrenOf, countDone, endArtifacts, workersOf, prng, rfixture, runDirs, SOAK, sleep, walk } from "./_util.ts";

const FLOW = rfixture("slow-foreach.ts");
const RESUME_EXISTS = existsSync(new URL("../../cli/commands/resume.ts", import.meta.url));

describe("effectiveStatus", () => {
  const now = 1_000_000_000;
  it("keeps final statuses and live runs", () => {
    expect(effectiveStatus({ status: "succeeded" }, undefined, now)).toBe("succeeded");
    expect(effectiveStatus({ status: "failed" }, now - 10 * ABANDONED_AFTER_MS, now)).toBe("failed");
    expect(effectiveStatus({ status: "running" }, now - 5_000, now)).toBe("running");
    expect(effectiveStatus({ status: "running" }, now - ABANDONED_AFTER_MS, now)).toBe("running");
  });
  it("running + heartbeat older than 60 s is abandoned", () => {
    expect(effectiveStatus({ status: "running" }, now - ABANDONED_AFTER_MS - 1, now)).toBe("abandoned");
    expect(effectiveStatus({ status: "running", createdAt: now - 120_000 }, undefined, now)).toBe("abandoned");
    expect(effectiveStatus({ status: "running", createdAt: now - 1_000 }, undefined, now)).toBe("running");
    expect(effectiveStatus({ status: "running" }, undefined, now)).toBe("abandoned");
  });
});

/**
 * Starts a run, waits `delayMs` after its run directory appears (and, with `ready`, until that
 * holds of the run's directory), SIGKILLs the orchestrator.
 */
async function killOrchestrator(root: string, delayMs: number, args: string[] = [], ready?: (runDir: string) => boolean) {
  // 12 items of 150 ms on 2 workers: ≥ 0.9 s of run, so every kill point (0-700 ms) lands while it
  // runs (with 80 ms, the faster task path finished some runs before the later points).
  const run = spawnCli(["run", FLOW, "--datastore", root, "--n", "12", "--ms", "150", "--max-workers", "2", ...args]);
  const before = runDirs(root, "SlowForeachFlow").length;
  await waitFor(() => runDirs(root, "SlowForeachFlow").length > before || run.child.exitCode !== null, 20_000, "the run to start");
  if (ready) {
    const dir = join(root, "flows", "SlowForeachFlow", "runs", runDirs(root, "SlowForeachFlow").at(-1)!);
    await waitFor(() => ready(dir) || run.child.exitCode !== null, 20_000, "the run to be ready for the kill");
  }
  await sleep(delayMs);
  const workers = childrenOf(run.child.pid!);
  run.child.kill("SIGKILL");
  const { signal } = await run.exited;
  return { signal, workers, runId: runDirs(root, "SlowForeachFlow").at(-1)! };
}

describe("SIGKILL of the orchestrator", () => {
  const points = SOAK ? 24 : 4;
  const rand = prng(20261129);
  const delays = Array.from({ length: points }, () => Math.floor(rand() * 700));

  it.each(delays.map((d, i) => [i, d]))("kill point %i (%i ms after the run starts) leaves a consistent datastore", async (_i, delay) => {
    const root = tempStore();
    const { signal, workers, runId } = await killOrchestrator(root, delay);
    // Workers notice their orchestrator is gone (stdin closes) and exit.
    await waitFor(() => workers.every((w) => !alive(w)), 10_000, "orphaned workers to exit");
    const c = await checkConsistency(root);
    expect(c.problems).toEqual([]);
    console.log(`[reliability] kill at ${delay} ms: ${signal ?? "finished first"}, ${c.doneTasks}/15 tasks done, ${c.tempFiles} temp files left`);
    const run = JSON.parse(readFileSync(join(root, "flows", "SlowForeachFlow", "runs", runId, "run.json"), "utf8"));
    if (signal === "SIGKILL") {
      // Killed before it could finish: still "running" on disk, and effectiveStatus sees through it later.
      if (run.status === "running") {
        const { default: fsDatastore } = await import("../../plugins/datastores/fs.ts");
        const store = fsDatastore({ root });
        expect(await runStatus(store, "SlowForeachFlow", runId)).toBe("running");
        expect(await runStatus(store, "SlowForeachFlow", runId, Date.now() + ABANDONED_AFTER_MS + 6_000)).toBe("abandoned");
      }
    } else {
      expect(run.status).toBe("succeeded");
    }
  });

  it("a killed run's heartbeat stops; backdated past 60 s it reads as abandoned", async () => {
    const root = tempStore();
    // Killed once its first heartbeat is written (the directory appears with run.json, a moment
    // before it): the test is about a heartbeat that stops, not one that never began.
    const { runId } = await killOrchestrator(root, 300, [], (dir) => existsSync(join(dir, "heartbeat")));
    const { default: fsDatastore } = await import("../../plugins/datastores/fs.ts");
    const store = fsDatastore({ root });
    const hb = join(root, "flows", "SlowForeachFlow", "runs", runId, "heartbeat");
    expect(existsSync(hb)).toBe(true);
    const beat = Number(readFileSync(hb, "utf8"));
    await sleep(5_500); // longer than the 5 s heartbeat period: nobody touches it any more
    expect(Number(readFileSync(hb, "utf8"))).toBe(beat);
    expect(await runStatus(store, "SlowForeachFlow", runId)).toBe("running");
    writeFileSync(hb, String(Date.now() - ABANDONED_AFTER_MS - 1_000));
    expect(await runStatus(store, "SlowForeachFlow", runId)).toBe("abandoned");
  });

  if (RESUME_EXISTS) {
    it("resume finishes a killed run with the results of an uninterrupted run", async () => {
      const root = tempStore();
      const { runId } = await killOrchestrator(root, 500);
      const r = await cli(["resume", FLOW, "--origin-run-id", runId, "--datastore", root], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      const resumed = runDirs(root, "SlowForeachFlow").at(-1)!;
      expect(resumed).not.toBe(runId);
      const ok = await cliRun(FLOW, root, "--n", "12", "--ms", "150");
      expect(ok.code).toBe(0);
      const clean = runDirs(root, "SlowForeachFlow").at(-1)!;
      expect(await endArtifacts(root, "SlowForeachFlow", resumed)).toEqual(await endArtifacts(root, "SlowForeachFlow", clean));
      expect((await checkConsistency(root)).problems).toEqual([]);
    });
  } else {
    it.todo("resume (cli/commands/resume.ts) finishes a run whose orchestrator was SIGKILLed, with results identical to an uninterrupted run");
  }
});

describe("SIGKILL of a worker", () => {
  it("mid-task: the task fails cleanly (WorkerCrashed) and --with retry finishes the run", async () => {
    const root = tempStore();
    const run = spawnCli(["run", FLOW, "--datastore", root, "--n", "6", "--ms", "400", "--max-workers", "2", "--with", "retry"]);
    // A task on the process executor records itself (task.json) once it has run 200 ms.
    await waitFor(() => walk(root).some((f) => f.includes("/tasks/work/") && f.endsWith("task.json")), 20_000, "a work task to start");
    // Workers start on demand: once both exist, both run one of the six 400 ms work tasks (a
    // worker found earlier may be the one that ran `start`, idle for a moment). Kill them all.
    await waitFor(() => workersOf(run.child.pid!).length >= 2, 20_000, "both workers to run work tasks");
    for (const worker of workersOf(run.child.pid!)) process.kill(worker, "SIGKILL");
    const { code } = await run.exited;
    expect(run.stderr() + run.stdout()).toMatch(/exited with signal SIGKILL/);
    expect(code).toBe(0);
    const c = await checkConsistency(root);
    expect(c.problems).toEqual([]);
    expect(countDone(root)).toBe(1 + 6 + 1 + 1);
  });

  it("mid-write of a 200 MB artifact: no done marker, no blob that fails its hash", async () => {
    const root = tempStore();
    const run = spawnCli(["run", rfixture("big-artifact.ts"), "--datastore", root, "--max-workers", "1"]);
    await waitFor(() => runDirs(root, "BigArtifactFlow").length > 0, 20_000, "the run to start");
    await waitFor(() => workersOf(run.child.pid!).length > 0, 20_000, "a worker");
    const workers = workersOf(run.child.pid!);
    // Kill the workers the moment the blob's temporary file appears (pids looked up beforehand).
    await waitFor(() => walk(join(root, "blobs")).some((f) => f.includes(".tmp-")), 30_000, "the 200 MB blob write to begin", 1);
    for (const w of workers) process.kill(w, "SIGKILL");
    const { code } = await run.exited;
    expect(code).not.toBe(0);
    expect(run.stderr()).toMatch(/BigArtifactFlow\/\S+\/start\/1.*exited with signal SIGKILL|WorkerCrashed/);
    const c = await checkConsistency(root);
    expect(c.problems).toEqual([]);
    expect(countDone(root)).toBe(0);
    const run0 = JSON.parse(readFileSync(join(root, "flows", "BigArtifactFlow", "runs", runDirs(root, "BigArtifactFlow")[0]!, "run.json"), "utf8"));
    expect(run0.status).toBe("failed");
  });
});
