/** `tsflow resume` end to end through the real CLI, then the run seen by the client and by runs/logs/dump/tag. */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { blobFiles, cli, fixture, STACK_LINE, tempStore } from "../_helpers.ts";

const FLOW = "ResumeForeachFlow";
const file = fixture("resume-foreach.ts");
const ds = tempStore();
let originId = "";
let resumedId = "";
let resumeOut = "";
let blobsBefore: Map<string, number>;
let blobsAfter: Map<string, number>;

const blobTimes = () => new Map(blobFiles(ds).map((b) => [b.path, statSync(b.path).mtimeMs]));
const runIds = () => readdirSync(join(ds, "flows", FLOW, "runs")).sort();

beforeAll(async () => {
  const first = await cli(["run", file, "--datastore", ds, "--count", "4", "--max-workers", "2", "--tag", "first"], { env: { TSFLOW_TEST_FAIL_JOIN: "1" } });
  expect(first.code, first.stderr).toBe(1);
  originId = runIds()[0]!;
  blobsBefore = blobTimes();
  // No env var this time: the join succeeds.
  const r = await cli(["resume", file, "--datastore", ds], { env: { TSFLOW_TEST_FAIL_JOIN: "" } });
  resumeOut = r.stdout + r.stderr;
  expect(r.code, resumeOut).toBe(0);
  resumedId = runIds()[1]!;
  blobsAfter = blobTimes();
}, 60_000);

describe("tsflow resume", () => {
  it("clones start and every foreach task by reference and re-runs only the join and end", async () => {
    expect(resumeOut).toContain(`Resuming ${FLOW}/${originId} from step 'join'`);
    expect(resumeOut).toContain("re-running join, end");
    expect(resumeOut).toMatch(/Cloned 5 tasks from .* \(start ×1, body ×4\)/);
    const doneOf = (run: string, step: string) => {
      const dir = join(ds, "flows", FLOW, "runs", run, "tasks", step);
      return readdirSync(dir).map((id) => JSON.parse(readFileSync(join(dir, id, "done.json"), "utf8")) as Record<string, any>);
    };
    for (const step of ["start", "body"]) {
      const origin = doneOf(originId, step);
      const cloned = doneOf(resumedId, step);
      expect(cloned.length).toBe(origin.length);
      for (const c of cloned) {
        expect(c.clonedFrom).toMatch(new RegExp(`^${originId}/${step}/\\d+$`));
        const [, s, id] = c.clonedFrom.split("/");
        const o = JSON.parse(readFileSync(join(ds, "flows", FLOW, "runs", originId, "tasks", s, id, "done.json"), "utf8"));
        // The same record, without the origin's own doc (a clone has its own task.json).
        const { clonedFrom: _, ...rest } = c;
        const { doc: _doc, ...result } = o;
        expect(rest).toEqual(result);
      }
      // Cloned tasks did not run: no attempt directories.
      for (const id of readdirSync(join(ds, "flows", FLOW, "runs", resumedId, "tasks", step))) {
        expect(readdirSync(join(ds, "flows", FLOW, "runs", resumedId, "tasks", step, id)).sort()).toEqual(["done.json", "task.json"]);
      }
    }
    for (const step of ["join", "end"]) expect(doneOf(resumedId, step)[0]!.clonedFrom).toBeUndefined();
    // No blob was rewritten; the only new ones are what join and end produced.
    for (const [path, mtime] of blobsBefore) expect(blobsAfter.get(path)).toBe(mtime);
    const produced = new Set([...doneOf(resumedId, "join"), ...doneOf(resumedId, "end")].flatMap((d) => Object.values(d.artifacts).map((a: any) => a.hash)));
    const added = [...blobsAfter.keys()].filter((p) => !blobsBefore.has(p));
    expect(added.length).toBe(blobsAfter.size - blobsBefore.size);
    for (const p of added) expect(produced.has(p.split("/").at(-1)!)).toBe(true);
    // Parameters: the origin's refs, not stored again.
    const runDoc = (id: string) => JSON.parse(readFileSync(join(ds, "flows", FLOW, "runs", id, "run.json"), "utf8"));
    expect(runDoc(resumedId).parameters).toEqual(runDoc(originId).parameters);
    expect(runDoc(resumedId).parameterValues).toEqual({ count: 4 });
  });

  it("the client shows both runs with statuses, parents and originRunId", async () => {
    const client = createClient(fsDatastore({ root: ds }), nodeHost());
    const runs = await client.Flow.get(FLOW).runs();
    expect(runs.map((r) => [r.id, r.status, r.originRunId])).toEqual([
      [resumedId, "succeeded", originId],
      [originId, "failed", undefined],
    ]);
    const resumed = runs[0]!;
    expect(await resumed.data("total")).toBe(0 + 1 + 4 + 9);
    const join = (await resumed.step("join").tasks())[0]!;
    const bodies = await resumed.step("body").tasks();
    expect(join.parents).toEqual(bodies.map((b) => b.pathspec));
    expect(bodies.map((b) => b.index)).toEqual([0, 1, 2, 3]);
    expect(bodies.every((b) => b.clonedFrom?.startsWith(`${originId}/body/`))).toBe(true);
    // A cloned task's logs are the origin's.
    expect(await bodies[2]!.stdout()).toContain("body 2");
    const originJoin = (await runs[1]!.step("join").tasks())[0]!;
    expect(originJoin.successful).toBe(false);
    expect(originJoin.exception?.message).toContain("join failed on purpose");
  });

  it("refuses to resume a run that succeeded, and a step that does not exist", async () => {
    const ok = await cli(["resume", file, "--datastore", ds, "--origin-run-id", resumedId]);
    expect(ok.code).toBe(2);
    expect(ok.stderr).toContain(`run ${FLOW}/${resumedId} succeeded, so there is nothing to resume`);
    expect(ok.stderr).not.toMatch(STACK_LINE);
    const bad = await cli(["resume", file, "nosuchstep", "--datastore", ds, "--origin-run-id", originId]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`flow ${FLOW} has no step 'nosuchstep' to resume from`);
    const missing = await cli(["resume", file, "--datastore", ds, "--origin-run-id", "123-nope"]);
    expect(missing.stderr).toContain(`flow '${FLOW}' has no run '123-nope' in`);
    expect(runIds().length).toBe(2);
  });

  it("resumes from a named step: that step and everything after it re-run", async () => {
    const r = await cli(["resume", file, "body", "--datastore", ds, "--origin-run-id", resumedId]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Cloned 1 task from .* \(start ×1\)/);
    const id = runIds()[2]!;
    const client = createClient(fsDatastore({ root: ds }), nodeHost());
    const run = await client.Flow.get(FLOW).run(id);
    expect(run.originRunId).toBe(resumedId);
    expect((await run.step("body").tasks()).every((t) => t.clonedFrom === undefined)).toBe(true);
    expect(await run.data("total")).toBe(14);
  });
});

describe("tsflow resume of a partly failed foreach", () => {
  it("clones the successful siblings and re-runs the failed item and what follows", async () => {
    const ds2 = tempStore();
    // One worker: items 0 and 1 succeed, item 2 fails, item 3 never starts.
    const first = await cli(["run", file, "--datastore", ds2, "--count", "4", "--max-workers", "1"], { env: { TSFLOW_TEST_FAIL_ITEM: "2" } });
    expect(first.code).toBe(1);
    const r = await cli(["resume", file, "--datastore", ds2], { env: { TSFLOW_TEST_FAIL_ITEM: "" } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("from step 'body' (its successful tasks are cloned)");
    expect(r.stdout).toMatch(/Cloned 3 tasks from .* \(start ×1, body ×2\)/);
    const client = createClient(fsDatastore({ root: ds2 }), nodeHost());
    const run = (await client.Flow.get(FLOW).latestRun())!;
    const bodies = await run.step("body").tasks();
    expect(bodies.map((b) => [b.index, b.clonedFrom !== undefined])).toEqual([
      [0, true],
      [1, true],
      [2, false],
      [3, false],
    ]);
    expect(await run.data("total")).toBe(14);
    // Logs of a clone of a clone are found where the task really ran.
    const again = await cli(["resume", file, "join", "--datastore", ds2]);
    expect(again.code, again.stderr).toBe(0);
    const third = (await client.Flow.get(FLOW).latestRun())!;
    const b0 = (await third.step("body").tasks())[0]!;
    expect(b0.clonedFrom?.startsWith(`${run.id}/`)).toBe(true);
    expect(await b0.stdout()).toBe("body 0\n");
  });
});

describe("inspection commands", () => {
  it("runs lists every run, newest first, with status and tags", async () => {
    const r = await cli(["runs", FLOW, "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^RUN\s+STATUS\s+USER\s+STARTED\s+DURATION\s+TAGS/);
    expect(lines.findIndex((l) => l.includes(resumedId))).toBeLessThan(lines.findIndex((l) => l.startsWith(`${FLOW}/${originId}`)));
    expect(lines.find((l) => l.startsWith(`${FLOW}/${originId}`))).toMatch(/failed .* first/);
    const all = await cli(["runs", "--datastore", ds]);
    expect(all.stdout).toContain(`${FLOW}/${originId}`);
    const none = await cli(["runs", "NoSuchFlow", "--datastore", ds]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("flow 'NoSuchFlow' has no runs in");
  });

  it("logs prints a task's output; a step with one task needs no task id", async () => {
    const start = await cli(["logs", `${FLOW}/${originId}/start`, "--datastore", ds]);
    expect(start.stdout).toBe("start ran\n");
    const many = await cli(["logs", `${FLOW}/${originId}/body`, "--datastore", ds]);
    // Several tasks: each one's output under a header, as dump shows them.
    expect(many.code, many.stderr).toBe(0);
    expect(many.stdout.match(new RegExp(`^${FLOW}/${originId}/body/\\d+ \\[index \\d\\] \\(attempt \\d+, \\w+\\)$`, "gm"))).toHaveLength(4);
    const body = readdirSync(join(ds, "flows", FLOW, "runs", originId, "tasks", "body")).sort((a, b) => Number(a) - Number(b));
    const one = await cli(["logs", `${FLOW}/${originId}/body/${body[1]}`, "--datastore", ds]);
    expect(one.stdout).toBe("body 1\n");
    const err = await cli(["logs", `${FLOW}/${originId}/join`, "--stderr", "--datastore", ds]);
    expect(err.code).toBe(0);
    const noAttempt = await cli(["logs", `${FLOW}/${originId}/start`, "--attempt", "3", "--datastore", ds]);
    expect(noAttempt.stderr).toContain("has no attempt 3");
    for (const bad of [`${FLOW}/../x/start`, "/etc/passwd/x", `${FLOW}/${originId}/nope`]) {
      const r = await cli(["logs", bad, "--datastore", ds]);
      expect(r.code, bad).not.toBe(0);
      expect(r.stderr).not.toMatch(STACK_LINE);
    }
  });

  it("dump shows artifact names, types, sizes and previews, or JSON", async () => {
    const r = await cli(["dump", `${FLOW}/${resumedId}/end`, "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/total\s+number\s+\d+ B\s+14/);
    const j = await cli(["dump", `${FLOW}/${resumedId}/end`, "--json", "--include", "total,count", "--datastore", ds]);
    expect(JSON.parse(j.stdout)).toEqual({ total: 14, count: 4 });
    const missing = await cli(["dump", `${FLOW}/${resumedId}/end`, "--include", "nope", "--datastore", ds]);
    expect(missing.stderr).toContain("has no artifact 'nope'");
  });

  it("tag add, remove and list change the run's tags", async () => {
    const add = await cli(["tag", "add", `${FLOW}/${originId}`, "keep", "best", "--datastore", ds]);
    expect(add.code, add.stderr).toBe(0);
    const remove = await cli(["tag", "remove", `${FLOW}/${originId}`, "first", "--datastore", ds]);
    expect(remove.code, remove.stderr).toBe(0);
    const list = await cli(["tag", "list", `${FLOW}/${originId}`, "--datastore", ds]);
    expect(list.stdout).toMatch(/^User tags:\n {2}keep\n {2}best\nSystem tags \(set by tsflow\):\n {2}user:\S+\n/);
    // A tag change is a document of its own (core/_tags.ts): run.json keeps the run's status.
    const doc = JSON.parse(readFileSync(join(ds, "flows", FLOW, "runs", originId, "run.json"), "utf8"));
    expect(doc.status).toBe("failed");
    const bad = await cli(["tag", "add", `${FLOW}/nope`, "x", "--datastore", ds]);
    expect(bad.stderr).toContain(`flow '${FLOW}' has no run 'nope'`);
  });
});
