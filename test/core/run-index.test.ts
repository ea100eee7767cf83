/**
 * One reader of a run's tasks for the client and the viewer (issue 12.4), and the run index
 * written as a run ends (issue 17.4): for real runs (a retried task, a failed attempt, a failed
 * run, a resumed run with clones, an abandoned run) the client and the viewer agree on every
 * task, read with the index or task by task (the index deleted, as in a datastore written
 * before indexes); a finished run is read in a few requests with its index; an index that does
 * not match run.json (an abandoned run, a rewritten final record) is not used.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { hostname } from "node:os";
import { join } from "node:path";
import { resumeFlow, runFlow } from "tsflow";
import { beforeAll, describe, expect, it } from "vitest";
import { runIndexKey } from "../../core/_layout.ts";
import { readRunIndex } from "../../core/_tasks.ts";
import { createClient } from "../../core/client.ts";
import type { Datastore } from "../../core/types.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { getRun, getTasks } from "../../viewer/data.ts";
import { fixture, tempStore } from "../_helpers.ts";
import ResumeForeachFlow from "../fixtures/resume-foreach.ts";
import RetryFlow, { AlwaysFailsFlow } from "../fixtures/retry.ts";

const ds = tempStore();
const host = nodeHost();
const runs: Record<string, { flow: string; id: string }> = {};

/** A store over the same directory that counts requests and has no synchronous reads (as S3). */
function counting(): { store: Datastore; requests: () => number } {
  const fs = fsDatastore({ root: ds });
  let n = 0;
  const store: Datastore = {
    name: fs.name,
    url: fs.url,
    get: (k, o) => {
      n++;
      return fs.get(k, o);
    },
    put: (k, d, o) => fs.put(k, d, o),
    has: (k) => {
      n++;
      return fs.has(k);
    },
    list: (p) => {
      n++;
      return fs.list(p);
    },
    delete: (k) => fs.delete(k),
  };
  return { store, requests: () => n };
}

/** Every task of a run as the client sees it. */
async function clientView(store: Datastore, flow: string, id: string) {
  const run = await createClient(store, host).Flow.get(flow).run(id);
  const out: Record<string, unknown>[] = [];
  for (const step of await run.steps()) {
    for await (const t of step.tasks()) {
      out.push({
        pathspec: t.pathspec,
        successful: t.successful,
        finished: t.finished,
        attempt: t.attempt,
        attempts: await t.attempts(),
        exception: t.exception?.message,
        parents: t.parents,
        foreach: t.foreach,
        clonedFrom: t.clonedFrom,
        startedAt: t.startedAt?.getTime(),
        finishedAt: t.finishedAt?.getTime(),
        artifacts: (await t.artifacts()).map((a) => `${a.name}:${a.hash}`).sort(),
      });
    }
  }
  return out;
}

/** Every task of a run as the viewer's run page sees it. */
async function viewerView(store: Datastore, flow: string, id: string) {
  const info = await getRun(store, flow, id);
  return getTasks(store, info!);
}

/** Both views; they must agree with each other on every task. */
async function views(flow: string, id: string) {
  const c = counting();
  const client = await clientView(c.store, flow, id);
  const clientRequests = c.requests();
  const v = counting();
  const viewer = await viewerView(v.store, flow, id);
  expect(viewer.map((t) => `${flow}/${id}/${t.step}/${t.task}`).sort()).toEqual(client.map((t) => t.pathspec).sort());
  for (const row of viewer) {
    const t = client.find((x) => x.pathspec === `${flow}/${id}/${row.step}/${row.task}`)!;
    expect(row.state === "succeeded", String(t.pathspec)).toBe(t.successful);
    expect(row.done?.clonedFrom).toBe(t.clonedFrom);
    // A cloned task has no attempts of its own in the viewer; the client names the one it reused.
    expect(row.attempts.map((a) => a.attempt)).toEqual(t.clonedFrom ? [] : t.attempts);
    if (!t.clonedFrom) expect(row.attempts.at(-1)?.finishedAt).toBe(t.finishedAt);
  }
  return { client, viewer, clientRequests, viewerRequests: v.requests() };
}

function deleteIndex(flow: string, id: string) {
  rmSync(join(ds, "flows", flow, "runs", id, "index.json"));
  rmSync(join(ds, "flows", flow, "runs", id, "index"), { recursive: true });
}

/** The pid of a process that has just ended. */
const deadPid = () => Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout);

beforeAll(async () => {
  const retried = await runFlow(RetryFlow, { datastore: ds, file: fixture("retry.ts") });
  const failing = await runFlow(AlwaysFailsFlow, { datastore: ds, file: fixture("retry.ts"), exportName: "AlwaysFailsFlow" });
  process.env.TSFLOW_TEST_FAIL_ITEM = "2";
  // One worker: items 0 and 1 succeed before item 2 fails.
  const failedForeach = await runFlow(ResumeForeachFlow, { datastore: ds, file: fixture("resume-foreach.ts"), params: { count: 5 }, maxWorkers: 1 });
  delete process.env.TSFLOW_TEST_FAIL_ITEM;
  const resumed = await resumeFlow(ResumeForeachFlow, { datastore: ds, file: fixture("resume-foreach.ts"), originRunId: failedForeach.runId });
  expect([retried.successful, failing.successful, failedForeach.successful, resumed.successful]).toEqual([true, false, false, true]);
  runs.retried = { flow: "RetryFlow", id: retried.runId };
  runs.failing = { flow: "AlwaysFailsFlow", id: failing.runId };
  runs.failedForeach = { flow: "ResumeForeachFlow", id: failedForeach.runId };
  runs.resumed = { flow: "ResumeForeachFlow", id: resumed.runId };
}, 120_000);

describe("one reader of a run's tasks, with the run index", () => {
  for (const name of ["retried", "failing", "failedForeach", "resumed"]) {
    it(`${name}: the client and the viewer agree, with the index and task by task`, async () => {
      const { flow, id } = runs[name]!;
      expect(await readRunIndex(fsDatastore({ root: ds }), flow, id, (await getRun(fsDatastore({ root: ds }), flow, id))!)).not.toBeNull();
      const indexed = await views(flow, id);
      // Copy the run without its index: what a datastore written before indexes holds.
      const copy = `${id}x`;
      cpSync(join(ds, "flows", flow, "runs", id), join(ds, "flows", flow, "runs", copy), { recursive: true });
      deleteIndex(flow, copy);
      const doc = JSON.parse(readFileSync(join(ds, "flows", flow, "runs", copy, "run.json"), "utf8"));
      writeFileSync(join(ds, "flows", flow, "runs", copy, "run.json"), JSON.stringify({ ...doc, runId: copy }));
      const plain = await views(flow, copy);
      const rename = (rows: Record<string, unknown>[]) => JSON.parse(JSON.stringify(rows).replaceAll(`${id}x`, id));
      expect(rename(plain.client)).toEqual(indexed.client);
      expect(plain.viewer).toEqual(indexed.viewer);
      // With the index, reading every task costs a few requests, not a few per task.
      expect(indexed.viewerRequests).toBeLessThanOrEqual(12);
      expect(plain.viewerRequests).toBeGreaterThan(indexed.client.length);
      expect(indexed.clientRequests).toBeLessThan(plain.clientRequests);
    });
  }

  it("the viewer's run page is the same with the index and without", async () => {
    for (const name of ["retried", "failing", "resumed"]) {
      const { flow, id } = runs[name]!;
      const copy = `${id}p`;
      cpSync(join(ds, "flows", flow, "runs", id), join(ds, "flows", flow, "runs", copy), { recursive: true });
      deleteIndex(flow, copy);
      const doc = JSON.parse(readFileSync(join(ds, "flows", flow, "runs", id, "run.json"), "utf8"));
      writeFileSync(join(ds, "flows", flow, "runs", copy, "run.json"), JSON.stringify({ ...doc, runId: copy }));
      const page = async (run: string) => {
        const c = counting();
        const app = createViewerApp({ store: c.store, host });
        const res = await app.request(`http://127.0.0.1/runs/${flow}/${run}`, { headers: { Host: "127.0.0.1" } });
        expect(res.status).toBe(200);
        return { html: (await res.text()).replaceAll(copy, id), requests: c.requests() };
      };
      const [withIndex, without] = [await page(id), await page(copy)];
      expect(without.html).toEqual(withIndex.html);
      expect(withIndex.requests).toBeLessThan(without.requests);
    }
  });

  it("reading the end step of an indexed run loads that step's part only", async () => {
    const { flow, id } = runs.resumed!;
    const c = counting();
    const run = await createClient(c.store, host).Flow.get(flow).run(id);
    const before = c.requests();
    const end = await run.endTask();
    expect(end?.successful).toBe(true);
    // The manifest and the end step's part: not the foreach step's.
    expect(c.requests() - before).toBe(2);
  });

  it("the retried task shows its failed attempts; the failed run its failed task's error", async () => {
    const r = await views(runs.retried!.flow, runs.retried!.id);
    const flaky = r.client.find((t) => String(t.pathspec).includes("/flaky/"))!;
    expect(flaky).toMatchObject({ successful: true, attempt: 2, attempts: [0, 1, 2] });
    expect(r.viewer.find((t) => t.step === "flaky")!.attempts.map((a) => a.ok)).toEqual([false, false, true]);
    const f = await views(runs.failing!.flow, runs.failing!.id);
    const broken = f.client.find((t) => String(t.pathspec).includes("/broken/"))!;
    expect(broken).toMatchObject({ successful: false, finished: true, attempt: 2, attempts: [0, 1, 2], exception: "still broken on attempt 2" });
    expect(f.viewer.find((t) => t.step === "broken")!.state).toBe("failed");
  });

  it("the resumed run lists its cloned tasks, and the clones' logs are their origin's", async () => {
    const { client } = await views(runs.resumed!.flow, runs.resumed!.id);
    const cloned = client.filter((t) => t.clonedFrom);
    // start and the two body items that succeeded before item 2 failed.
    expect(cloned.length).toBe(3);
    const task = await (await createClient(fsDatastore({ root: ds }), host).Flow.get("ResumeForeachFlow").run(runs.resumed!.id)).step("start").onlyTask();
    expect(task.clonedFrom).toBeDefined();
    expect(await task.stdout()).toContain("start ran");
  });

  it("an abandoned run and a rewritten final record are read task by task, never from an index that does not match", async () => {
    const { flow, id } = runs.retried!;
    const store = fsDatastore({ root: ds });
    const before = await views(flow, id);
    // An orchestrator that died: its run.json still says running (a copy of the run, index included).
    const dead = `${id}d`;
    cpSync(join(ds, "flows", flow, "runs", id), join(ds, "flows", flow, "runs", dead), { recursive: true });
    const doc = JSON.parse(readFileSync(join(ds, "flows", flow, "runs", id, "run.json"), "utf8"));
    writeFileSync(join(ds, "flows", flow, "runs", dead, "run.json"), JSON.stringify({ ...doc, runId: dead, status: "running", finishedAt: undefined, orchestrator: { hostname: hostname(), pid: deadPid() } }));
    expect((await createClient(store, host).Flow.get(flow).run(dead)).abandoned).toBe(true);
    expect(await readRunIndex(store, flow, dead, (await getRun(store, flow, dead))!)).toBeNull();
    const abandoned = await views(flow, dead);
    expect(abandoned.viewer.map((t) => t.state)).toEqual(before.viewer.map((t) => t.state));
    expect(abandoned.viewerRequests).toBeGreaterThan(before.viewerRequests);
    // A final record rewritten after the index (another end time): the index is not used.
    const other = `${id}r`;
    cpSync(join(ds, "flows", flow, "runs", id), join(ds, "flows", flow, "runs", other), { recursive: true });
    writeFileSync(join(ds, "flows", flow, "runs", other, "run.json"), JSON.stringify({ ...doc, runId: other, finishedAt: doc.finishedAt + 1 }));
    expect(await readRunIndex(store, flow, other, (await getRun(store, flow, other))!)).toBeNull();
    // And an index whose manifest matches but whose part is gone falls back too.
    const torn = `${id}t`;
    cpSync(join(ds, "flows", flow, "runs", id), join(ds, "flows", flow, "runs", torn), { recursive: true });
    writeFileSync(join(ds, "flows", flow, "runs", torn, "run.json"), JSON.stringify({ ...doc, runId: torn }));
    const manifest = JSON.parse(readFileSync(join(ds, runIndexKey(flow, id)), "utf8"));
    writeFileSync(join(ds, runIndexKey(flow, torn)), JSON.stringify({ ...manifest, runId: torn }));
    expect(await readRunIndex(store, flow, torn, (await getRun(store, flow, torn))!)).not.toBeNull();
    rmSync(join(ds, "flows", flow, "runs", torn, "index", "1.json"));
    expect(await readRunIndex(store, flow, torn, (await getRun(store, flow, torn))!)).toBeNull();
    const tornViews = await views(flow, torn);
    expect(tornViews.viewer).toEqual(before.viewer);
  });

  it("a store that refuses the index: the run still succeeds, says so once, and reads task by task", async () => {
    const dir = tempStore();
    const fs = fsDatastore({ root: dir });
    const refusing: Datastore = {
      name: fs.name,
      url: fs.url,
      get: (k, o) => fs.get(k, o),
      has: (k) => fs.has(k),
      list: (p) => fs.list(p),
      delete: (k) => fs.delete(k),
      put: async (k, d, o) => {
        if (/\/runs\/[^/]+\/index/.test(k)) throw new Error("refused on purpose");
        return fs.put(k, d, o);
      },
    };
    const warnings: string[] = [];
    const logger = { info() {}, error() {}, warn: (m: string) => warnings.push(m) };
    const run = await runFlow(RetryFlow, { datastore: refusing, executor: "inline", logger });
    expect(run.successful).toBe(true);
    expect(warnings.filter((w) => w.includes("cannot write the index"))).toHaveLength(1);
    expect(await readRunIndex(fs, "RetryFlow", run.runId, (await getRun(fs, "RetryFlow", run.runId))!)).toBeNull();
    const flaky = await (await createClient(fs, host).Flow.get("RetryFlow").run(run.runId)).step("flaky").onlyTask();
    expect([flaky.successful, await flaky.attempts()]).toEqual([true, [0, 1, 2]]);
  });

  it("tags changed after the run ended are read from their own records, not the index", async () => {
    const { flow, id } = runs.retried!;
    const client = createClient(fsDatastore({ root: ds }), host);
    client.namespace(null);
    await (await client.Flow.get(flow).run(id)).addTag("late");
    expect((await client.Flow.get(flow).run(id)).tags).toContain("late");
    expect((await getRun(fsDatastore({ root: ds }), flow, id))!.tags).toContain("late");
    expect(await readRunIndex(fsDatastore({ root: ds }), flow, id, (await getRun(fsDatastore({ root: ds }), flow, id))!)).not.toBeNull();
  });
});
