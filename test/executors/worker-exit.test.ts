/**
 * The end of a run. An idle worker whose input ends says `bye` and leaves by itself; the
 * executor stops waiting at `bye`, not at the process's exit (the kernel freeing a big heap
 * takes 10-20 ms). These tests hold the guarantees that replace the wait: the worker is gone
 * soon after (polled, however loaded the machine), wrote nothing after the run's record, keeps
 * no embedding process alive, and is killed if something of its own still runs when the
 * orchestrator exits.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { alive, cli, cliRun, exec, fixture, latestRun, ROOT, stepArtifacts, tempStore, waitFor } from "../_helpers.ts";

const FLOW = "ExitTeardownFlow";

const workerPid = async (ds: string, runId: string) => (await stepArtifacts(ds, FLOW, runId, "start"))[0]!.pid as number;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

/** Gone within a minute (a loaded machine); a worker still there then is killed, and the test fails. */
async function expectGone(pid: number) {
  try {
    expect(await waitFor(() => !alive(pid), 60_000)).toBe(true);
  } finally {
    if (alive(pid)) process.kill(pid, "SIGKILL");
  }
}

describe("the end of a run", () => {
  it("after `tsflow run` returns, its worker is gone, and wrote nothing in the run after run.json", async () => {
    const ds = tempStore();
    const r = await cliRun(fixture("exit-teardown.ts"), ds, "--mb", "128");
    expect(r.code, r.stderr).toBe(0);
    const run = latestRun(ds, FLOW);
    expect(run.status).toBe("succeeded");
    await expectGone(await workerPid(ds, run.runId));
    const dir = join(ds, "flows", FLOW, "runs", run.runId);
    const final = statSync(join(dir, "run.json")).mtimeMs;
    expect(files(dir).filter((f) => statSync(f).mtimeMs > final)).toEqual([]);
  }, 120_000);

  it("a worker closes its datastores (their background clean-ups) before its last word, so before `tsflow run` returns", async () => {
    const ds = tempStore();
    const log = join(ds, "close.log");
    const r = await cli(["run", fixture("exit-teardown.ts"), "--mb", "1", "--datastore", `./test/fixtures/close-logged-store.ts:dir=${ds},log=${log}`]);
    expect(r.code, r.stderr).toBe(0);
    // Read at once, not polled: the close comes before the bye the orchestrator waits for.
    const closed = existsSync(log) ? readFileSync(log, "utf8") : "";
    expect(closed).toContain(`closed ${await workerPid(ds, latestRun(ds, FLOW).runId)}\n`);
  }, 120_000);

  it("a worker still busy after its last word (a flow's `exit` listener that spins) is killed as `tsflow run` exits", async () => {
    const ds = tempStore();
    // Without the kill, the worker would spin for 10 minutes after the CLI is gone.
    const r = await cliRun(fixture("exit-teardown.ts"), ds, "--mb", "1", "--hang", "600");
    expect(r.code, r.stderr).toBe(0);
    await expectGone(await workerPid(ds, latestRun(ds, FLOW).runId));
  }, 120_000);

  it("with --fresh-workers each task's worker is retired as it ends and leaves by itself: all are gone once the run returns", async () => {
    const ds = tempStore();
    const r = await cliRun(fixture("exit-teardown.ts"), ds, "--mb", "64", "--fresh-workers");
    expect(r.code, r.stderr).toBe(0);
    const run = latestRun(ds, FLOW);
    const [end] = await stepArtifacts(ds, FLOW, run.runId, "end");
    const pids = [await workerPid(ds, run.runId), end!.endPid as number];
    expect(pids[0]).not.toBe(pids[1]);
    for (const pid of pids) await expectGone(pid);
  }, 120_000);

  it("runFlow in a script holds no handle of its workers once it returns, and the script ends by itself", async () => {
    const ds = tempStore();
    const script = join(ds, "embed.mjs");
    writeFileSync(
      script,
      `// The script's own stdout and stderr (pipes here) are handles too: opened first, they are the baseline.
void process.stdout;
void process.stderr;
const held = () => process.getActiveResourcesInfo().filter((r) => r === "ProcessWrap" || r === "PipeWrap");
const before = held();
const { runFlow } = await import(${JSON.stringify(join(ROOT, "dist", "index.mjs"))});
const run = await runFlow(${JSON.stringify(fixture("exit-teardown.ts"))}, { datastore: ${JSON.stringify(join(ds, "store"))}, params: { mb: 128 } });
const after = held();
console.log(JSON.stringify({ successful: run.successful, before, after, pid: await run.data("pid") }));
`,
    );
    // A script left with a handle would never end: exec fails it after its timeout.
    const r = await exec([process.execPath, script], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { successful: boolean; before: string[]; after: string[]; pid: number };
    expect(out.successful).toBe(true);
    expect(out.after).toEqual(out.before);
    await expectGone(out.pid);
  }, 120_000);
});
