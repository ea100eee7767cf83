/**
 * How to start this very tsflow again in a child process (warm workers, `--fresh-workers`):
 * the compiled binary runs itself, the published bundle runs `dist/tsflow.mjs`, and a source
 * checkout runs `cli/main.ts` through tsx on Node or natively on Bun and Deno.
 */
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
