/**
 * The viewer at scale: a datastore with 5,000 runs and one run with a 10,000-task foreach,
 * written directly as JSON documents through the layout helpers (no flow runs), then the runs
 * page and the run page timed through `app.request()` — no server, no browser.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mapLimit, putJson } from "../core/_datastore.ts";
import { attemptKey, doneKey, runKey, taskKey } from "../core/_layout.ts";
import fsDatastore from "../plugins/datastores/fs.ts";
import nodeHost from "../plugins/host/node.ts";
import { createViewerApp } from "../viewer/app.ts";
import type { Row } from "./_measure.ts";


const graph = (foreach: boolean) => ({
  order: ["start", "work", "join", "end"],
  steps: {
    start: { type: foreach ? "foreach" : "linear", next: ["work"], foreach: foreach ? "items" : undefined, isJoin: false, decorators: [] },
    work: { type: "linear", next: ["join"], isJoin: false, decorators: [] },
    join: { type: "join", next: ["end"], isJoin: true, decorators: [] },
    end: { type: "end", next: [], isJoin: false, decorators: [] },
  },
});

/** Writes the synthetic datastore; returns the big run's id. */
export async function writeBigDatastore(root: string, runs = 5000, tasks = 10_000): Promise<{ flow: string; bigRun: string }> {
  const store = fsDatastore({ root });
  const t0 = 1_790_000_000_000;
  await mapLimit(
    Array.from({ length: runs }, (_, i) => i),
    32,
    (i) =>
      putJson(store, runKey(`Flow${i % 5}`, `${t0 + i * 1000}-r${i}`), {
        flow: `Flow${i % 5}`,
        runId: `${t0 + i * 1000}-r${i}`,
        status: i % 7 === 0 ? "failed" : "succeeded",
        createdAt: t0 + i * 1000,
        finishedAt: t0 + i * 1000 + 800,
        tags: i % 3 === 0 ? ["nightly"] : [],
        systemTags: ["user:bench"],
        parameterValues: { n: i },
        graph: graph(false),
      }),
  );
  const flow = "BigFlow";
  const bigRun = `${t0 + runs * 1000}-big`;
  const start = t0 + runs * 1000;
  await putJson(store, runKey(flow, bigRun), { flow, runId: bigRun, status: "succeeded", createdAt: start, finishedAt: start + tasks * 10 + 100, tags: [], systemTags: [], parameterValues: { n: tasks }, graph: graph(true) });
  const art = { x: { hash: "0".repeat(64), size: 10, type: "number" } };
  const task = async (step: string, id: string, s: number, e: number, parents: string[], foreach: unknown[], extra: Record<string, unknown> = {}) => {
    await putJson(store, taskKey(flow, bigRun, step, id), { step, taskId: id, parents, foreach, createdAt: s });
    await putJson(store, attemptKey(flow, bigRun, step, id, 0, "start.json"), { attempt: 0, mode: "run", startedAt: s, executor: "process" });
    await putJson(store, doneKey(flow, bigRun, step, id), { ok: true, artifacts: art, next: [], startedAt: s, finishedAt: e, attempt: 0, ...extra });
  };
  await task("start", "1", start, start + 50, [], [], { foreachCount: tasks });
  await mapLimit(
    Array.from({ length: tasks }, (_, i) => i),
    32,
    (i) => task("work", String(i + 2), start + 60 + Math.floor(i / 8) * 80, start + 60 + Math.floor(i / 8) * 80 + 70, [`${bigRun}/start/1`], [{ step: "start", task: "1", index: i, count: tasks }]),
  );
  await task("join", String(tasks + 2), start + tasks * 10 + 60, start + tasks * 10 + 80, [], []);
  await task("end", String(tasks + 3), start + tasks * 10 + 85, start + tasks * 10 + 95, [], []);
  return { flow, bigRun };
}

/** The first request (nothing warm in the process) and the best of `times`. */
async function timed(app: ReturnType<typeof createViewerApp>, path: string, times = 3): Promise<{ first: number; ms: number; bytes: number }> {
  let best = Number.POSITIVE_INFINITY;
  let first = 0;
  let bytes = 0;
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    const res = await app.request(path);
    const body = await res.text();
    if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${body.slice(0, 200)}`);
    const ms = performance.now() - t0;
    if (i === 0) first = ms;
    best = Math.min(best, ms);
    bytes = body.length;
  }
  return { first, ms: best, bytes };
}

export async function benchViewer(): Promise<Row[]> {
  const root = mkdtempSync(join(tmpdir(), "tsflow-bench-viewer-"));
  try {
    const t0 = performance.now();
    const { flow, bigRun } = await writeBigDatastore(root);
    const writeS = (performance.now() - t0) / 1000;
    const app = createViewerApp({ store: fsDatastore({ root }), host: nodeHost() });
    const run = await timed(app, `/runs/${flow}/${bigRun}`);
    const runs = await timed(app, "/runs");
    const filtered = await timed(app, "/runs?status=failed&tag=nightly");
    return [
      { name: "viewer: write synthetic datastore (5,000 runs + 10,000 tasks)", value: writeS, unit: "s" },
      { name: "viewer: runs page, 5,000 runs (first request)", value: runs.first, unit: "ms", target: "< 1000 ms" },
      { name: "viewer: runs page, 5,000 runs filtered by status and tag (first)", value: filtered.first, unit: "ms", target: "< 1000 ms" },
      { name: "viewer: run page, 10,000-task foreach (first request)", value: run.first, unit: "ms", target: "< 1000 ms" },
      { name: "viewer: run page, 10,000-task foreach (best of 3)", value: run.ms, unit: "ms", target: "< 1000 ms" },
      { name: "viewer: run page size, 10,000-task foreach", value: run.bytes / 1024, unit: "KB" },
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchViewer()) console.log(`${r.name.padEnd(70)} ${r.value.toFixed(1).padStart(9)} ${r.unit}${r.target ? `  (target ${r.target})` : ""}`);
}
