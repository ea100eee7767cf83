/** Shared helpers of the core and CLI tests: temp datastores, the real CLI, run records. */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, onTestFinished } from "vitest";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const CLI = join(ROOT, "bin", "tsflow.mjs");
/** The built bundle itself (what plugins that start tsflow again are given). */
export const DIST_CLI = join(ROOT, "dist", "tsflow.mjs");
export const fixture = (name: string) => join(ROOT, "test", "fixtures", name);

/** A fresh datastore directory, removed when the test (or, made outside a test, the file's tests) ends. */
export function tempStore(): string {
  const dir = mkdtempSync(join(tmpdir(), "tsflow-test-"));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  // vitest ignores afterAll registered inside a running test: those directories leaked.
  try {
    onTestFinished(remove);
  } catch {
    afterAll(remove);
  }
  return dir;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecResult extends CliResult {
  ms: number;
}

/** Runs a command to its end, colour off. */
export function exec(cmd: string[], options: { cwd?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd[0]!, cmd.slice(1), { cwd: options.cwd ?? ROOT, env: { ...process.env, NO_COLOR: "1", ...options.env } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${cmd.join(" ")} did not end in time\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Runs `node bin/tsflow.mjs …args` to the end. */
export function cli(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  return exec([process.execPath, CLI, ...args], { env: options.env, timeoutMs: options.timeoutMs ?? 30_000 });
}

/** Runs a flow file through the CLI into `datastore`. */
export const cliRun = (file: string, datastore: string, ...args: string[]) => cli(["run", file, "--datastore", datastore, ...args]);

/** The run.json of the only (or newest) run of `flow` in a datastore directory. */
export function latestRun(datastore: string, flow: string): Record<string, any> {
  const dir = join(datastore, "flows", flow, "runs");
  const runs = readdirSync(dir).sort();
  return JSON.parse(readFileSync(join(dir, runs.at(-1)!, "run.json"), "utf8"));
}

/** Every blob file under blobs/ with its size. */
export function blobFiles(datastore: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push({ path: p, size: statSync(p).size });
    }
  };
  walk(join(datastore, "blobs"));
  return out;
}

/** True while a process with this pid runs (a zombie, exited but not reaped, is not alive). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // Linux: the state letter follows the parenthesized command name.
    return !/\)\s+Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** Pids of the live tsflow worker processes started by `pid`. */
export function workersOf(pid: number): number[] {
  const r = spawnSync("ps", ["-o", "pid=,args=", "--ppid", String(pid)], { encoding: "utf8" });
  return r.stdout
    .split("\n")
    .filter((line) => line.includes("__worker"))
    .map((line) => Number.parseInt(line.trim(), 10))
    .filter((n) => n > 0);
}

/**
 * Waits until `check` is true, polling every `everyMs`. When `ms` pass first: throws naming
 * `what` when given, else resolves `false`.
 */
export async function waitFor(check: () => boolean, ms: number, what?: string, everyMs = 50): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) {
      if (what) throw new Error(`timed out waiting for ${what}`);
      return false;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return true;
}

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node bin/tsflow.mjs …args` without waiting for it (colour off). */
export function spawnCli(args: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", ...env } });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (err += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** No stack trace lines: errors are one paragraph for users. */
export const STACK_LINE = /^\s{4}at /m;

/** The artifacts of every successful task of `step`, loaded from the datastore (task id order). */
export async function stepArtifacts(datastore: string, flow: string, runId: string, step: string): Promise<Record<string, unknown>[]> {
  const { default: fsDatastore } = await import("../plugins/datastores/fs.ts");
  const { default: nodeHost } = await import("../plugins/host/node.ts");
  const { loadArtifact } = await import("../core/artifacts.ts");
  const store = fsDatastore({ root: datastore });
  const host = nodeHost();
  const dir = join(datastore, "flows", flow, "runs", runId, "tasks", step);
  const ids = readdirSync(dir)
    .filter((id) => existsSync(join(dir, id, "done.json")))
    .sort((a, b) => Number(a) - Number(b));
  const out: Record<string, unknown>[] = [];
  for (const id of ids) {
    const done = JSON.parse(readFileSync(join(dir, id, "done.json"), "utf8")) as { artifacts: Record<string, any> };
    const values: Record<string, unknown> = {};
    for (const [name, ref] of Object.entries(done.artifacts)) values[name] = await loadArtifact(store, host, ref, name);
    out.push(values);
  }
  return out;
}

export { CHROMIUM, launchChromium } from "./_chromium.ts";
export { matchesBlobName } from "./_blobs.ts";

/** Starts `tsflow view` on a free port over `datastore`; resolves with the server and its base URL. */
export async function startViewer(datastore: string): Promise<{ server: ChildProcess; base: string }> {
  const server = spawn(process.execPath, [CLI, "view", "--port", "0", "--datastore", datastore], { stdio: ["ignore", "pipe", "inherit"] });
  const base = await new Promise<string>((resolve, reject) => {
    let out = "";
    server.stdout!.setEncoding("utf8").on("data", (c: string) => {
      out += c;
      const m = /viewer on (http:\/\/\S+?)\/? /.exec(out);
      if (m) resolve(m[1]!);
    });
    server.once("exit", (code) => reject(new Error(`tsflow view exited (${code}): ${out}`)));
  });
  return { server, base };
}

