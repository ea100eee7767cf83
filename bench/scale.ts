/**
 * How costs grow (#17.1): a foreach of tiny tasks at N = 10, 100, 1,000, 10,000 through the CLI
 * (wall, cost per task, the orchestrator's peak RSS), and a datastore holding 100 and 10,000
 * runs (`latestSuccessfulRun`, the newest 20, `tsflow runs`). Per-task cost and listing time
 * should stay flat as N grows. `TSFLOW_BENCH_SCALE_BIG=1` adds N = 100,000 (3-4 minutes) and
 * 100,000 runs; `TSFLOW_BENCH_SCALE_RUNS=1` only the 100,000 runs.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runsByTimePrefix } from "../core/_layout.ts";
import { createClient } from "../core/client.ts";
import fsDatastore from "../plugins/datastores/fs.ts";
import nodeHost from "../plugins/host/node.ts";
import { FLOW, writeRuns } from "./client.ts";
import { measure, type Row } from "./_measure.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "bin", "tsflow.mjs");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const big = process.env.TSFLOW_BENCH_SCALE_BIG === "1";
/** Only the 100,000-run row of the big ones (writing them takes about a minute; no 100,000-task run). */
const bigRuns = process.env.TSFLOW_BENCH_SCALE_RUNS === "1";

export async function benchScale(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of [10, 100, 1000, 10_000, ...(big ? [100_000] : [])]) {
    const ds = mkdtempSync(join(tmpdir(), "tsflow-bench-scale-"));
    try {
      const r = await measure(process.execPath, [cli, "run", "examples/foreach.ts", "--n", String(n), "--max-num-splits", String(n), "--datastore", ds], { cpu: true });
      const tasks = n + 3;
      const last = n === 100_000;
      rows.push({ name: `scale foreach${n} wall`, value: r.seconds, unit: "s", target: last ? "≤ 180 s" : undefined });
      rows.push({ name: `scale foreach${n} per task`, value: (r.seconds * 1000) / tasks, unit: "ms", target: "flat in N" });
      if (r.cpuSeconds !== undefined) rows.push({ name: `scale foreach${n} CPU per task (user+sys, all processes)`, value: (r.cpuSeconds * 1000) / tasks, unit: "ms", target: "flat in N" });
      // The orchestrator is the serial part: its CPU per task bounds the wall time on any number of cores.
      if (r.mainCpuSeconds > 0) rows.push({ name: `scale foreach${n} orchestrator CPU per task`, value: (r.mainCpuSeconds * 1000) / tasks, unit: "ms", target: "flat in N" });
      rows.push({ name: `scale foreach${n} orchestrator peak RSS`, value: r.peakMainMb, unit: "MB", target: last ? "≤ 500 MB" : undefined });
      // The largest worker is the join's from N = 10,000 on: it holds every input's references.
      rows.push({ name: `scale foreach${n} peak RSS, largest worker (the join's)`, value: r.peakWorkerMb, unit: "MB" });
    } finally {
      rmSync(ds, { recursive: true, force: true });
    }
  }
  // The runs are written as the runtime writes them (the time index entry, then run.json),
  // spaced 1 s apart: ~1,000 per 16.7-minute period of the index, its densest case here.
  for (const count of [100, 10_000, ...(big || bigRuns ? [100_000] : [])]) {
    const dir = mkdtempSync(join(tmpdir(), "tsflow-bench-runs-"));
    try {
      await writeRuns(dir, count);
      const client = createClient(fsDatastore({ root: dir }), nodeHost());
      const flow = client.Flow.get(FLOW);
      await flow.latestSuccessfulRun(); // warm the disk cache
      const time = async (fn: () => Promise<unknown>) => {
        const xs: number[] = [];
        for (let i = 0; i < 7; i++) {
          const t = performance.now();
          await fn();
          xs.push(performance.now() - t);
        }
        return median(xs);
      };
      const cliRuns = () => {
        const walls: number[] = [];
        for (let i = 0; i < 3; i++) {
          const t = performance.now();
          const out = spawnSync(process.execPath, [cli, "runs", FLOW, "--all", "--datastore", dir], { encoding: "utf8" });
          walls.push(performance.now() - t);
          if (out.status !== 0) throw new Error(`tsflow runs failed: ${out.stderr}`);
        }
        return median(walls);
      };
      rows.push({ name: `scale latestSuccessfulRun() (${count} runs)`, value: await time(() => flow.latestSuccessfulRun()), unit: "ms", target: "flat in runs" });
      rows.push({ name: `scale newest 20 runs (${count} runs)`, value: await time(() => flow.runs({ limit: 20 }).toArray()), unit: "ms", target: "flat in runs" });
      rows.push({ name: `scale \`tsflow runs\` wall (${count} runs)`, value: cliRuns(), unit: "ms", target: "flat in runs" });
      // The same store without its time index, as one written before it: every call lists and
      // sorts all run ids (what each call cost before the index).
      rmSync(join(dir, runsByTimePrefix(FLOW)), { recursive: true, force: true });
      rows.push({ name: `scale latestSuccessfulRun() (${count} runs, no index: as before)`, value: await time(() => flow.latestSuccessfulRun()), unit: "ms" });
      rows.push({ name: `scale newest 20 runs (${count} runs, no index: as before)`, value: await time(() => flow.runs({ limit: 20 }).toArray()), unit: "ms" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const r of await benchScale()) console.log(`${r.name}: ${r.value.toFixed(r.unit === "s" ? 3 : 1)} ${r.unit}${r.target ? ` (target ${r.target})` : ""}`);
}
