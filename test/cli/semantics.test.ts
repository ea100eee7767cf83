/** Issue #11 behaviour seen through the real CLI: what `tsflow run` and `tsflow check` print. */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { cli, fixture, STACK_LINE, tempStore } from "../_helpers.ts";

describe("tsflow run", () => {
  it("@catchError without @retry announces no retry: it says the error is stored and the run succeeds", async () => {
    const ds = tempStore();
    const r = await cli(["run", fixture("semantics/catch-end.ts"), "--datastore", ds]);
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    expect(out).not.toMatch(/retry/i);
    expect(out).toContain("✖ Error: end blew up (attempt 1 failed; @catchError stores the error in 'err' and the flow goes on)");
    expect(out).toMatch(/\/end\/\d+\] storing the error \(@catchError\)/);
  });
});

describe("@catchError through the CLI", () => {
  it("keeps what the step assigned before it threw, beside the error", async () => {
    const ds = tempStore();
    const r = await cli(["run", fixture("semantics/catch-end.ts"), "--flow", "CatchKeepsFlow", "--datastore", ds]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const client = createClient(fsDatastore({ root: ds }), nodeHost());
    client.namespace(null);
    const task = await (await client.Flow.get("CatchKeepsFlow").latestRun())!.step("work").onlyTask();
    expect(await (await task.artifact("before"))!.value()).toBe("assigned before the error");
    const err = (await (await task.artifact("err"))!.value()) as Error;
    expect([err.name, err.message]).toEqual(["ExternalCommandFailed", "work failed"]);
  });

  it("on a step whose worker died: the catch attempt stores the crash and the flow goes on", async () => {
    const ds = tempStore();
    const r = await cli(["run", fixture("semantics/catch-end.ts"), "--flow", "CatchCrashFlow", "--datastore", ds]);
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    expect(out).toMatch(/WorkerCrashed: .*\(attempt 1 failed; @catchError stores the error in 'err' and the flow goes on\)/);
    expect(out).not.toMatch(/retry/i);
    const client = createClient(fsDatastore({ root: ds }), nodeHost());
    client.namespace(null);
    const end = await (await client.Flow.get("CatchCrashFlow").latestRun())!.step("end").onlyTask();
    expect(((await (await end.artifact("err"))!.value()) as Error).name).toBe("WorkerCrashed");
  });
});

describe("tsflow run --with catch", () => {
  it("applies to every step but a foreach or switch, and says which it skipped", async () => {
    const ds = tempStore();
    const r = await cli(["run", "examples/foreach.ts", "--with", "catch", "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("--with catch: not applied to 'start': a foreach or switch step cannot go on without its list or value");
  });
});

describe("tsflow check", () => {
  it("accepts switch cases that converge, each through a foreach or branches into the same steps", async () => {
    const file = fixture("semantics/switch-converge.ts");
    for (const [name, flow] of [
      ["default", "ConvergeForeachFlow"],
      ["ConvergeBranchFlow", "ConvergeBranchFlow"],
      ["ConvergeInBranchFlow", "ConvergeInBranchFlow"],
    ]) {
      const r = await cli(["check", file, "--flow", name!]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`✔ ${flow}: the graph is valid`);
    }
  });

  it("a switch case into a running parallel branch: names the step, the split and the rule", async () => {
    const r = await cli(["check", fixture("broken/switch-into-branch.ts")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("1 graph error");
    expect(r.stderr).toContain("step 'b' [not-a-join]: step 'b' receives the parallel branches of 'start', which run at the same time, and must be a join");
  });

  it("an if/else around two this.next calls: the conflicting transitions, and no false cycle", async () => {
    const r = await cli(["check", fixture("broken/if-else-next.ts")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("1 graph error");
    expect(r.stderr).toContain("step 'a' [conflicting-next]: step 'a' calls this.next(this.a) and this.next(this.end)");
    expect(r.stderr).not.toMatch(/cycle|unreachable/);
  });
});

describe("tsflow resume of a flow with a loop", () => {
  const file = fixture("semantics/loop-resume.ts");
  const FLOW = "LoopResumeFlow";
  const runsOf = (ds: string) => readdirSync(join(ds, "flows", FLOW, "runs")).sort();
  const tasksOf = (ds: string, run: string) => {
    const out: { step: string; id: string; done?: Record<string, any> }[] = [];
    const root = join(ds, "flows", FLOW, "runs", run, "tasks");
    for (const step of readdirSync(root)) {
      for (const id of readdirSync(join(root, step))) {
        const done = join(root, step, id, "done.json");
        out.push({ step, id, done: existsSync(done) ? JSON.parse(readFileSync(done, "utf8")) : undefined });
      }
    }
    return out;
  };
  const clonedOnce = (ds: string, run: string) => {
    const from = tasksOf(ds, run)
      .map((t) => t.done?.clonedFrom)
      .filter(Boolean);
    expect(new Set(from).size).toBe(from.length);
    return from.length;
  };

  it("a switch self-loop: clones each successful iteration once and re-runs from the failed one", async () => {
    const ds = tempStore();
    const first = await cli(["run", file, "--datastore", ds], { env: { TSFLOW_TEST_FAIL_ROUND: "3" } });
    expect(first.code, first.stderr).toBe(1);
    const [origin] = runsOf(ds);
    const r = await cli(["resume", file, "--datastore", ds], { env: { TSFLOW_TEST_FAIL_ROUND: "" } });
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    expect(out).toContain(`Resuming ${FLOW}/${origin} from step 'refine'`);
    expect(out).toMatch(/Cloned 3 tasks from \S+ \(start ×1, refine ×2\)/);
    const resumed = runsOf(ds)[1]!;
    expect(clonedOnce(ds, resumed)).toBe(3);
    const refines = tasksOf(ds, resumed).filter((t) => t.step === "refine");
    expect(refines.length).toBe(4);
    expect(refines.filter((t) => t.done?.clonedFrom).length).toBe(2);
    const dump = await cli(["dump", `${FLOW}/${resumed}/end`, "--datastore", ds, "--json"]);
    expect(JSON.parse(dump.stdout)).toMatchObject({ rounds: 4, trail: ["0.1", "0.2", "0.3", "1.1", "1.2", "1.3"] });
  });

  it("a loop inside a foreach: each item's iterations are cloned once; the failed item goes on from its failed round", async () => {
    const ds = tempStore();
    // Item 1 round 2 fails. How many of item 0's rounds ran before fail-fast stopped the run
    // depends on scheduling (a worker may go on with its own successor), so the count is read
    // from the failed run: item 1 round 1 and 0-3 rounds of item 0.
    const first = await cli(["run", file, "--datastore", ds, "--max-workers", "1"], { env: { TSFLOW_TEST_FAIL_INNER: "1:2" } });
    expect(first.code, first.stderr).toBe(1);
    const [origin] = runsOf(ds);
    const originTasks = tasksOf(ds, origin!);
    const originDone = originTasks.filter((t) => t.done).length;
    const innerDone = originTasks.filter((t) => t.done && t.step === "inner").length;
    const r = await cli(["resume", file, "--datastore", ds], { env: { TSFLOW_TEST_FAIL_INNER: "" } });
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    const resumed = runsOf(ds)[1]!;
    // start, refine ×4, fan and every successful inner round: each once.
    expect(innerDone).toBeGreaterThanOrEqual(1);
    expect(innerDone).toBeLessThanOrEqual(4);
    expect(originDone).toBe(6 + innerDone);
    expect(clonedOnce(ds, resumed)).toBe(originDone);
    expect(out).toContain(`Cloned ${originDone} tasks from `);
    expect(out).toContain(`inner ×${innerDone}`);
    // 2 items × 3 rounds in all: the resumed run ran only the rounds the failed run had not.
    const innerRuns = tasksOf(ds, resumed).filter((t) => t.step === "inner");
    expect(innerRuns.length).toBe(6);
    expect(innerRuns.filter((t) => !t.done?.clonedFrom).length).toBe(6 - innerDone);
    const dump = await cli(["dump", `${FLOW}/${resumed}/end`, "--datastore", ds, "--json"]);
    expect(JSON.parse(dump.stdout)).toMatchObject({ rounds: 4, trail: ["0.1", "0.2", "0.3", "1.1", "1.2", "1.3"] });
  });
});

describe("stack traces name the user's source", () => {
  const where = (file: string, text: string) => {
    const lines = readFileSync(file, "utf8").split("\n");
    const i = lines.findIndex((l) => l.includes(text));
    return `${i + 1}:${lines[i]!.indexOf(text) + 1}`;
  };

  it("an error in a step: the flow's file, line and column, never a build-cache file, in the terminal and in the datastore", async () => {
    const ds = tempStore();
    const file = fixture("semantics/traced.ts");
    const r = await cli(["run", file, "--datastore", ds]);
    const out = r.stdout + r.stderr;
    expect(r.code).toBe(1);
    expect(out).toContain(`at TracedFlow.start (${file}:${where(file, 'new Error("traced failure")')})`);
    expect(out).not.toMatch(/\.cache\/tsflow|tsflow-modules/);
    const client = createClient(fsDatastore({ root: ds }), nodeHost());
    client.namespace(null);
    const run = await client.Flow.get("TracedFlow").latestRun();
    const task = await run!.step("start").onlyTask();
    expect(task.exception?.stack).toContain(`${file}:${where(file, 'new Error("traced failure")')}`);
    expect(task.exception?.stack).not.toMatch(/\.cache\/tsflow|tsflow-modules/);
  });

  it("an error while the flow module loads: the file, line and column where it was thrown", async () => {
    const file = fixture("semantics/load-throws.ts");
    const r = await cli(["check", file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`test/fixtures/semantics/load-throws.ts:${where(file, 'new Error("settings')}: settings.region is not set`);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });
});
