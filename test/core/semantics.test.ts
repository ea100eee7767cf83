/**
 * Metaflow semantics without traps (issue #11): artifacts vs initializers, joins and merges,
 * @catchError everywhere, switch convergence, foreach over any iterable, attempt end records.
 * Flows run for real through the public API (`runFlow`) and the client.
 */
import { runFlow } from "tsflow";
import { describe, expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { stepArtifacts, tempStore } from "../_helpers.ts";
import InitializersFlow from "../fixtures/semantics/initializers.ts";
import JoinsFlow from "../fixtures/semantics/joins.ts";

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

  it("outside a join, mergeArtifacts says so", async () => {
    const r = await run(JoinsFlow, { mode: "outside" });
    expect(r.successful).toBe(false);
    expect(r.error?.message).toBe("step 'start' is not a join: this.mergeArtifacts(inputs) only works in a join step (a step that takes inputs)");
  });
});
