/**
 * Tasks that record themselves on the process executor (core/task.ts SelfRecord): a first attempt
 * that succeeds quickly writes no task.json (its doc goes into done.json), one still running after
 * a while writes it (the worker's timer, or the orchestrator when the step blocks the worker's
 * thread), and one that fails keeps the records it always had. Every reader — client, viewer,
 * resume, spin, @cached — finds a quick task's parents, foreach position and start in done.json.
 *
 * The quick-task runs set TSFLOW_SELF_RECORD_MS to a minute, so that no task of theirs writes
 * task.json on a loaded machine; the running ones wait on gate files, never on a sleep.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { resumeFlow, runFlow, startFlow } from "tsflow";
import { afterEach, describe, expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import { listAttempts, readTaskDetail } from "../../core/_tasks.ts";
import { wrapDatastore } from "../../core/_datastore.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { cli, fixture, tempStore, waitFor } from "../_helpers.ts";
import SelfRecordFlow from "../fixtures/self-record.ts";

const file = fixture("self-record.ts");
const FLOW = "SelfRecordFlow";
const host = nodeHost();
const saved = process.env.TSFLOW_SELF_RECORD_MS;
afterEach(() => {
  if (saved === undefined) delete process.env.TSFLOW_SELF_RECORD_MS;
  else process.env.TSFLOW_SELF_RECORD_MS = saved;
});

const taskDir = (ds: string, run: string, step: string, id: string) => join(ds, "flows", FLOW, "runs", run, "tasks", step, id);
const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));
/** The record of a task's doc, wherever it is: task.json, else done.json's `doc`. */
const docIn = (dir: string) => (existsSync(join(dir, "task.json")) ? json(join(dir, "task.json")) : existsSync(join(dir, "done.json")) ? json(join(dir, "done.json")).doc : undefined);
/** The `work` task ids by foreach index, from whatever records exist so far. */
function workByIndex(ds: string, run: string): Map<number, string> {
  const dir = join(ds, "flows", FLOW, "runs", run, "tasks", "work");
  const out = new Map<number, string>();
  for (const id of existsSync(dir) ? readdirSync(dir) : []) {
    const doc = docIn(join(dir, id));
    if (doc) out.set(doc.foreach.at(-1).index, id);
  }
  return out;
}

describe("a task that records itself", () => {
  it("writes no task.json when it succeeds quickly; client, viewer, resume, spin and @cached read its doc from done.json", async () => {
    process.env.TSFLOW_SELF_RECORD_MS = "60000";
    const ds = tempStore();
    const store = fsDatastore({ root: ds });
    // Item 3 fails its first attempt, so the run also has a retried task (its records as always).
    const run = await runFlow(SelfRecordFlow, { file, executor: "process", datastore: store, params: { n: 5, fail: "once" }, maxWorkers: 2, with: ["cached"] });
    expect(run.error).toBeUndefined();
    const ids = workByIndex(ds, run.runId);
    expect([...ids.keys()].sort()).toEqual([0, 1, 2, 3, 4]);
    const startId = readdirSync(join(ds, "flows", FLOW, "runs", run.runId, "tasks", "start"))[0]!;
    for (const [index, id] of ids) {
      const dir = taskDir(ds, run.runId, "work", id);
      const done = json(join(dir, "done.json"));
      if (index === 3) {
        // Failed once, then succeeded: task.json (with attempt 0's start), 0/result.json, 1/start.json.
        expect(readdirSync(dir).sort()).toEqual(["0", "1", "done.json", "task.json"]);
        expect(json(join(dir, "task.json"))).toMatchObject({ step: "work", taskId: id, start: { attempt: 0, startedAt: expect.any(Number) } });
        expect(json(join(dir, "0", "result.json"))).toMatchObject({ ok: false, error: { message: "item 3 fails (attempt 0)" } });
        expect(existsSync(join(dir, "1", "start.json"))).toBe(true);
        expect(done.attempt).toBe(1);
        expect(done.doc).toBeUndefined();
        continue;
      }
      expect(readdirSync(dir)).toEqual(["done.json"]);
      expect(done.doc).toEqual({
        step: "work",
        taskId: id,
        parents: [`${run.runId}/start/${startId}`],
        foreach: [{ step: "start", task: startId, index, count: 5 }],
        createdAt: expect.any(Number),
        start: { attempt: 0, mode: "run", executor: "process", startedAt: done.startedAt },
      });
    }
    const quick = ids.get(4)!;
    const quickDoc = json(join(taskDir(ds, run.runId, "work", quick), "done.json")).doc;

    // Read task by task (as a run without its index: an abandoned one), then from the index.
    const check = async () => {
      const client = createClient(store, host);
      const r = await client.Flow.get(FLOW).run(run.runId);
      const tasks = await r.step("work").tasks();
      expect(tasks.map((t) => t.index).sort()).toEqual([0, 1, 2, 3, 4]);
      for (const t of tasks) {
        expect(t.parents).toEqual([`${FLOW}/${run.runId}/start/${startId}`]);
        expect(t.foreach).toEqual([{ step: "start", task: startId, index: t.index, count: 5 }]);
        expect(typeof t.doc.createdAt).toBe("number");
        expect(t.startedAt).toBeInstanceOf(Date);
        expect(await t.attempts()).toEqual(t.index === 3 ? [0, 1] : [0]);
      }
      const one = await r.step("work").task(quick);
      expect(one.doc).toMatchObject({ step: "work", taskId: quick, createdAt: quickDoc.createdAt });
      // The viewer's task page shows the parents and the foreach position.
      const app = createViewerApp({ store: wrapDatastore(store), host });
      const page = await (await app.request(`/runs/${FLOW}/${run.runId}/work/${quick}`)).text();
      expect(page).toContain(`${run.runId}/start/${startId}`);
      expect(page).toContain("start: item 5 of 5");
    };
    const index = join(ds, "flows", FLOW, "runs", run.runId, "index.json");
    const indexText = readFileSync(index, "utf8");
    rmSync(index);
    await check();
    writeFileSync(index, indexText);
    await check();
    const detail = await readTaskDetail(wrapDatastore(store), FLOW, run.runId, "work", quick);
    expect(detail?.doc).toEqual(quickDoc);
    expect(detail?.attempts).toMatchObject([{ attempt: 0, ok: true, executor: "process", mode: "run", startedAt: quickDoc.start.startedAt }]);
    expect(await listAttempts(wrapDatastore(store), FLOW, run.runId, "work", quick)).toEqual([0]);

    // @cached found every work task by its doc: a second run reuses them all.
    const again = await runFlow(SelfRecordFlow, { file, executor: "process", datastore: store, params: { n: 5, fail: "once" }, maxWorkers: 2, with: ["cached"] });
    const cachedDone = [...workByIndex(ds, again.runId).values()].map((id) => json(join(taskDir(ds, again.runId, "work", id), "done.json")));
    expect(cachedDone.map((d) => d.clonedFrom?.split("/")[1])).toEqual(Array(5).fill("work"));

    // Resume from `join` matches the origin's work tasks by foreach position and clones them;
    // a clone has a task.json of its own and never the origin's doc.
    const resumed = await resumeFlow(SelfRecordFlow, { file, executor: "process", datastore: store, originRunId: run.runId, step: "join", maxWorkers: 2 });
    expect(resumed.error).toBeUndefined();
    const clones = workByIndex(ds, resumed.runId);
    for (const [index, id] of clones) {
      const dir = taskDir(ds, resumed.runId, "work", id);
      expect(json(join(dir, "done.json")).clonedFrom).toBe(`${run.runId}/work/${ids.get(index)}`);
      expect(json(join(dir, "done.json")).doc).toBeUndefined();
      expect(json(join(dir, "task.json"))).toMatchObject({ step: "work", taskId: id, foreach: [{ index }] });
    }
    expect(clones.size).toBe(5);

    // spin by foreach index finds the quick task from its done.json.
    const spun = await cli(["spin", `${FLOW}/${run.runId}/work/${quick}`, "--datastore", ds, "--no-persist"]);
    expect(spun.code, spun.stderr).toBe(0);
    const byIndex = await cli(["spin", file, "work", "--from", run.runId, "--index", "4", "--datastore", ds, "--no-persist"]);
    expect(byIndex.code, byIndex.stderr).toBe(0);
    expect(byIndex.stdout).toContain(`/work/${quick}`);
    expect(byIndex.stdout).toMatch(/square\s+same/);
  });

  it("is recorded while it runs: a task waiting on a gate (by its own timer) and one blocking its worker's thread (by the orchestrator)", async () => {
    delete process.env.TSFLOW_SELF_RECORD_MS;
    const ds = tempStore();
    const store = fsDatastore({ root: ds });
    const gate = join(ds, "gate");
    const block = join(ds, "block");
    const handle = startFlow(SelfRecordFlow, { file, executor: "process", datastore: store, params: { n: 4, gate, block }, maxWorkers: 4 });
    try {
      const runId = await handle.started;
      let ids = new Map<number, string>();
      const recorded = (i: number) => ids.has(i) && existsSync(join(taskDir(ds, runId, "work", ids.get(i)!), "task.json"));
      const bothRecorded = () => {
        ids = workByIndex(ds, runId);
        return recorded(1) && recorded(2);
      };
      await waitFor(() => bothRecorded() || handle.status !== "running", 30_000, "the waiting tasks' task.json");
      expect(handle.status).toBe("running");
      for (const i of [1, 2]) {
        const dir = taskDir(ds, runId, "work", ids.get(i)!);
        expect(existsSync(join(dir, "done.json"))).toBe(false);
        expect(json(join(dir, "task.json"))).toMatchObject({ step: "work", foreach: [{ index: i, count: 4 }], start: { attempt: 0, startedAt: expect.any(Number) } });
      }
      // The client sees both as running tasks, with their foreach position (a quick item may
      // still be running too on a loaded machine).
      const r = await createClient(store, host).Flow.get(FLOW).run(runId);
      const running = (await r.step("work").tasks()).filter((t) => !t.successful);
      expect(running.map((t) => t.index)).toEqual(expect.arrayContaining([1, 2]));
      for (const t of running.filter((x) => x.index === 1 || x.index === 2)) expect(t.parents).toHaveLength(1);
    } finally {
      writeFileSync(gate, "");
      writeFileSync(block, "");
      // Even after a failed check: the run must end before its directory is removed.
      await handle.wait().catch(() => {});
    }
    const run = await handle.wait();
    expect(run.error).toBeUndefined();
    expect(await run.data("total")).toBe(0 + 1 + 4 + 9);
  });

  it("with TSFLOW_SELF_RECORD_MS=0 every task writes its task.json as it starts, however quick", async () => {
    // A timer of 0 ms fired only if the worker's event loop reached its timers before the task
    // ended: a quick task often did not, and wrote no task.json (the power-loss test counted on one).
    process.env.TSFLOW_SELF_RECORD_MS = "0";
    const ds = tempStore();
    const run = await runFlow(SelfRecordFlow, { file, executor: "process", datastore: fsDatastore({ root: ds }), params: { n: 30 }, maxWorkers: 2 });
    expect(run.error).toBeUndefined();
    const tasks = join(ds, "flows", FLOW, "runs", run.runId, "tasks");
    const dirs = readdirSync(tasks).flatMap((step) => readdirSync(join(tasks, step)).map((id) => join(tasks, step, id)));
    expect(dirs).toHaveLength(run.tasks);
    expect(dirs.filter((dir) => !existsSync(join(dir, "task.json")))).toEqual([]);
    for (const dir of dirs) expect(json(join(dir, "task.json")).start).toEqual(json(join(dir, "done.json")).doc.start);
  });

  it("refuses a TSFLOW_SELF_RECORD_MS that is not a number of milliseconds, naming it", async () => {
    process.env.TSFLOW_SELF_RECORD_MS = "soon";
    await expect(runFlow(SelfRecordFlow, { file, executor: "process", datastore: tempStore() })).rejects.toThrow("TSFLOW_SELF_RECORD_MS must be a number of milliseconds (0 or more), got 'soon'");
  });

  it("keeps a failed task's records: task.json with its start, each attempt's result.json, no done.json", async () => {
    process.env.TSFLOW_SELF_RECORD_MS = "60000";
    const ds = tempStore();
    const store = fsDatastore({ root: ds });
    const run = await runFlow(SelfRecordFlow, { file, executor: "process", datastore: store, params: { n: 5, fail: "always" }, maxWorkers: 2 });
    expect(run.error?.message).toBe("item 3 fails (attempt 1)");
    const id = run.error!.pathspec!.split("/")[2]!;
    const dir = taskDir(ds, run.runId, "work", id);
    expect(readdirSync(dir).sort()).toEqual(["0", "1", "task.json"]);
    expect(json(join(dir, "task.json"))).toMatchObject({ step: "work", taskId: id, foreach: [{ index: 3 }], start: { attempt: 0, mode: "run", executor: "process" } });
    expect(json(join(dir, "0", "result.json"))).toMatchObject({ ok: false, error: { message: "item 3 fails (attempt 0)" } });
    expect(json(join(dir, "1", "result.json"))).toMatchObject({ ok: false, error: { message: "item 3 fails (attempt 1)" } });
    const t = await (await createClient(store, host).Flow.get(FLOW).run(run.runId)).step("work").task(id);
    expect(t.index).toBe(3);
    expect(t.exception?.message).toBe("item 3 fails (attempt 1)");
  });

  it("is recorded by the orchestrator when its worker dies before it recorded itself", async () => {
    process.env.TSFLOW_SELF_RECORD_MS = "60000";
    const ds = tempStore();
    const block = join(ds, "block");
    const handle = startFlow(SelfRecordFlow, { file, executor: "process", datastore: fsDatastore({ root: ds }), params: { n: 3, block }, maxWorkers: 3 });
    const runId = await handle.started;
    // Item 2 blocks its worker's thread (neither its timer nor the orchestrator's, a minute and
    // five, records it meanwhile) after writing that worker's pid.
    try {
      await waitFor(() => existsSync(`${block}.pid`) && readFileSync(`${block}.pid`, "utf8") !== "", 60_000, "item 2 to start");
      expect(workByIndex(ds, runId).has(2)).toBe(false);
      process.kill(Number(readFileSync(`${block}.pid`, "utf8")), "SIGKILL");
    } finally {
      // The retry (@retry) passes the gate at once.
      writeFileSync(block, "");
      await handle.wait().catch(() => {});
    }
    const run = await handle.wait();
    expect(run.error).toBeUndefined();
    const id = workByIndex(ds, runId).get(2)!;
    const dir = taskDir(ds, runId, "work", id);
    expect(readdirSync(dir).sort()).toEqual(["0", "1", "done.json", "task.json"]);
    expect(json(join(dir, "task.json"))).toMatchObject({ step: "work", taskId: id, foreach: [{ index: 2 }], start: { attempt: 0, startedAt: expect.any(Number) } });
    expect(json(join(dir, "0", "result.json"))).toMatchObject({ ok: false, error: { type: "WorkerCrashed" } });
    expect(json(join(dir, "done.json"))).toMatchObject({ ok: true, attempt: 1 });
  });
});
