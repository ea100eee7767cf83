/**
 * bigartifact side by side with Metaflow (#17.5): the same workload (a 100 MB byte array and a
 * million numbers from `start`, read by the next step) run by tsflow on the local datastore and
 * by Metaflow from its public source with this machine's python3, alternating (Metaflow, tsflow,
 * Metaflow, tsflow…), medians compared. Metaflow comes from `TSFLOW_BENCH_METAFLOW` (a checkout
 * of github.com/Netflix/metaflow; it needs the `requests` and `boto3` Python modules) or an
 * installed `metaflow` module; without either, tsflow is compared with the 5.29 s recorded in #17.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { measure, type Row } from "./_measure.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const RECORDED = 5.29;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const TIME = "/usr/bin/time";

/**
 * Runs a command, with its CPU seconds (user + system of it and the children it waited for,
 * from GNU time): on a shared machine CPU time is steadier than wall time.
 */
async function timed(cmd: string, args: string[], options: { cwd?: string; env?: Record<string, string> }, scratch: string) {
  if (!existsSync(TIME)) return { ...(await measure(cmd, args, options)), cpu: Number.NaN };
  const file = join(scratch, "time.txt");
  const r = await measure(TIME, ["-o", file, "-f", "%U %S", cmd, ...args], options);
  const [user, sys] = readFileSync(file, "utf8").trim().split("\n").pop()!.split(" ").map(Number);
  return { ...r, cpu: user! + sys! };
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
  const repeat = Number(process.env.TSFLOW_BENCH_BIGARTIFACT_REPEAT ?? 3);
  const ours: number[] = [];
  const theirs: number[] = [];
  const oursCpu: number[] = [];
  const theirsCpu: number[] = [];
  let rss = 0;
  const load = loadavg()[0]!;
  try {
    const env = metaflowEnv(home);
    for (let i = 0; i < repeat; i++) {
      if (typeof env !== "string") {
        const flow = join(root, "bench", "flows", "bigartifact_metaflow.py");
        const m = await timed("python3", [flow, "--no-pylint", "run", "--mb", "100"], { cwd: home, env }, home);
        theirs.push(m.seconds);
        theirsCpu.push(m.cpu);
      }
      // A fresh datastore each time: a store that already holds the blobs would skip writing them.
      rmSync(ds, { recursive: true, force: true });
      const r = await timed(process.execPath, [join(root, "bin", "tsflow.mjs"), "run", "examples/bigartifact.ts", "--mb", "100", "--datastore", ds], {}, home);
      ours.push(r.seconds);
      oursCpu.push(r.cpu);
      rss = Math.max(rss, r.peakOneMb);
    }
    const note = `load ${load.toFixed(1)}→${loadavg()[0]!.toFixed(1)}`;
    const mf = theirs.length ? median(theirs) : RECORDED;
    const source = theirs.length ? `Metaflow run here, median of ${theirs.length}` : `recorded in #17 (${env})`;
    return [
      { name: "bigartifact 100 MB, tsflow", value: median(ours), unit: "s", reference: note },
      { name: "bigartifact 100 MB, Metaflow", value: mf, unit: "s", reference: source },
      { name: "bigartifact Metaflow / tsflow", value: mf / median(ours), unit: "×", target: "≥ 8 ×" },
      { name: "bigartifact CPU (user+sys), tsflow", value: median(oursCpu), unit: "s" },
      ...(theirsCpu.length ? [{ name: "bigartifact CPU (user+sys), Metaflow", value: median(theirsCpu), unit: "s" }] : []),
      ...(theirsCpu.length ? [{ name: "bigartifact CPU Metaflow / tsflow", value: median(theirsCpu) / median(oursCpu), unit: "×" }] : []),
      { name: "bigartifact peak RSS, largest process", value: rss, unit: "MB", target: "≤ 400 MB" },
    ];
  } finally {
    rmSync(ds, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
}
