/**
 * spin: one task of a past 1,000-way foreach re-run with its exact inputs and the step's current
 * code, from the CLI and from code (spinStep), reading only that task's inputs.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Datastore, spinStep, step } from "tsflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { cli, fixture, tempStore } from "../_helpers.ts";
import SpinFlow from "../fixtures/spin-flow.ts";

const FLOW = fixture("spin-flow.ts");
let ds: string;
let runId: string;
/** Task id of `work` at each foreach index. */
const byIndex = new Map<number, string>();
const runsOf = (root: string) => readdirSync(join(root, "flows", "SpinFlow", "runs"));
const doneOf = (root: string, run: string, step: string, task: string) => JSON.parse(readFileSync(join(root, "flows", "SpinFlow", "runs", run, "tasks", step, task, "done.json"), "utf8"));

beforeAll(async () => {
  ds = mkdtempSync(join(tmpdir(), "tsflow-spin-"));
  const r = await cli(["run", FLOW, "--datastore", ds], { timeoutMs: 180_000 });
  expect(r.code, r.stderr).toBe(0);
  runId = runsOf(ds)[0]!;
  const dir = join(ds, "flows", "SpinFlow", "runs", runId, "tasks", "work");
  // A quick task keeps its doc in done.json (no task.json), a slower one has both.
  for (const id of readdirSync(dir)) byIndex.set(JSON.parse(readFileSync(join(dir, id, "done.json"), "utf8")).doc.foreach.at(-1).index, id);
  expect(byIndex.size).toBe(1000);
}, 180_000);
afterAll(() => rmSync(ds, { recursive: true, force: true }));

/** The flow as edited since the run: `work` computes something else (same flow name). */
class Edited extends SpinFlow {
  @step
  override work() {
    this.value = -this.input - this.offset;
    this.next(this.join);
  }
}
Object.defineProperty(Edited, "name", { value: "SpinFlow" });

/** The flow with a `work` that now throws. */
class Broken extends SpinFlow {
  @step
  override work() {
    if (this.input > 5) throw new Error(`cannot handle ${this.input}`);
    this.next(this.join);
  }
}
Object.defineProperty(Broken, "name", { value: "SpinFlow" });

/** The fs datastore, recording every key read or listed. */
function counting(root: string): { store: Datastore; reads: string[] } {
  const base = fsDatastore({ root });
  const reads: string[] = [];
  const store = new Proxy(base, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof v !== "function" || !["get", "getSync", "getStream", "has", "size", "list", "listAll"].includes(String(key))) return typeof v === "function" ? v.bind(target) : v;
      return (k: string, ...rest: unknown[]) => {
        reads.push(`${String(key)} ${k}`);
        return v.call(target, k, ...rest);
      };
    },
  });
  return { store, reads };
}

describe("spinStep (library)", () => {
  it("re-runs one task of a 1,000-way foreach reading only that task's inputs", async () => {
    const { store, reads } = counting(ds);
    const task = byIndex.get(500)!;
    const r = await spinStep(SpinFlow, `SpinFlow/${runId}/work/${task}`, { datastore: store, persist: false });
    expect(r.ok, JSON.stringify(r.error)).toBe(true);
    expect(r.artifacts).toEqual({ value: 500 * 2 + 10 });
    expect(r.diff.value).toBe("same");
    expect(r.persisted).toBe(false);
    // What it read: the origin run and task, the parent (the split) and the inputs the step
    // touched (the foreach list, `offset`, the `scale` config). Not the 1 MB `big`, not a sibling,
    // no listing.
    const start = readdirSync(join(ds, "flows", "SpinFlow", "runs", runId, "tasks", "start"))[0]!;
    const startDone = doneOf(ds, runId, "start", start);
    const blob = (name: string) => `blobs/${startDone.artifacts[name].hash.slice(0, 2)}/${startDone.artifacts[name].hash}`;
    const run = `flows/SpinFlow/runs/${runId}`;
    const keys = new Set(reads.map((r) => r.split(" ")[1]));
    const runJson = JSON.parse(readFileSync(join(ds, run, "run.json"), "utf8"));
    const scale = runJson.parameters.scale.hash as string;
    const allowed = new Set([
      `${run}/run.json`,
      `${run}/tasks/work/${task}/task.json`,
      `${run}/tasks/work/${task}/done.json`,
      `${run}/tasks/start/${start}/done.json`,
      blob("items"),
      blob("offset"),
      `blobs/${scale.slice(0, 2)}/${scale}`,
    ]);
    expect([...keys].filter((k) => !allowed.has(k!))).toEqual([]);
    expect(keys.has(blob("big"))).toBe(false);
    expect(reads.filter((r) => r.startsWith("list"))).toEqual([]);
    expect(reads.length).toBeLessThanOrEqual(12);
    // Nothing was written: the datastore has the one run it had.
    expect(runsOf(ds)).toEqual([runId]);
  });

  it("runs the step's current code with overridden inputs and stores the result as a spin run", async () => {
    const task = byIndex.get(3)!;
    const r = await spinStep(Edited, `${runId}/work/${task}`, { datastore: ds, overrides: { offset: 1000 } });
    expect(r.ok, JSON.stringify(r.error)).toBe(true);
    expect(r.artifacts).toEqual({ value: -1003, offset: 1000 });
    expect(r.diff).toMatchObject({ value: "changed", offset: "changed", items: "same", big: "same" });
    expect(await r.data("big")).toHaveLength(1 << 20);
    // Stored as a run of its own, tagged spin, pointing at the task it re-ran.
    const spun = JSON.parse(readFileSync(join(ds, "flows", "SpinFlow", "runs", r.runId, "run.json"), "utf8"));
    expect(spun).toMatchObject({ status: "succeeded", tags: ["spin"], spinOf: `SpinFlow/${runId}/work/${task}`, originRunId: runId });
    const dump = await cli(["dump", r.pathspec, "--datastore", ds, "--json"]);
    expect(dump.code, dump.stderr).toBe(0);
    expect(JSON.parse(dump.stdout)).toMatchObject({ value: -1003, offset: 1000 });
  });

  it("reports a step error in the result and names a task that does not exist", async () => {
    const r = await spinStep(Broken, `${runId}/work/${byIndex.get(9)}`, { datastore: ds, persist: false });
    expect(r.ok).toBe(false);
    expect(r.error?.message).toBe("cannot handle 9");
    await expect(spinStep(SpinFlow, `${runId}/work/99999`, { datastore: ds })).rejects.toThrow(`task SpinFlow/${runId}/work/99999 is not in datastore`);
    await expect(spinStep(SpinFlow, `${runId}/nope/1`, { datastore: ds })).rejects.toThrow("flow SpinFlow has no step 'nope' in its current code (steps: start, work, join, end)");
  });
});

describe("tsflow spin", () => {
  it("re-runs FLOW/RUN/STEP/TASK from the run's own file, prints the diff and stores the spin with its log", async () => {
    const task = byIndex.get(500)!;
    const before = new Set(runsOf(ds));
    const r = await cli(["spin", `SpinFlow/${runId}/work/${task}`, "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("work 500: 1010");
    expect(r.stdout).toMatch(/value\s+same\s+1010/);
    const spun = runsOf(ds).filter((x) => !before.has(x));
    expect(spun).toHaveLength(1);
    expect(r.stdout).toContain(`as SpinFlow/${spun[0]}/work/1`);
    expect(readFileSync(join(ds, "flows", "SpinFlow", "runs", spun[0]!, "tasks", "work", "1", "0", "stdout"), "utf8")).toBe("work 500: 1010\n");
  });

  it("takes `flow.ts STEP --from RUN --index N`, --artifacts and --no-persist, with the file's current code", async () => {
    // A copy of the flow, run small, then edited: spin runs the edited code.
    const dir = mkdtempSync(join(tmpdir(), "tsflow-spin-edit-"));
    const store = tempStore();
    try {
      const file = join(dir, "flow.ts");
      copyFileSync(FLOW, file);
      const run = await cli(["run", file, "--datastore", store, "--n", "4"]);
      expect(run.code, run.stderr).toBe(0);
      const origin = runsOf(store)[0]!;
      writeFileSync(file, readFileSync(file, "utf8").replace("this.input * this.scale.factor + this.offset", "this.input * 100 + this.offset"));
      const r = await cli(["spin", file, "work", "--from", origin, "--index", "2", "--datastore", store, "--artifacts", fixture("spin/overrides.ts"), "--no-persist"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("work 2: 1200");
      expect(r.stdout).toMatch(/offset\s+changed\s+1000 {2}\(was 10\)/);
      expect(r.stdout).toMatch(/value\s+changed\s+1200 {2}\(was 14\)/);
      expect(r.stdout).toContain("(not stored: --no-persist)");
      expect(runsOf(store)).toEqual([origin]);
      const many = await cli(["spin", file, "work", "--from", origin, "--datastore", store]);
      expect(many.code).toBe(2);
      // A failing step: its error and where in the flow's code, not tsflow's frames.
      writeFileSync(file, readFileSync(file, "utf8").replace("this.value = this.input * 100 + this.offset;", 'throw new Error("edited to fail");'));
      const failed = await cli(["spin", file, "work", "--from", origin, "--index", "1", "--datastore", store, "--no-persist"]);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain("failed after");
      expect(failed.stderr).toContain("Error: edited to fail");
      expect(failed.stderr).toMatch(/at SpinFlow\.work \(.*flow\.ts:\d+:\d+\)/);
      expect(failed.stderr).not.toContain("tsflow.mjs");
      expect(many.stderr).toContain("step 'work' of SpinFlow/");
      expect(many.stderr).toContain("has 4 tasks; pick one with --task ID or --index N");
      expect(existsSync(join(store, "flows", "SpinFlow", "runs", origin))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
