/**
 * The client API at scale: a datastore with 5,000 runs of one flow, written directly as JSON
 * documents through the layout helpers (no flow runs), then `latestSuccessfulRun()` and the
 * newest-20 listing timed in-process; a separate `node` script reading one artifact of the
 * latest run (what a notebook or a script pays); and `tsflow resume` of a foreach-100 run that
 * failed at its join; and a 10,000-task run on s3rver read with its run index and without
 * (bench/bigrun.ts).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mapLimit, putJson } from "../core/_datastore.ts";
import { doneKey, runKey, taskKey } from "../core/_layout.ts";
import { indexRun } from "../core/_status.ts";
import { storeArtifact } from "../core/artifacts.ts";
import { createClient } from "../core/client.ts";
import fsDatastore from "../plugins/datastores/fs.ts";
import nodeHost from "../plugins/host/node.ts";
import type { Row } from "./_measure.ts";
import { benchBigRun } from "./bigrun.ts";


const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "bin", "tsflow.mjs");
export const FLOW = "BenchClientFlow";
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** 5,000 runs; every 7th failed, and the newest 10 failed so `latestSuccessfulRun` has to look past them. */
export async function writeRuns(dir: string, runs = 5000): Promise<void> {
  const store = fsDatastore({ root: dir });
  const host = nodeHost();
  const result = await storeArtifact(store, host, "result", { answer: 42, list: Array.from({ length: 100 }, (_, i) => i) });
  const t0 = 1_790_000_000_000;
  await mapLimit(
    Array.from({ length: runs }, (_, i) => i),
    32,
    async (i) => {
      const id = `${t0 + i * 1000}-r${String(i).padStart(4, "0")}`;
      const failed = i % 7 === 0 || i >= runs - 10;
      // What the runtime writes for a new run: its time index entry, then run.json.
      await indexRun(store, FLOW, id, t0 + i * 1000);
      await putJson(store, runKey(FLOW, id), {
        flow: FLOW,
        runId: id,
        status: failed ? "failed" : "succeeded",
        createdAt: t0 + i * 1000,
        finishedAt: t0 + i * 1000 + 800,
        tags: i % 3 === 0 ? ["nightly"] : [],
        systemTags: [`user:${host.username()}`],
        parameters: {},
        parameterValues: {},
        graph: { order: ["start", "end"], steps: { start: { type: "linear", next: ["end"] }, end: { type: "end", next: [] } } },
      });
      if (failed) return;
      await putJson(store, taskKey(FLOW, id, "end", "2"), { step: "end", taskId: "2", parents: [`${id}/start/1`], foreach: [] });
      await putJson(store, doneKey(FLOW, id, "end", "2"), { ok: true, artifacts: { result }, next: [], attempt: 0, startedAt: 0, finishedAt: 0 });
    },
  );
}

export async function benchClient(): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), "tsflow-bench-client-"));
  try {
    await writeRuns(join(dir, "ds"));
    const store = fsDatastore({ root: join(dir, "ds") });
    const client = createClient(store, nodeHost());
    const flow = client.Flow.get(FLOW);
    await flow.latestSuccessfulRun(); // warm the disk cache
    const latest: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const run = await flow.latestSuccessfulRun();
      latest.push(performance.now() - t);
      if (!run?.successful) throw new Error("bench: no successful run found");
    }
    rows.push({ name: "client latestSuccessfulRun() (5,000 runs)", value: median(latest), unit: "ms", target: "≤ 50 ms" });
    const newest: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const runs = await flow.runs({ limit: 20 });
      newest.push(performance.now() - t);
      if (runs.length !== 20) throw new Error("bench: expected 20 runs");
    }
    rows.push({ name: "client newest 20 runs (5,000 runs)", value: median(newest), unit: "ms", target: "≤ 50 ms" });

    // A separate script through the built package entry (`import … from "tsflow"`), as a user's script would run.
    const script = join(dir, "read.mjs");
    writeFileSync(
      script,
      `import { Flow } from ${JSON.stringify(join(root, "dist", "index.mjs"))};\nconst run = await Flow.get(${JSON.stringify(FLOW)}).latestSuccessfulRun();\nconst v = await run.data("result");\nif (v.answer !== 42) process.exit(3);\n`,
    );
    const walls: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const r = spawnSync(process.execPath, [script], { env: { ...process.env, TSFLOW_DATASTORE: join(dir, "ds") }, encoding: "utf8" });
      walls.push((performance.now() - t) / 1000);
      if (r.status !== 0) throw new Error(`bench: client script failed (${r.status}): ${r.stderr}`);
    }
    rows.push({ name: "client script: read one artifact of the latest run (wall)", value: median(walls), unit: "s", target: "≤ 0.3 s" });

    // Resume a foreach-100 run that failed at its join.
    const rds = join(dir, "resume");
    const fixture = join(root, "test", "fixtures", "resume-foreach.ts");
    const first = spawnSync(process.execPath, [cli, "run", fixture, "--count", "100", "--datastore", rds], { env: { ...process.env, TSFLOW_TEST_FAIL_JOIN: "1" }, encoding: "utf8" });
    if (first.status !== 1) throw new Error(`bench: the foreach-100 run should fail at its join: ${first.stderr}`);
    const resumes: number[] = [];
    const inRun: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      const r = spawnSync(process.execPath, [cli, "resume", fixture, "--datastore", rds, "--origin-run-id", firstRunId(first.stderr)], { env: { ...process.env, TSFLOW_TEST_FAIL_JOIN: "" }, encoding: "utf8" });
      resumes.push((performance.now() - t) / 1000);
      if (r.status !== 0) throw new Error(`bench: resume failed: ${r.stderr}`);
      const m = /succeeded in ([\d.]+) s/.exec(r.stdout);
      if (m) inRun.push(Number(m[1]));
    }
    rows.push({ name: "resume foreach100 at its join (wall, CLI start included)", value: median(resumes), unit: "s", target: "≤ 0.6 s" });
    if (inRun.length) rows.push({ name: "resume foreach100 at its join (run time, 101 tasks cloned)", value: median(inRun), unit: "s" });
    // A big finished run on S3, read with its index and without (bench/bigrun.ts).
    rows.push(...(await benchBigRun()));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

function firstRunId(stderr: string): string {
  const m = /--origin-run-id (\S+)/.exec(stderr);
  if (!m) throw new Error(`bench: cannot find the failed run id in: ${stderr}`);
  return m[1]!;
}

// `npx tsx bench/client.ts` prints the rows on their own.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const r of await benchClient()) console.log(`${r.name}: ${r.value.toFixed(r.unit === "s" ? 3 : 1)} ${r.unit}${r.target ? ` (target ${r.target})` : ""}`);
}
