/**
 * How to start this very tsflow again in a child process (warm workers, `--fresh-workers`):
 * the compiled binary runs itself, the published bundle runs `dist/tsflow.mjs`, and a source
 * checkout runs `cli/main.ts` through tsx on Node or natively on Bun and Deno.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { detectRuntime } from "./node.ts";

/** Set by a compiled binary's entry point: its own path is the whole command. */
export const COMPILED = Symbol.for("tsflow.compiled");

export function selfCommand(): string[] {
  const runtime = detectRuntime();
  if ((globalThis as Record<symbol, unknown>)[COMPILED]) return [process.execPath];
  const here = fileURLToPath(import.meta.url);
  const dir = dirname(here);
  // In the bundle every module is one file in dist/; from source this file is plugins/host/self.ts.
  const bundled = here.endsWith(".mjs") || here.endsWith(".js");
  const script = bundled ? join(dir, "tsflow.mjs") : join(dir, "..", "..", "cli", "main.ts");
  if (!existsSync(script)) throw new Error(`cannot find the tsflow CLI at ${script} to start workers`);
  if (runtime === "deno") return [process.execPath, "run", "-A", script];
  if (runtime === "bun" || bundled) return [process.execPath, script];
  const tsx = import.meta.resolve("tsx");
  return [process.execPath, "--import", tsx, script];
}

/**
 * `tsflow run` from bin/tsflow.mjs starts its first worker before it loads the CLI bundle (the
 * two then load side by side); the process executor adopts that worker instead of spawning one.
 * It was started exactly as {@link selfCommand} would, with this process's environment.
 */
const PREFORKED = Symbol.for("tsflow.preforkedWorker");

export interface PreforkedWorker {
  child: ChildProcess;
  /** Its TSFLOW_WORKER_NONCE. */
  nonce: string;
  /** When it was spawned (`performance.now()` of this process). */
  startedAt: number;
}

/** The pre-started worker, once (later calls get `undefined`); none when it already died. */
export function takePreforkedWorker(): PreforkedWorker | undefined {
  const g = globalThis as Record<symbol, PreforkedWorker | undefined>;
  const w = g[PREFORKED];
  delete g[PREFORKED];
  if (!w || w.child.exitCode !== null || w.child.signalCode !== null) return undefined;
  return w;
}

/** Lets an unused pre-started worker go (it leaves when its stdin ends): the run needs none. */
export function releasePreforkedWorker(): void {
  takePreforkedWorker()?.child.stdin?.end();
}
