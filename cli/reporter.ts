/**
 * What a run looks like in the terminal: every task's output as it comes, prefixed with
 * `[run/step/task]`; on a TTY a live per-step summary line at the bottom; plain lines
 * otherwise (CI logs, pipes).
 */
import { colors } from "consola/utils";
import { ERROR_CODES } from "../core/errors.ts";
import type { RunReporter } from "../core/runtime.ts";

interface StepCount {
  done: number;
  running: number;
  failed: number;
  total?: number;
}

export interface TerminalReporter extends RunReporter {
  /** Clears the live summary line (before the final summary is printed). */
  stop(): void;
  message(text: string): void;
  /** Clears the live summary line so another writer (the logger) can print; it is redrawn on the next tick. */
  pause(): void;
}

export function terminalReporter(out: NodeJS.WriteStream = process.stdout, options: { tty?: boolean; color?: boolean } = {}): TerminalReporter {
  const tty = options.tty ?? Boolean(out.isTTY);
  const color = options.color ?? (tty && !process.env.NO_COLOR);
  const c = (fn: (s: string) => string, s: string) => (color ? fn(s) : s);
  const steps = new Map<string, StepCount>();
  let order: string[] = [];
  let statusShown = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  const partial = new Map<string, string>();

  const count = (step: string) => {
    let s = steps.get(step);
    if (!s) steps.set(step, (s = { done: 0, running: 0, failed: 0 }));
    return s;
  };

  const statusLine = () => {
    const parts: string[] = [];
    for (const name of order) {
      const s = steps.get(name);
      if (!s) continue;
      const total = s.total !== undefined ? `/${s.total}` : "";
      let part = `${name} ${s.done}${total}`;
      if (s.running) part += c(colors.cyan, ` ▶${s.running}`);
      if (s.failed) part += c(colors.red, ` ✖${s.failed}`);
      parts.push(part);
    }
    return parts.join("  ");
  };

  const clearStatus = () => {
    if (tty && statusShown) {
      out.write("\r\x1b[2K");
      statusShown = false;
    }
  };
  const drawStatus = () => {
    if (!tty) return;
    const line = statusLine();
    const width = out.columns || 120;
    out.write(`\r\x1b[2K${c(colors.dim, "⋯ ")}${line.length > width - 4 ? `${line.slice(0, width - 5)}…` : line}`);
    statusShown = true;
  };
  const write = (text: string) => {
    clearStatus();
    out.write(text);
    drawStatus();
  };

  return {
    runStarted(run) {
      order = run.steps;
      write(`${c(colors.bold, "tsflow")} running ${c(colors.bold, run.flow)} as run ${c(colors.cyan, run.runId)}\n`);
      if (tty) timer = setInterval(drawStatus, 250);
    },
    foreachSplit(step, n) {
      const s = count(step);
      s.total = (s.total ?? 0) + n;
    },
    taskStarted(task) {
      count(task.step).running++;
      const what = task.mode === "catch" ? "storing the error (@catchError)" : `start${task.attempt > 0 ? ` (attempt ${task.attempt + 1})` : ""}`;
      if (!tty) write(`${c(colors.dim, `[${task.pathspec}]`)} ${what}\n`);
    },
    taskOutput(task, stream, text) {
      // Prefix whole lines; keep a trailing partial line until it is completed.
      const key = `${task.pathspec}\0${stream}`;
      const buf = (partial.get(key) ?? "") + text;
      const lines = buf.split("\n");
      partial.set(key, lines.pop()!);
      if (lines.length === 0) return;
      const prefix = c(colors.dim, `[${task.pathspec}]`);
      write(lines.map((l) => `${prefix} ${stream === "stderr" ? c(colors.yellow, l) : l}\n`).join(""));
    },
    taskFinished(task) {
      for (const stream of ["stdout", "stderr"]) {
        const key = `${task.pathspec}\0${stream}`;
        const rest = partial.get(key);
        if (rest) write(`${c(colors.dim, `[${task.pathspec}]`)} ${rest}\n`);
        partial.delete(key);
      }
      const s = count(task.step);
      if (!task.clonedFrom) s.running = Math.max(0, s.running - 1);
      if (task.ok) {
        s.done++;
        if (task.clonedFrom) write(`${c(colors.dim, `[${task.pathspec}]`)} cloned from ${task.clonedFrom}\n`);
        else if (!tty) write(`${c(colors.dim, `[${task.pathspec}]`)} done\n`);
        return;
      }
      if (!task.willRetry && !task.willCatch) s.failed++;
      const err = task.error;
      const head = `${c(colors.red, "✖")} ${err?.type ?? "Error"}: ${err?.message ?? "failed"}`;
      const tail = task.willRetry
        ? c(colors.yellow, ` (attempt ${task.attempt + 1} failed; retrying)`)
        : task.willCatch
          ? c(colors.yellow, ` (attempt ${task.attempt + 1} failed; @catchError stores the error in '${task.catchVar}' and the flow goes on)`)
          : "";
      // tsflow's own errors say everything in their message; a user's exception gets the
      // frames of the user's code.
      const stack = err?.stack && !TSFLOW_CODES.has(err.type) ? userFrames(err.stack) : [];
      write(`${c(colors.dim, `[${task.pathspec}]`)} ${head}${tail}\n${stack.map((l) => `${c(colors.dim, `[${task.pathspec}]`)}   ${l}\n`).join("")}`);
    },
    message(text) {
      write(`${text}\n`);
    },
    pause() {
      clearStatus();
    },
    stop() {
      if (timer) clearInterval(timer);
      clearStatus();
    },
  };
}

const TSFLOW_CODES = new Set<string>(ERROR_CODES);

/** The frames of a stack that are the user's code, not tsflow's machinery. */
export function userFrames(stack: string): string[] {
  return stack
    .split("\n")
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l.startsWith("at ") && !/node:internal|\/tsx\/|\/dist\/(tsflow|index)\.mjs|\/(core|cli|plugins)\/[a-z_/]+\.ts/.test(l))
    .slice(0, 5);
}
