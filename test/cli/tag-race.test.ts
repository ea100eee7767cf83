/**
 * Tags of a running run (issue 19.3): a tag added while the run goes on survives the run's final
 * write, and no tag change ever brings a finished run's status back (which read as abandoned).
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { CLI, cli, fixture, ROOT, tempStore, waitFor } from "../_helpers.ts";

function startRun(file: string, ds: string, ...args: string[]) {
  const child = spawn(process.execPath, [CLI, "run", file, "--datastore", ds, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  onTestFinished(() => void child.kill("SIGKILL"));
  return { exited, output: () => out };
}

const runIds = (ds: string, flow: string) => {
  const dir = join(ds, "flows", flow, "runs");
  return existsSync(dir) ? readdirSync(dir).filter((r) => existsSync(join(dir, r, "run.json"))) : [];
};

describe("tags of a running run", () => {
  it("a tag added mid-run survives the run's final write, and the run stays succeeded", async () => {
    const ds = tempStore();
    // The run holds at its join until the gate opens: the tag changes below happen while it
    // runs however long their CLI calls take on a loaded machine (6 × 700 ms items were not).
    const gate = join(ds, "gate");
    const run = startRun(fixture("slow-foreach.ts"), ds, "--max-workers", "2", "--tag", "initial", "--gate", gate);
    expect(await waitFor(() => runIds(ds, "SlowForeachFlow").length === 1, 20_000)).toBe(true);
    const id = runIds(ds, "SlowForeachFlow")[0]!;
    const add = await cli(["tag", "add", `SlowForeachFlow/${id}`, "mid-run", "--datastore", ds]);
    expect(add.code, add.stderr).toBe(0);
    const swap = await cli(["tag", "replace", `SlowForeachFlow/${id}`, "initial", "renamed", "--datastore", ds]);
    expect(swap.code, swap.stderr).toBe(0);
    // The change happened while the run was still going: its final write comes after it.
    expect(JSON.parse(readFileSync(join(ds, "flows", "SlowForeachFlow", "runs", id, "run.json"), "utf8")).status).toBe("running");
    writeFileSync(gate, "");
    expect(await run.exited, run.output()).toBe(0);
    const list = await cli(["tag", "list", `SlowForeachFlow/${id}`, "--datastore", ds]);
    expect(list.stdout).toMatch(/User tags:\n {2}mid-run\n {2}renamed\n/);
    const runs = await cli(["runs", "SlowForeachFlow", "--datastore", ds]);
    expect(runs.stdout).toContain(id);
    expect(runs.stdout).toMatch(/succeeded/);
    expect(runs.stdout).toMatch(/mid-run/);
  }, 60_000);

  it("tag changes racing with runs' ends: every tag survives, every run ends succeeded", async () => {
    const ds = tempStore();
    const RUNS = 4;
    const runs = Array.from({ length: RUNS }, () => startRun(fixture("linear.ts"), ds, "--max-workers", "1"));
    const tagged = new Map<string, string[]>();
    const done = Promise.all(runs.map((r) => r.exited));
    let finished = false;
    void done.then(() => (finished = true));
    // Tag every run again and again while they start, run and end.
    let round = 0;
    while (!finished && round < 20) {
      const ids = runIds(ds, "LinearFlow");
      if (ids.length === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      await Promise.all(
        ids.map(async (id) => {
          const tag = `t${round}`;
          const r = await cli(["tag", "add", `LinearFlow/${id}`, tag, "--datastore", ds]);
          if (r.code === 0) tagged.set(id, [...(tagged.get(id) ?? []), tag]);
        }),
      );
      round++;
    }
    expect(await done).toEqual(Array(RUNS).fill(0));
    expect(tagged.size).toBeGreaterThan(0);
    for (const [id, tags] of tagged) {
      const list = await cli(["tag", "list", `LinearFlow/${id}`, "--datastore", ds]);
      for (const t of tags) expect(list.stdout, `run ${id}`).toContain(`  ${t}\n`);
      const status = JSON.parse(readFileSync(join(ds, "flows", "LinearFlow", "runs", id, "run.json"), "utf8")).status;
      expect(status, `run ${id}`).toBe("succeeded");
    }
  }, 120_000);
});
