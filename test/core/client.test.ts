/** The client API over real runs: Flow → Run → Step → Task → Artifact, tags, namespaces, typing, errors. */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Flow as DefaultFlow, getNamespace, namespace as setDefaultNamespace, runFlow } from "tsflow";
import { beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import { createClient, Listing, parsePathspec, type Run } from "../../core/client.ts";
import { isTsflowError } from "../../core/errors.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { fixture, tempStore } from "../_helpers.ts";
import ResumeForeachFlow from "../fixtures/resume-foreach.ts";

const ds = tempStore();
const store = fsDatastore({ root: ds });
const host = nodeHost();
const FLOW = "ResumeForeachFlow";
let failedId = "";
let okId = "";
let taggedId = "";

const runOnce = (params: Record<string, unknown>, tags: string[] = [], maxWorkers = 2) =>
  runFlow(ResumeForeachFlow, { datastore: ds, file: fixture("resume-foreach.ts"), params, tags, maxWorkers });

beforeAll(async () => {
  process.env.TSFLOW_TEST_FAIL_ITEM = "2";
  // One worker: items 0 and 1 succeed before item 2 fails.
  const failed = await runOnce({ count: 3 }, [], 1);
  delete process.env.TSFLOW_TEST_FAIL_ITEM;
  failedId = failed.runId;
  const ok = await runOnce({ count: 3 }, ["exp1"]);
  okId = ok.runId;
  const tagged = await runOnce({ count: 2 }, ["exp1", "exp2"]);
  taggedId = tagged.runId;
  expect([failed.successful, ok.successful, tagged.successful]).toEqual([false, true, true]);
}, 60_000);

/** Copies a run under a new id with changes to its run.json (other users, dead orchestrators). */
function cloneRunDoc(id: string, newId: string, change: Record<string, unknown>) {
  const doc = JSON.parse(readFileSync(join(ds, "flows", FLOW, "runs", id, "run.json"), "utf8"));
  mkdirSync(join(ds, "flows", FLOW, "runs", newId), { recursive: true });
  writeFileSync(join(ds, "flows", FLOW, "runs", newId, "run.json"), JSON.stringify({ ...doc, runId: newId, ...change }));
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

describe("client API", () => {
  it("lists flows and runs newest first, filters by tags, finds the latest (successful) run", async () => {
    const client = createClient(store, host);
    expect((await client.Flow.list()).map((f) => f.name)).toContain(FLOW);
    const flow = client.Flow.get(FLOW);
    const runs = await flow.runs();
    expect(runs.map((r) => r.id)).toEqual([taggedId, okId, failedId]);
    expect((await flow.runs({ tags: ["exp1"] })).map((r) => r.id)).toEqual([taggedId, okId]);
    expect((await flow.runs({ tags: ["exp1", "exp2"] })).map((r) => r.id)).toEqual([taggedId]);
    expect((await flow.runs({ tags: ["nope"] })).length).toBe(0);
    expect((await flow.runs({ limit: 2 })).length).toBe(2);
    // Lazy iteration stops early.
    const seen: string[] = [];
    for await (const r of flow.runs()) {
      seen.push(r.id);
      break;
    }
    expect(seen).toEqual([taggedId]);
    expect(flow.runs()).toBeInstanceOf(Listing);
    expect((await flow.latestRun())!.id).toBe(taggedId);
    expect((await flow.latestSuccessfulRun())!.id).toBe(taggedId);
  });

  it("a run's fields, steps and end-step data", async () => {
    const client = createClient(store, host);
    const run = await client.Flow.get(FLOW).run(okId);
    expect(run.pathspec).toBe(`${FLOW}/${okId}`);
    expect(run.status).toBe("succeeded");
    expect(run.successful).toBe(true);
    expect(run.finished).toBe(true);
    expect(run.createdAt).toBeInstanceOf(Date);
    expect(run.finishedAt!.getTime()).toBeGreaterThanOrEqual(run.createdAt.getTime());
    expect(run.parameters).toEqual({ count: 3 });
    expect(run.tags).toEqual(["exp1"]);
    expect(run.systemTags).toContain(`user:${host.username()}`);
    expect(run.originRunId).toBeUndefined();
    expect(await run.data("total")).toBe(0 + 1 + 4);
    expect((await run.steps()).map((s) => s.name)).toEqual(["start", "body", "join", "end"]);
    const failed = await client.Flow.get(FLOW).run(failedId);
    expect(failed.status).toBe("failed");
    expect(failed.successful).toBe(false);
    expect(failed.finished).toBe(true);
    expect((await failed.steps()).map((s) => s.name)).toEqual(["start", "body"]);
  });

  it("steps, tasks, logs, exceptions, parents and children", async () => {
    const client = createClient(store, host);
    const run = await client.Flow.get(FLOW).run(failedId);
    const tasks = await run.step("body").tasks();
    expect(tasks.map((t) => t.index)).toEqual([0, 1, 2]);
    const bad = tasks.find((t) => t.index === 2)!;
    expect(bad.successful).toBe(false);
    expect(bad.finished).toBe(true);
    expect(bad.attempt).toBe(0);
    expect(bad.exception?.message).toContain("item 2 failed on purpose");
    expect(await bad.stderr()).toContain("about to fail on item 2");
    const good = tasks.find((t) => t.index === 1)!;
    expect(good.successful).toBe(true);
    expect(good.exception).toBeUndefined();
    expect(await good.stdout()).toContain("body 1");
    expect(await good.stdout(0)).toContain("body 1");
    expect(await good.stdout(7)).toBe("");
    expect(await good.attempts()).toEqual([0]);
    const [start] = await run.step("start").tasks();
    expect(start!.index).toBeUndefined();
    expect(good.parents).toEqual([start!.pathspec]);
    expect((await start!.children()).sort()).toEqual(tasks.map((t) => t.pathspec).sort());
    // A listing is async-iterable as well as awaitable.
    let n = 0;
    for await (const _ of run.step("body").tasks()) n++;
    expect(n).toBe(3);
  });

  it("artifacts load only on demand and verify", async () => {
    const client = createClient(store, host);
    const run = await client.Flow.get(FLOW).run(okId);
    const end = (await run.endTask())!;
    const arts = await end.artifacts();
    const total = arts.find((a) => a.name === "total")!;
    expect(total.type).toBe("number");
    expect(total.size).toBeGreaterThan(0);
    expect(total.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await total.value()).toBe(5);
    expect(await end.data("total")).toBe(5);
    const err = await rejection(end.data("nope"));
    expect(err.message).toContain(`task ${end.pathspec} has no artifact 'nope'`);
  });

  it("typed access when the flow class is given", async () => {
    const client = createClient(store, host);
    const flow = client.Flow.get<ResumeForeachFlow>(FLOW);
    const run = (await flow.latestSuccessfulRun())!;
    const total = await run.data("total");
    expectTypeOf(total).toEqualTypeOf<number>();
    expectTypeOf(run.data<"items">).returns.resolves.toEqualTypeOf<number[]>();
    // @ts-expect-error not an artifact of the flow
    await rejection(run.data("notAnArtifact"));
    const untyped = (await client.Flow.get(FLOW).latestRun())!;
    expectTypeOf(untyped.data<"anything">).returns.resolves.toEqualTypeOf<unknown>();
  });

  it("namespaces: the current user's runs by default, another user's on request, all with null", async () => {
    cloneRunDoc(okId, "1000000000000-othr", { systemTags: ["user:someone-else"], tags: [], createdAt: 1_000_000_000_000 });
    try {
      const client = createClient(store, host);
      expect(client.getNamespace()).toBe(`user:${host.username()}`);
      const flow = client.Flow.get(FLOW);
      expect((await flow.runs()).map((r) => r.id)).not.toContain("1000000000000-othr");
      expect(client.namespace("user:someone-else")).toBe(`user:${host.username()}`);
      expect((await flow.runs()).map((r) => r.id)).toEqual(["1000000000000-othr"]);
      client.namespace(null);
      expect((await flow.runs()).map((r) => r.id)).toEqual([taggedId, okId, failedId, "1000000000000-othr"]);
      // A run asked for by id is found whatever the namespace.
      client.namespace("user:nobody");
      expect((await flow.run(okId)).id).toBe(okId);
      expect(await flow.latestRun()).toBeNull();
    } finally {
      const { rmSync } = await import("node:fs");
      rmSync(join(ds, "flows", FLOW, "runs", "1000000000000-othr"), { recursive: true, force: true });
    }
  });

  it("a running run with a stale heartbeat reads as failed (abandoned)", async () => {
    const old = Date.now() - 5 * 60_000;
    cloneRunDoc(okId, "1000000000001-dead", { status: "running", finishedAt: undefined, createdAt: old, tags: ["abandoned-test"] });
    writeFileSync(join(ds, "flows", FLOW, "runs", "1000000000001-dead", "heartbeat"), String(old));
    cloneRunDoc(okId, "1000000000002-live", { status: "running", finishedAt: undefined, createdAt: old, tags: ["abandoned-test"] });
    writeFileSync(join(ds, "flows", FLOW, "runs", "1000000000002-live", "heartbeat"), String(Date.now()));
    try {
      const client = createClient(store, host);
      const dead = await client.Flow.get(FLOW).run("1000000000001-dead");
      expect(dead.status).toBe("failed");
      expect(dead.abandoned).toBe(true);
      expect(dead.finished).toBe(true);
      const live = await client.Flow.get(FLOW).run("1000000000002-live");
      expect(live.status).toBe("running");
      expect(live.finished).toBe(false);
      expect(live.successful).toBe(false);
    } finally {
      const { rmSync } = await import("node:fs");
      for (const id of ["1000000000001-dead", "1000000000002-live"]) rmSync(join(ds, "flows", FLOW, "runs", id), { recursive: true, force: true });
    }
  });

  it("not-found errors name what was not found", async () => {
    const client = createClient(store, host);
    const e1 = await rejection(client.Flow.get(FLOW).run("123-nope"));
    expect(isTsflowError(e1) && e1.code).toBe("NotFound");
    expect(e1.message).toBe(`flow '${FLOW}' has no run '123-nope' in ${ds}`);
    const e2 = await rejection(client.get("NoSuchFlow"));
    expect(e2.message).toBe(`flow 'NoSuchFlow' has no runs in ${ds}`);
    const run = await client.Flow.get(FLOW).run(okId);
    expect(() => run.step("nope")).toThrow(`run ${FLOW}/${okId} has no step 'nope'`);
    const e3 = await rejection(run.step("body").task("99"));
    expect(e3.message).toBe(`step ${FLOW}/${okId}/body has no task '99' in ${ds}`);
    const failed = await client.Flow.get(FLOW).run(failedId);
    const e4 = await rejection(failed.data("total"));
    expect(e4.message).toContain(`run ${FLOW}/${failedId} has no finished end step`);
  });

  it("pathspecs are checked before any key is built", async () => {
    for (const bad of ["../etc", "Flow/../x", "/abs/path", "Flow//step", "Flow/run/step/task/extra", "a\\b", ""]) {
      expect(() => parsePathspec(bad), bad).toThrow(/pathspec/);
    }
    expect(parsePathspec("F/1-a/step/3")).toEqual(["F", "1-a", "step", "3"]);
    const client = createClient(store, host);
    const e = await rejection(client.get(`${FLOW}/..`));
    expect(e.message).toContain("is invalid");
    expect(() => client.Flow.get("../x")).toThrow(/invalid/);
  });

  it("get(pathspec) returns the object it names", async () => {
    const client = createClient(store, host);
    expect(((await client.get(`${FLOW}/${okId}`)) as Run).status).toBe("succeeded");
    const step = await client.get(`${FLOW}/${okId}/end`);
    expect("onlyTask" in step).toBe(true);
    const task = await client.get(`${FLOW}/${okId}/start/1`);
    expect((task as { pathspec: string }).pathspec).toBe(`${FLOW}/${okId}/start/1`);
  });

  it("mod.ts wires Flow and namespace to the default datastore", async () => {
    const before = process.env.TSFLOW_DATASTORE;
    process.env.TSFLOW_DATASTORE = ds;
    try {
      expect(getNamespace()).toBe(`user:${host.username()}`);
      const run = await DefaultFlow.get<ResumeForeachFlow>(FLOW).latestSuccessfulRun();
      expect(await run!.data("total")).toBe(1);
      setDefaultNamespace(null);
      expect(getNamespace()).toBeNull();
      setDefaultNamespace(`user:${host.username()}`);
    } finally {
      if (before === undefined) delete process.env.TSFLOW_DATASTORE;
      else process.env.TSFLOW_DATASTORE = before;
    }
  });
});
