/** Every transition kind and join, run for real through `runFlow` (in-process executor). */
import { runFlow } from "tsflow";
import { describe, expect, it } from "vitest";
import { stepArtifacts, tempStore } from "../_helpers.ts";
import SwitchFlow from "../../examples/switch.ts";
import BranchFlow from "../fixtures/branch.ts";
import LinearFlow from "../fixtures/linear.ts";
import MergeConflictFlow from "../fixtures/merge-conflict.ts";
import MergeIncludeFlow from "../fixtures/merge-include.ts";
import NestedForeachFlow from "../fixtures/nested-foreach.ts";
import ForeachManyFlow from "../fixtures/foreach-many.ts";
import SwitchParamFlow from "../fixtures/switch-param.ts";

const ds = tempStore();
const run = (flow: Function, params: Record<string, unknown> = {}) => runFlow(flow, { datastore: ds, executor: "inline", params });

describe("transitions", () => {
  it("linear: start → middle → end, artifacts flow down", async () => {
    const r = await run(LinearFlow);
    expect(r.successful).toBe(true);
    const [end] = await stepArtifacts(ds, "LinearFlow", r.runId, "end");
    expect(end!.trail).toEqual(["start", "middle", "end"]);
  });

  it("static branch: every branch runs and the join reads them by name and in branch order", async () => {
    const r = await run(BranchFlow);
    expect(r.error).toBeUndefined();
    expect(r.tasks).toBe(6);
    const [join] = await stepArtifacts(ds, "BranchFlow", r.runId, "join");
    expect(join!.byName).toEqual([1, 2, 3]);
    expect(join!.seen).toEqual([1, 2, 3]);
    // mergeArtifacts copied `shared` (identical in all inputs) and skipped the excluded ones.
    expect(join!.shared).toBe("same everywhere");
    expect(join!.mergedShared).toBe("same everywhere");
    // Excluded artifacts are not inherited, and initializers are not artifacts: neither is stored.
    expect(join!.differs).toBeUndefined();
    expect(join!.onlyA).toBeUndefined();
  });

  it("foreach with one split", async () => {
    const r = await run(ForeachManyFlow, { n: 1 });
    expect(r.successful).toBe(true);
    const [join] = await stepArtifacts(ds, "ForeachManyFlow", r.runId, "join");
    expect(join!.squares).toEqual([0]);
  });

  it("nested foreach: each join sees its inputs in foreach-index order", async () => {
    const r = await run(NestedForeachFlow, { outer: 3 });
    expect(r.error).toBeUndefined();
    // start + 3 groups + (2+3+4) members + 3 inner joins + outer join + end
    expect(r.tasks).toBe(1 + 3 + 9 + 3 + 1 + 1);
    const [outer] = await stepArtifacts(ds, "NestedForeachFlow", r.runId, "join_groups");
    expect(outer!.all).toEqual([
      ["0.0#0", "0.1#1"],
      ["1.0#0", "1.1#1", "1.2#2"],
      ["2.0#0", "2.1#1", "2.2#2", "2.3#3"],
    ]);
  });

  it("switch: exactly one case runs", async () => {
    const r = await run(SwitchFlow, { score: 0.9 });
    expect(r.successful).toBe(true);
    expect(r.tasks).toBe(3);
    const [end] = await stepArtifacts(ds, "SwitchFlow", r.runId, "end");
    expect(end!.decision).toBe("shipped");
  });

  it("switch self-loop: the case pointing back at its own step loops until another case is picked", async () => {
    const r = await run(SwitchFlow, { score: 0.1 });
    expect(r.error).toBeUndefined();
    // start, refine ×3, review, end
    expect(r.tasks).toBe(6);
    const refines = await stepArtifacts(ds, "SwitchFlow", r.runId, "refine");
    expect(refines.map((t) => t.rounds)).toEqual([1, 2, 3]);
    const [end] = await stepArtifacts(ds, "SwitchFlow", r.runId, "end");
    expect(end!.decision).toBe("reviewed after 3 rounds");
  });
});

describe("switch on an unknown case", () => {
  it.each(["middle", "constructor", "toString", "__proto__"])("fails the step clearly when the condition is %j", async (pick) => {
    const r = await run(SwitchParamFlow, { pick });
    expect(r.successful).toBe(false);
    expect(r.error?.pathspec).toMatch(/\/start\//);
    expect(r.error?.message).toBe(`step 'start': condition artifact 'route' is '${pick}', which is not one of the cases left, right`);
  });

  it("takes the case the condition names", async () => {
    const r = await run(SwitchParamFlow, { pick: "right" });
    expect(r.error).toBeUndefined();
    const [right] = await stepArtifacts(ds, "SwitchParamFlow", r.runId, "right");
    expect(right!.took).toBe("right");
  });
});

describe("joins", () => {
  it("mergeArtifacts fails clearly on a conflict, naming the artifact", async () => {
    const r = await run(MergeConflictFlow);
    expect(r.successful).toBe(false);
    expect(r.error?.pathspec).toMatch(/\/join\//);
    expect(r.error?.message).toMatch(/mergeArtifacts found different values of 'value'/);
  });

  it("mergeArtifacts with include copies only the named artifacts", async () => {
    const r = await run(MergeIncludeFlow);
    expect(r.error).toBeUndefined();
    const [join] = await stepArtifacts(ds, "MergeIncludeFlow", r.runId, "join");
    expect(join!.keep).toBe("kept");
    // Not included, so not inherited (and an initializer is not an artifact).
    expect(join!.drop).toBeUndefined();
    expect(join!.value).toBeUndefined();
  });
});
