/**
 * bigartifact side by side with Metaflow (#17.5): the same workload (a 100 MB byte array and a
 * million numbers from `start`, read by the next step) run by tsflow on the local datastore and
 * by Metaflow from its public source with this machine's python3, alternating (Metaflow, tsflow,
 * Metaflow, tsflow…) after one uncounted run of each, medians compared; each run of either
 * starts from an empty datastore of its own (then runs again on it: the re-run rows). Metaflow
 * comes from `TSFLOW_BENCH_METAFLOW` (a checkout of github.com/Netflix/metaflow; it needs the
 * `requests` and `boto3` Python modules) or an installed `metaflow` module; without either,
 * tsflow is compared with the 5.29 s recorded in #17.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { measure, type Row } from "./_measure.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const RECORDED = 5.29;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/**
 * Runs a command with its CPU seconds: user + system of every process it started, those that
 * end after it too (measure's child subreaper; a tsflow worker outlives the CLI by its
 * teardown). On a shared machine CPU time is steadier than wall time.
 */
async function timed(cmd: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const r = await measure(cmd, args, { ...options, cpu: true });
  return { ...r, cpu: r.cpuSeconds ?? Number.NaN };
}

/** The environment that runs Metaflow, or why it cannot run here. */
function metaflowEnv(home: string): Record<string, string> | string {
  const source = process.env.TSFLOW_BENCH_METAFLOW;
  const env: Record<string, string> = { METAFLOW_HOME: home, METAFLOW_DATASTORE_SYSROOT_LOCAL: home, USERNAME: "bench", ...(source ? { PYTHONPATH: source } : {}) };
  const probe = spawnSync("python3", ["-c", "import metaflow"], { env: { ...process.env, ...env }, encoding: "utf8" });
  if (probe.error) return `python3 cannot run (${probe.error.message})`;
  if (probe.status !== 0) return source ? `Metaflow at ${source} does not import: ${probe.stderr.trim().split("\n").pop()}` : "no Metaflow (set TSFLOW_BENCH_METAFLOW to a checkout of Netflix/metaflow)";
  return env;
}

export async function benchBigArtifact(): Promise<Row[]> {
  const ds = mkdtempSync(join(tmpdir(), "tsflow-bigartifact-"));
  const home = mkdtempSync(join(tmpdir(), "tsflow-metaflow-"));
  const repeat = Number(process.env.TSFLOW_BENCH_BIGARTIFACT_REPEAT ?? 5);
  // One run of each first, not counted: the bench has just rebuilt tsflow, so its first process
  // compiles the bundle and writes V8's code cache (cli/_script-loader.ts), and Python may
  // write Metaflow's bytecode; a user's runs after the first pay neither.
  const warmup = Number(process.env.TSFLOW_BENCH_BIGARTIFACT_WARMUP ?? 1);
  // Both systems keep artifacts by content: a run whose datastore already holds the same bytes
  // skips storing them (Metaflow also skips gzipping them). So each system's first run goes to a
  // datastore of its own, fresh each time (the compared figures: the same work for both), and a
  // second run of each goes to that same datastore again (both skip; shown beside).
  const ours: number[] = [];
  const theirs: number[] = [];
  const oursAgain: number[] = [];
  const theirsAgain: number[] = [];
  const oursCpu: number[] = [];
  const theirsCpu: number[] = [];
  let rss = 0;
  const load = loadavg()[0]!;
  try {
    const env = metaflowEnv(home);
    const flow = join(root, "bench", "flows", "bigartifact_metaflow.py");
    const metaflow = async (sysroot: string) =>
      typeof env === "string" ? undefined : timed("python3", [flow, "--no-pylint", "run", "--mb", "100"], { cwd: sysroot, env: { ...env, METAFLOW_HOME: sysroot, METAFLOW_DATASTORE_SYSROOT_LOCAL: sysroot } });
    const tsflow = () => timed(process.execPath, [join(root, "bin", "tsflow.mjs"), "run", "examples/bigartifact.ts", "--mb", "100", "--datastore", ds]);
    for (let i = -warmup; i < repeat; i++) {
      const counted = i >= 0;
      const sysroot = mkdtempSync(join(tmpdir(), "tsflow-metaflow-run-"));
      try {
        const m = await metaflow(sysroot);
        rmSync(ds, { recursive: true, force: true });
        const r = await tsflow();
        const mAgain = await metaflow(sysroot);
        const rAgain = await tsflow();
        if (!counted) continue;
        if (m && mAgain) {
          theirs.push(m.seconds);
          theirsCpu.push(m.cpu);
          theirsAgain.push(mAgain.seconds);
        }
        ours.push(r.seconds);
        oursCpu.push(r.cpu);
        oursAgain.push(rAgain.seconds);
        rss = Math.max(rss, r.peakOneMb, rAgain.peakOneMb);
      } finally {
        rmSync(sysroot, { recursive: true, force: true });
      }
    }
    const note = `load ${load.toFixed(1)}→${loadavg()[0]!.toFixed(1)}`;
    const mf = theirs.length ? median(theirs) : RECORDED;
    const source = theirs.length ? `Metaflow run here, median of ${theirs.length}` : `recorded in #17 (${env})`;
    return [
      { name: "bigartifact 100 MB, tsflow", value: median(ours), unit: "s", reference: `fresh datastore; ${note}` },
      { name: "bigartifact 100 MB, Metaflow", value: mf, unit: "s", reference: `fresh datastore; ${source}` },
      { name: "bigartifact Metaflow / tsflow", value: mf / median(ours), unit: "×", target: "≥ 8 ×" },
      { name: "bigartifact CPU (user+sys), tsflow", value: median(oursCpu), unit: "s", reference: "every process of the run" },
      ...(theirsCpu.length ? [{ name: "bigartifact CPU (user+sys), Metaflow", value: median(theirsCpu), unit: "s" }] : []),
      ...(theirsCpu.length ? [{ name: "bigartifact CPU Metaflow / tsflow", value: median(theirsCpu) / median(oursCpu), unit: "×" }] : []),
      { name: "bigartifact re-run, tsflow", value: median(oursAgain), unit: "s", reference: "same datastore again: the blobs are there" },
      ...(theirsAgain.length ? [{ name: "bigartifact re-run, Metaflow", value: median(theirsAgain), unit: "s", reference: "same datastore again: no gzip, no write" }] : []),
      ...(theirsAgain.length ? [{ name: "bigartifact re-run, Metaflow / tsflow", value: median(theirsAgain) / median(oursAgain), unit: "×" }] : []),
      { name: "bigartifact peak RSS, largest process", value: rss, unit: "MB", target: "≤ 400 MB" },
    ];
  } finally {
    rmSync(ds, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
}
