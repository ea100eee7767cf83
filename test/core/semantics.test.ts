/**
 * Metaflow semantics without traps (issue #11): artifacts vs initializers, joins and merges,
 * @catchError everywhere, switch convergence, foreach over any iterable, attempt end records.
 * Flows run for real through the public API (`runFlow`) and the client.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runFlow } from "tsflow";
import { describe, expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import memoryDatastore from "../../plugins/datastores/memory.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { getTask } from "../../viewer/data.ts";
import { fmtDur } from "../../viewer/html.ts";
import { fixture, stepArtifacts, tempStore } from "../_helpers.ts";
import TimeoutEndFlow, { CrashEndFlow } from "../fixtures/semantics/attempt-ends.ts";
import CatchEndFlow from "../fixtures/semantics/catch-end.ts";
import CatchForeachFlow from "../fixtures/semantics/catch-foreach.ts";
import ForeachAliasFlow from "../fixtures/semantics/foreach-alias.ts";
import ForeachIterablesFlow from "../fixtures/semantics/foreach-iterables.ts";
import ConvergeForeachFlow, { ConvergeBranchFlow, ConvergeInBranchFlow } from "../fixtures/semantics/switch-converge.ts";
import InitializersFlow from "../fixtures/semantics/initializers.ts";
import JoinsFlow from "../fixtures/semantics/joins.ts";
import ReadThenWriteFlow from "../fixtures/semantics/read-then-write.ts";

const ds = tempStore();
const run = (flow: Function, params: Record<string, unknown> = {}) => runFlow(flow, { datastore: ds, executor: "inline", params });
const client = () => {
  const c = createClient(fsDatastore({ root: ds }), nodeHost());
  c.namespace(null);
  return c;
};

describe("a field's initializer is a default, not an artifact", () => {
  it("stores only what a step assigned or changed in place", async () => {
    const r = await run(InitializersFlow);
    expect(r.error).toBeUndefined();
    const names = async (step: string) => Object.keys((await stepArtifacts(ds, "InitializersFlow", r.runId, step))[0]!).sort();
    expect(await names("start")).toEqual(["tags"]);
    expect(await names("middle")).toEqual(["label", "seen", "tags"]);
    expect(await names("end")).toEqual(["label", "seen", "tags"]);
    const [middle] = await stepArtifacts(ds, "InitializersFlow", r.runId, "middle");
    // Defaults are still what a step reads.
    expect(middle!.seen).toBe("count=0 depth=1 tags=first");
    // The client lists the same, and has no value for a default.
    const end = await (await client().Flow.get("InitializersFlow").run(r.runId)).step("end").onlyTask();
    expect((await end.artifacts()).map((a) => a.name).sort()).toEqual(["label", "seen", "tags"]);
    expect(await end.artifact("count")).toBeNull();
  });
});

describe("a field after its first read or assignment", () => {
  it("keeps what the step left: unchanged by reference, reassigned, changed in place, assigned twice, deleted", async () => {
    const r = await run(ReadThenWriteFlow);
    expect(r.error).toBeUndefined();
    const [start] = await stepArtifacts(ds, "ReadThenWriteFlow", r.runId, "start");
    const [middle] = await stepArtifacts(ds, "ReadThenWriteFlow", r.runId, "middle");
    expect(start!.twice).toBe("ab");
    expect(middle).toMatchObject({ kept: [1, 2, 3], replaced: [1, 2, 3, 4], grown: [1, 2, 3, 4], twice: "abcd", removed: "still here", sum: 1999 });
    const refs = (step: string) => {
      const dir = join(ds, "flows", "ReadThenWriteFlow", "runs", r.runId, "tasks", step);
      return JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]!, "done.json"), "utf8")).artifacts as Record<string, { hash: string }>;
    };
    const [a, b] = [refs("start"), refs("middle")];
    // Read and left as it was: passed on by reference, not stored again.
    expect(b.kept!.hash).toBe(a.kept!.hash);
    expect(b.grown!.hash).not.toBe(a.grown!.hash);
  });
});

describe("joins and mergeArtifacts", () => {
  it("reading an artifact the join neither merged nor assigned throws, naming it, the join and both ways out", async () => {
    const r = await run(JoinsFlow, { mode: "read" });
    expect(r.successful).toBe(false);
    expect(r.error?.pathspec).toMatch(/\/join\//);
    expect(r.error?.type).toBe("UnmergedArtifact");
    const msg = r.error!.message;
    expect(msg).toContain("step 'join' reads this.x");
    expect(msg).toContain("inputs.a.x or inputs.b.x");
    expect(msg).toContain("this.mergeArtifacts(inputs)");
  });

  it("merges artifacts present in only some inputs, equal ones, and leaves what the join assigned", async () => {
    const r = await run(JoinsFlow, { mode: "merge" });
    expect(r.error).toBeUndefined();
    const [join] = await stepArtifacts(ds, "JoinsFlow", r.runId, "join");
    expect(join).toMatchObject({ x: 3, shared: "same", onlyA: "from a" });
    const [end] = await stepArtifacts(ds, "JoinsFlow", r.runId, "end");
    expect(end).toMatchObject({ x: 3, shared: "same", onlyA: "from a" });
  });

  it("a conflict names the artifact and copies nothing", async () => {
    const r = await run(JoinsFlow, { mode: "conflict" });
    expect(r.error).toBeUndefined();
    const [join] = await stepArtifacts(ds, "JoinsFlow", r.runId, "join");
    const report = join!.report as string[];
    expect(report[0]).toMatch(/^step 'join': mergeArtifacts found different values of 'x' in the inputs and merged nothing/);
    expect(report[1]).toMatch(/step 'join' reads this.shared, but .* neither merged nor assigned/);
    expect(report[2]).toBe("after exclude: shared=same");
    expect(join!.x).toBeUndefined();
  });

  it("on a store that cannot read synchronously, an artifact read through inputs and then merged", async () => {
    const r = await runFlow(JoinsFlow, { datastore: memoryDatastore(), executor: "inline", params: { mode: "both" } });
    expect(r.error).toBeUndefined();
    expect(await r.data("report")).toEqual(["same", "same", "from a", "from a"]);
  });

  it("outside a join, mergeArtifacts says so", async () => {
    const r = await run(JoinsFlow, { mode: "outside" });
    expect(r.successful).toBe(false);
    expect(r.error?.message).toBe("step 'start' is not a join: this.mergeArtifacts(inputs) only works in a join step (a step that takes inputs)");
  });
});

describe("@catchError on every step", () => {
  it("on `end`: the error is stored in the named artifact and the run succeeds", async () => {
    const r = await run(CatchEndFlow);
    expect(r.error).toBeUndefined();
    expect(r.successful).toBe(true);
    const [end] = await stepArtifacts(ds, "CatchEndFlow", r.runId, "end");
    expect(end!.err).toBeInstanceOf(Error);
    expect((end!.err as Error).message).toBe("end blew up");
  });

  it("on a foreach step it is refused before anything runs, naming the step and the rule", async () => {
    await expect(run(CatchForeachFlow)).rejects.toMatchObject({
      message: expect.stringMatching(/^flow CatchForeachFlow( in .*)? has 1 graph error$/),
      details: ["step 'start' [catch-on-split]: step 'start' has @catchError, but a foreach step that failed has no list to go on with; catch the error inside the step, or put @catchError on the steps around it"],
    });
  });
});

describe("foreach over any iterable", () => {
  it("a string: one task per character", async () => {
    const r = await run(ForeachIterablesFlow, { kind: "string" });
    expect(r.error).toBeUndefined();
    expect(r.tasks).toBe(1 + 5 + 2);
    const [join] = await stepArtifacts(ds, "ForeachIterablesFlow", r.runId, "join");
    expect(join!.seen).toEqual(["h", "é", "l", "l", "o"]);
  });

  it("a Map (its entries) and a Set", async () => {
    const m = await run(ForeachIterablesFlow, { kind: "map" });
    expect((await stepArtifacts(ds, "ForeachIterablesFlow", m.runId, "join"))[0]!.seen).toEqual([
      ["a", 1],
      ["b", 2],
    ]);
    const s = await run(ForeachIterablesFlow, { kind: "set" });
    expect((await stepArtifacts(ds, "ForeachIterablesFlow", s.runId, "join"))[0]!.seen).toEqual([3, 4]);
  });

  it("on a store read ahead of the step (no getSync, as S3): the list is read once a task, and the item is not the list's", async () => {
    const mem = memoryDatastore();
    const reads = new Map<string, number>();
    const get = (key: string, o?: Parameters<typeof mem.get>[1]) => {
      reads.set(key, (reads.get(key) ?? 0) + 1);
      return mem.get(key, o);
    };
    const store = { ...mem, name: "remote", getSync: undefined, get };
    const r = await runFlow(ForeachAliasFlow, { datastore: store, executor: "inline" });
    expect(r.error).toBeUndefined();
    expect(await r.data("seen")).toEqual([
      [11, [1, 2]],
      [12, [1, 2]],
    ]);
    // The split's done record is read once (it was twice a task): a done.json never changes, so
    // the process both body tasks run in keeps it.
    expect([...reads].filter(([k]) => /\/start\/\d+\/done\.json$/.test(k)).map(([, n]) => n)).toEqual([1]);
    const done = [...reads.keys()].find((k) => /\/start\/\d+\/done\.json$/.test(k))!;
    const rowsRef = JSON.parse(new TextDecoder().decode((await mem.get(done))!)).artifacts.rows;
    // A blob, not a value inline in the reference (which no read would count).
    expect(rowsRef.inline).toBeUndefined();
    const rows = rowsRef.hash as string;
    // The list: once by each body task (it was twice), once per input by the join (small ones are read ahead).
    expect([...reads].filter(([k]) => k.includes(rows)).map(([, n]) => n)).toEqual([2 + 2]);
  });

  it("anything else: a message that says what the value is and what a foreach takes", async () => {
    const r = await run(ForeachIterablesFlow, { kind: "number" });
    expect(r.successful).toBe(false);
    expect(r.error?.message).toBe("step 'start': foreach artifact 'items' is a number (42); a foreach goes over an array, a string or another iterable (Map, Set, typed array)");
  });
});

describe("every attempt has an end record", () => {
  const attemptOf = async (runId: string, flow: string, step: string) => {
    const task = await (await client().Flow.get(flow).run(runId)).step(step).onlyTask();
    const detail = await getTask(fsDatastore({ root: ds }), flow, runId, step, task.id);
    return { task, attempt: detail!.attempts.at(-1)! };
  };

  it("killed by @timeout: error type and message, and the real duration, for the client and the viewer", async () => {
    const r = await runFlow(TimeoutEndFlow, { datastore: ds, file: fixture("semantics/attempt-ends.ts") });
    expect(r.successful).toBe(false);
    const { task, attempt } = await attemptOf(r.runId, "TimeoutEndFlow", "spin");
    expect(task.exception?.type).toBe("Timeout");
    expect(task.exception?.message).toMatch(/timed out after 1 s/);
    expect(task.finishedAt!.getTime() - task.startedAt!.getTime()).toBeGreaterThanOrEqual(900);
    expect(attempt.ok).toBe(false);
    expect(attempt.error?.type).toBe("Timeout");
    expect(attempt.finishedAt! - attempt.startedAt!).toBeGreaterThanOrEqual(900);
    // The viewer's task page: the reason and a real duration, not 0 ms.
    const app = createViewerApp({ store: fsDatastore({ root: ds }), host: nodeHost() });
    const page = await (await app.request(`/runs/TimeoutEndFlow/${r.runId}/spin/${task.id}`)).text();
    expect(page).toContain("timed out after 1 s");
    expect(page).toContain(`<td>${fmtDur(attempt.finishedAt! - attempt.startedAt!)}</td>`);
    expect(page).not.toMatch(/Duration<\/t[hd]><td>0 ms/);
  });

  it("crashed, and cancelled because a sibling failed", async () => {
    const marker = join(tempStore(), "started");
    process.env.TSFLOW_TEST_MARKER = marker;
    try {
      const r = await runFlow(CrashEndFlow, { datastore: ds, file: fixture("semantics/attempt-ends.ts"), exportName: "CrashEndFlow", maxWorkers: 2 });
      expect(r.successful).toBe(false);
      const crashed = await attemptOf(r.runId, "CrashEndFlow", "crash");
      expect(crashed.task.exception?.type).toBe("WorkerCrashed");
      expect(crashed.attempt.error?.type).toBe("WorkerCrashed");
      expect(crashed.task.finishedAt).toBeInstanceOf(Date);
      const cancelled = await attemptOf(r.runId, "CrashEndFlow", "waits");
      expect(cancelled.task.exception?.type).toBe("Cancelled");
      expect(cancelled.attempt.error?.message).toMatch(/was stopped/);
      expect(cancelled.attempt.finishedAt! - cancelled.attempt.startedAt!).toBeGreaterThanOrEqual(0);
      expect(cancelled.task.finishedAt).toBeInstanceOf(Date);
    } finally {
      delete process.env.TSFLOW_TEST_MARKER;
    }
  });
});

describe("switch cases that converge", () => {
  it("each case starts a foreach into the same step: accepted, and whichever case runs is joined", async () => {
    const small = await run(ConvergeForeachFlow, { route: "small" });
    expect(small.error).toBeUndefined();
    expect((await stepArtifacts(ds, "ConvergeForeachFlow", small.runId, "join"))[0]!.squares).toEqual([1, 4]);
    const big = await run(ConvergeForeachFlow, { route: "big" });
    expect(big.error).toBeUndefined();
    // start, big, 3 × body, join, end
    expect(big.tasks).toBe(7);
    expect((await stepArtifacts(ds, "ConvergeForeachFlow", big.runId, "join"))[0]!.squares).toEqual([100, 400, 900]);
  });

  it("each case branches into the same steps and the same join", async () => {
    for (const route of ["left", "right"]) {
      const r = await run(ConvergeBranchFlow, { route });
      expect(r.error).toBeUndefined();
      expect((await stepArtifacts(ds, "ConvergeBranchFlow", r.runId, "join"))[0]!.got).toEqual([`p via ${route}`, `q via ${route}`]);
    }
  });

  it("cases (one looping) converge inside a branch of a static split", async () => {
    const r = await run(ConvergeInBranchFlow, { route: "y" });
    expect(r.error).toBeUndefined();
    const [join] = await stepArtifacts(ds, "ConvergeInBranchFlow", r.runId, "join");
    expect(join!.trail).toEqual(["y", "merge", "other"]);
    expect(join!.rounds).toBe(2);
  });
});
