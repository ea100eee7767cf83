/** Crashing workers, runtime transitions that differ from the graph, and a 1000-way foreach. */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { alive, CLI, cliRun, fixture, latestRun, ROOT, stepArtifacts, tempStore, waitFor } from "../_helpers.ts";

/** Runs crash.ts through the CLI and SIGKILLs the worker once the victim step wrote its pid. */
async function runAndKill(flow: "CrashFlow" | "CrashRetryFlow") {
  const ds = tempStore();
  const pidfile = join(ds, "victim.pid");
  const args = [CLI, "run", fixture("crash.ts"), "--datastore", ds, "--pidfile", pidfile, ...(flow === "CrashFlow" ? [] : ["--flow", flow])];
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  child.stdout.resume();
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  const started = await waitFor(() => existsSync(pidfile) && readFileSync(pidfile, "utf8") !== "", 20_000);
  if (!started) {
    child.kill("SIGKILL");
    throw new Error(`the victim step never started: ${stderr}`);
  }
  process.kill(Number(readFileSync(pidfile, "utf8")), "SIGKILL");
  const code = await Promise.race([exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), 15_000))]);
  if (code === "hung") child.kill("SIGKILL");
  return { ds, code, stderr };
}

describe("a worker killed mid-task", () => {
  it("fails the task and the run, without hanging", async () => {
    const { ds, code, stderr } = await runAndKill("CrashFlow");
    expect(code).not.toBe("hung");
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/WorkerCrashed: the worker process running task \S+\/victim\/\d+ exited with signal SIGKILL/);
    expect(latestRun(ds, "CrashFlow").status).toBe("failed");
  });

  it("is retried under @retry and the run succeeds", async () => {
    const { ds, code, stderr } = await runAndKill("CrashRetryFlow");
    expect(code, stderr).toBe(0);
    const run = latestRun(ds, "CrashRetryFlow");
    expect(run.status).toBe("succeeded");
    const [victim] = await stepArtifacts(ds, "CrashRetryFlow", run.runId, "victim");
    expect(victim!.attempt).toBe(1);
  });
});

describe("an orchestrator killed mid-run", () => {
  it("leaves no worker running the task", async () => {
    const ds = tempStore();
    const pidfile = join(ds, "victim.pid");
    const child = spawn(process.execPath, [CLI, "run", fixture("crash.ts"), "--datastore", ds, "--pidfile", pidfile], { cwd: ROOT, stdio: "ignore" });
    try {
      expect(await waitFor(() => existsSync(pidfile) && readFileSync(pidfile, "utf8") !== "", 20_000)).toBe(true);
      const victim = Number(readFileSync(pidfile, "utf8"));
      child.kill("SIGKILL");
      expect(await waitFor(() => !alive(victim), 5_000)).toBe(true);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("the transition a step takes at run time", () => {
  it("must match the static graph", async () => {
    const ds = tempStore();
    const ok = await cliRun(fixture("runtime-next.ts"), ds);
    expect(ok.code, ok.stderr).toBe(0);
    const res = await cliRun(fixture("runtime-next.ts"), ds, "--sneaky", "true");
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/step 'start' called this\.next\(b\) but the static graph says a/);
    const run = latestRun(ds, "RuntimeNextFlow");
    expect(run.status).toBe("failed");
    expect(run.error.pathspec).toMatch(/\/start\//);
    // Nothing downstream ran.
    expect(existsSync(join(ds, "flows", "RuntimeNextFlow", "runs", run.runId, "tasks", "b"))).toBe(false);
  });
});

describe("foreach at scale", () => {
  it("runs 1000 splits through the process executor", async () => {
    const ds = tempStore();
    const t0 = Date.now();
    const res = await cliRun(fixture("foreach-many.ts"), ds, "--n", "1000");
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/foreach of 1000 tasks, total 332833500/);
    expect(res.stdout).toMatch(/succeeded .*\(1003 tasks\)/);
    expect(Date.now() - t0).toBeLessThan(60_000);
    const run = latestRun(ds, "ForeachManyFlow");
    const [join_] = await stepArtifacts(ds, "ForeachManyFlow", run.runId, "join");
    expect(join_!.squares).toEqual(Array.from({ length: 1000 }, (_, i) => i * i));
  });

  it("refuses a foreach larger than --max-num-splits", async () => {
    const ds = tempStore();
    const res = await cliRun(fixture("foreach-many.ts"), ds, "--n", "5", "--max-num-splits", "4");
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/foreach over 'items' has 5 items, more than --max-num-splits 4/);
  });
});
