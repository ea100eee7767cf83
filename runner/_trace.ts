/**
 * Start-up tracing: `TSFLOW_TRACE_STARTUP=<file>` makes every tsflow process of a run (the
 * orchestrator and its workers) append one JSON line per phase to `<file>`:
 * `{ pid, role, phase, at, cpu }`, `at` in epoch milliseconds (comparable across processes,
 * `performance.timeOrigin` is the process's own start) and `cpu` the process's user+system
 * milliseconds so far. `npm run bench -- startup` turns the lines into the breakdown of
 * docs/performance.md. Off (one environment lookup) when the variable is unset.
 */
import { appendFileSync } from "node:fs";
import type { ScriptLoad } from "../cli/_script-loader.ts";
import type { RunReporter } from "../core/runtime.ts";

const file = process.env.TSFLOW_TRACE_STARTUP || undefined;
let role = "cli";
let started = false;

/** One traced phase, as written to the trace file. */
export interface TraceLine {
  pid: number;
  role: string;
  phase: string;
  /** Epoch milliseconds. */
  at: number;
  /** User + system CPU of the process so far, milliseconds. */
  cpu: number;
}

/** Records that this process reached `phase` now (a no-op unless tracing is on). */
export function trace(phase: string, as?: string): void {
  if (!file) return;
  if (as) role = as;
  const lines: TraceLine[] = [];
  const pid = process.pid;
  // The first line of each process also gives when the process itself started.
  if (!started) {
    started = true;
    lines.push({ pid, role, phase: "process start", at: performance.timeOrigin, cpu: 0 });
    // bin/tsflow.mjs notes when Node got to it (Node's own start-up ends there) and when it
    // started the first worker of `tsflow run`.
    const g = globalThis as Record<symbol, { at?: number; cpu?: NodeJS.CpuUsage; startedAt?: number } | undefined>;
    const bin = g[Symbol.for("tsflow.binStarted")];
    if (bin?.at !== undefined && bin.cpu) lines.push({ pid, role, phase: "bin entry", at: performance.timeOrigin + bin.at, cpu: (bin.cpu.user + bin.cpu.system) / 1000 });
    const prefork = g[Symbol.for("tsflow.preforkedWorker")];
    if (prefork?.startedAt !== undefined) lines.push({ pid, role, phase: "worker spawned by bin", at: performance.timeOrigin + prefork.startedAt, cpu: -1 });
    // cli/_script-loader.ts: when the bundle was compiled, and whether V8's code cache served it.
    const script = (globalThis as Record<symbol, ScriptLoad | undefined>)[Symbol.for("tsflow.scriptLoad")];
    if (script) {
      lines.push({ pid, role, phase: "bundle loader started", at: performance.timeOrigin + script.startedAt, cpu: -1 });
      lines.push({ pid, role, phase: `bundle compiled (code cache ${script.cache})`, at: performance.timeOrigin + script.compiledAt, cpu: (script.cpu.user + script.cpu.system) / 1000 });
    }
  }
  const { user, system } = process.cpuUsage();
  lines.push({ pid, role, phase, at: performance.timeOrigin + performance.now(), cpu: (user + system) / 1000 });
  try {
    appendFileSync(file, lines.map((l) => `${JSON.stringify(l)}\n`).join(""));
  } catch {
    // Tracing must never change what a run does.
  }
}

/** Whether tracing is on (to skip building what only a trace needs). */
export const tracing = file !== undefined;

/** `promise`, tracing `phase` when it resolves. */
export function after<T>(phase: string, promise: Promise<T>): Promise<T> {
  if (!file) return promise;
  return promise.then((value) => {
    trace(phase);
    return value;
  });
}

/** `reporter` with the run's start and each task's start and end traced (itself when tracing is off). */
export function tracedReporter(reporter: RunReporter | undefined): RunReporter | undefined {
  if (!file) return reporter;
  const r = reporter ?? {};
  return Object.assign(Object.create(r) as RunReporter, {
    runStarted(run: Parameters<NonNullable<RunReporter["runStarted"]>>[0]) {
      trace("run started (run.json written)");
      r.runStarted?.(run);
    },
    taskStarted(task: Parameters<NonNullable<RunReporter["taskStarted"]>>[0]) {
      trace(`task ${task.step} sent to its worker`);
      r.taskStarted?.(task);
    },
    taskFinished(task: Parameters<NonNullable<RunReporter["taskFinished"]>>[0]) {
      trace(`task ${task.step} done (done.json written)`);
      r.taskFinished?.(task);
    },
  });
}
