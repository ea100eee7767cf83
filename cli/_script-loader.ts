/**
 * The loader of the CLI bundle: dist/tsflow.mjs is this file plus the bundle's export list
 * (build.mjs). The bundle itself is dist/tsflow.script.js, the same code as an ES module would
 * be, turned by the build into a classic script that returns the library's exports.
 *
 * Why a script: every tsflow process (the orchestrator, each worker) compiles the ~1 MB bundle
 * before doing anything, ~20-30 ms of CPU on Node 20, on the critical path to the first task.
 * Node ≥ 22.1 can keep V8's compiled code for ES modules between runs (module.enableCompileCache),
 * Node 20 cannot; for a script, V8's code cache is `vm.Script`'s `cachedData`, on every Node.
 * So on Node this loader reads the cache written by an earlier process, and the first process
 * that finds none (or finds it rejected by V8) writes one as it exits, holding everything that
 * process compiled. Bun and Deno run the same script without a cache.
 *
 * The cache is a file per bundle build and Node: `<user cache>/tsflow/v8/<build>-<size>-<mtime>-
 * <node>-<arch>-<flags>.bin`, in the user's private cache directory (plugins/host/trust.ts: V8's
 * code cache is code, so it is only read from a directory nobody else may write). The build hash
 * and the script's size and mtime name the bundle it was made from: V8 checks only the source's
 * length, and a cache of other code of the same length would run that other code. Written to a
 * temporary file and renamed, so processes started at once each read a whole file or none. Any
 * failure (no private directory, an unwritable one, a damaged file) means no cache, silently.
 * `TSFLOW_CODE_CACHE=0` turns it off.
 */
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Script } from "node:vm";
import { fnv1a, writeCacheFile } from "../plugins/host/cache-dir.mjs";
import { userCacheDir } from "../plugins/host/trust.ts";

/** How the bundle was loaded, for TSFLOW_TRACE_STARTUP (runner/_trace.ts). */
export interface ScriptLoad {
  /** `performance.now()` when the loader started and when the bundle was compiled. */
  startedAt: number;
  compiledAt: number;
  cpu: NodeJS.CpuUsage;
  /** `off` (not Node, disabled, no usable directory), `miss`, `hit`, or `rejected` by V8. */
  cache: "off" | "miss" | "hit" | "rejected";
  /**
   * Writes the cache now instead of at exit (once; nothing when there is nothing to write). A
   * worker calls it before its last word: the orchestrator may kill it as soon as it has that.
   */
  save(): void;
}
export const SCRIPT_LOAD = Symbol.for("tsflow.scriptLoad");

/** Caches kept beside the current one (other roles, installs, Node versions). */
const KEEP = 11;

/**
 * Compiles and runs the bundle `scriptFile` (relative to `meta.url`, the loader's own module, which
 * the bundle sees as its `import.meta`) and returns its exports. `importModule` is the loader's
 * `import()`, so the bundle's dynamic imports resolve from dist/ as before.
 */
export function loadScript(meta: ImportMeta, importModule: (specifier: string) => Promise<unknown>, scriptFile: string, build: string): Record<string, unknown> {
  const startedAt = performance.now();
  const path = fileURLToPath(new URL(scriptFile, meta.url));
  const source = readFileSync(path, "utf8");
  const cacheFile = cachePath(path, build);
  let cachedData: Buffer | undefined;
  if (cacheFile) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      // None yet: this process writes it.
    }
  }
  const script = new Script(source, { filename: path, cachedData });
  const cache = !cacheFile ? "off" : !cachedData ? "miss" : script.cachedDataRejected ? "rejected" : "hit";
  let unsaved = cacheFile !== undefined && cache !== "hit";
  const save = () => {
    if (unsaved) writeCache(script, cacheFile!);
    unsaved = false;
  };
  (globalThis as Record<symbol, ScriptLoad>)[SCRIPT_LOAD] = { startedAt, compiledAt: performance.now(), cpu: process.cpuUsage(), cache, save };
  // At exit the cache holds every function this process compiled, not only the top level.
  if (unsaved) process.once("exit", save);
  const factory = script.runInThisContext() as (require: NodeJS.Require, importModule: (specifier: string) => Promise<unknown>, meta: ImportMeta) => Record<string, unknown>;
  return factory(createRequire(meta.url), importModule, meta);
}

function cachePath(script: string, build: string): string | undefined {
  const v = process.versions as Record<string, string | undefined>;
  if (!v.node || v.bun || "Deno" in globalThis || process.env.TSFLOW_CODE_CACHE === "0") return undefined;
  try {
    const st = statSync(script);
    // V8 rejects a cache made under other V8 flags: one file per set keeps each set's cache.
    const flags = fnv1a(`${process.execArgv.join(" ")}\0${process.env.NODE_OPTIONS ?? ""}`);
    // A cache holds what its writer compiled: a worker's (the task path), a run's (the run's
    // orchestration) and another command's differ, and a run's orchestrator and its worker
    // each load ~15 ms more CPU with their own than with a `tsflow --version`'s.
    const command = process.argv[2];
    const role = command === "__worker" ? "worker" : command === "run" ? "run" : "cli";
    return join(userCacheDir("v8"), `${build}-${st.size}-${Math.trunc(st.mtimeMs)}-${process.version}-${process.arch}-${flags}-${role}.bin`);
  } catch {
    return undefined;
  }
}

function writeCache(script: Script, file: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeCacheFile(file, script.createCachedData(), KEEP, ".bin");
  } catch {
    // No cache this time.
  }
}
