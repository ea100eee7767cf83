/**
 * How `tsflow run` starts its workers (#17.6), read from the start-up trace
 * (TSFLOW_TRACE_STARTUP, runner/_trace.ts) of the real CLI: which processes started, and in
 * which order their phases came. Nothing here depends on how long anything takes.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { TraceLine } from "../../runner/_trace.ts";
import { cli, fixture, ROOT, tempStore } from "../_helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "tsflow-startup-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** Runs `tsflow run …args` traced; the run's result and its trace lines. */
async function tracedRun(args: string[]) {
  const file = join(dir, `trace-${n++}.jsonl`);
  const result = await cli(["run", ...args], { env: { TSFLOW_TRACE_STARTUP: file } });
  return { result, file, lines: readTrace(file) };
}

function readTrace(file: string): TraceLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as TraceLine);
}

/** Whether a process runs (an exited child nobody reaped yet counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return !existsSync("/proc/self");
  }
}

const workerPids = (lines: TraceLine[]) => [...new Set(lines.filter((l) => l.role === "worker").map((l) => l.pid))];
const phases = (lines: TraceLine[], pid: number) => lines.filter((l) => l.pid === pid).map((l) => l.phase);

describe("tsflow run start-up", () => {
  it("runs a flow without split or foreach on one worker, the one bin/tsflow.mjs started before loading the CLI", async () => {
    const { result, lines } = await tracedRun([join(ROOT, "examples", "hello.ts"), "--datastore", tempStore()]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const orchestrator = lines.find((l) => l.role === "cli")!.pid;
    // bin/tsflow.mjs spawned the worker before the CLI bundle was loaded.
    const cliPhases = phases(lines, orchestrator);
    expect(cliPhases.indexOf("worker spawned by bin")).toBeGreaterThanOrEqual(0);
    expect(cliPhases.indexOf("worker spawned by bin")).toBeLessThan(cliPhases.indexOf("cli loaded"));
    // One worker for the whole run (before: one per CPU), and it ran both tasks.
    const workers = workerPids(lines);
    expect(workers).toHaveLength(1);
    expect(phases(lines, workers[0]!)).toEqual(expect.arrayContaining(["worker ready", "flow module imported", "exit"]));
    expect(cliPhases).toEqual(expect.arrayContaining(["task start done (done.json written)", "task end done (done.json written)"]));
  });

  it("warms a worker per task that can run at once when the flow has a split", async () => {
    const { result, lines } = await tracedRun([fixture("branch.ts"), "--max-workers", "2", "--datastore", tempStore()]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(workerPids(lines)).toHaveLength(Math.min(2, availableParallelism()));
  });

  it("lets the pre-started worker go when the run needs none", async () => {
    const { result, file, lines } = await tracedRun([join(ROOT, "examples", "hello.ts"), "--executor", "inline", "--datastore", tempStore()]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(phases(lines, lines.find((l) => l.role === "cli")!.pid)).toContain("worker spawned by bin");
    // The worker may still be starting when the run ends: it leaves once it reads the end of its
    // input (or, when the run has ended by then, as it finds nobody reading its output). Waited
    // for, however slow the machine: its pid comes from its own first trace lines.
    const deadline = Date.now() + 60_000;
    let gone = false;
    while (!gone && Date.now() < deadline) {
      const pid = workerPids(readTrace(file))[0];
      gone = pid !== undefined && !alive(pid);
      if (!gone) await new Promise((r) => setTimeout(r, 100));
    }
    expect(gone).toBe(true);
  });

  it("starts no worker for run --help", async () => {
    const { result, lines } = await tracedRun([join(ROOT, "examples", "hello.ts"), "--help"]);
    expect(result.code).toBe(0);
    expect(workerPids(lines)).toHaveLength(0);
  });
});
