/**
 * Loading a user's flow file.
 *
 * On Node, the flow and its local imports are bundled once by esbuild into a plain ES module
 * (decorators lowered, either TypeScript decorator mode, read from tsconfig.json), cached by
 * content, and imported. Workers import that module directly: no TypeScript loader hooks,
 * no transpiling per process — a worker loads a flow in milliseconds. The same module is the
 * flow's code package for remote executors. Bun and Deno import TypeScript natively.
 *
 * The flow's `import "tsflow"` is pointed at this very tsflow, so the flow, the orchestrator
 * and the workers share one copy of the runtime even when no `tsflow` is installed next to
 * the flow.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { TsflowError } from "../core/errors.ts";
import { isFlowClass } from "../core/flow.ts";
import type { Datastore, TaskSpec } from "../core/types.ts";
import { detectRuntime } from "../plugins/host/node.ts";
import { untrusted, userCacheDir } from "../plugins/host/trust.ts";
import { trace } from "./_trace.ts";

/** The module a flow's `import "tsflow"` gets: this library, bundled or from source. */
export function libraryPath(): string {
  const here = import.meta.url;
  // In the bundle, this file is dist/tsflow.mjs, which exports the whole library too.
  return fileURLToPath(here.endsWith(".ts") ? new URL("../mod.ts", here) : here);
}

/**
 * Where built flow modules go: beside the project's packages, so their imports resolve — but
 * only in a `node_modules` that is the user's own (one planted in `/tmp` above a flow would
 * hand its owner the modules tsflow imports); else the per-user private cache.
 */
function cacheDir(flowFile: string): string {
  let dir = dirname(flowFile);
  for (;;) {
    const nm = join(dir, "node_modules");
    if (existsSync(nm)) {
      const cache = join(nm, ".cache", "tsflow");
      if (!untrusted(nm) && !untrusted(join(nm, ".cache")) && !untrusted(cache)) return cache;
      break;
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return userCacheDir("modules");
}

/**
 * Bundles `file` and its local imports into one cached ES module and returns its path.
 * Packages stay imports (resolved from the project as usual), except `tsflow` itself.
 */
export async function buildFlowModule(file: string): Promise<string> {
  const lib = libraryPath();
  // A flow built before, whose sources (and tsconfig.json, which picks the decorator mode) have
  // not changed since, is not built again: no esbuild process on the path of a repeated run.
  // BUILD_FORMAT: modules built with an older layout (source maps relative to the wrong
  // directory) are not reused.
  const manifest = join(cacheDir(file), `${createHash("sha256").update(`${file}\0${lib}\0${BUILD_FORMAT}`).digest("hex").slice(0, 24)}.json`);
  const cached = readManifest(manifest, file);
  trace(cached ? "flow module found in the build cache" : "build cache missed");
  if (cached) return cached;
  const esbuild = await import("esbuild");
  let result: Awaited<ReturnType<typeof esbuild.build>>;
  try {
    result = await esbuild.build({
      entryPoints: [file],
      bundle: true,
      write: false,
      format: "esm",
      platform: "node",
      target: "node20",
      packages: "external",
      sourcemap: "inline",
      sourcesContent: false,
      // Source paths in the map are made absolute below (see `absoluteSources`).
      outdir: cacheDir(file),
      logLevel: "silent",
      metafile: true,
      plugins: [
        {
          name: "tsflow-self",
          setup(b) {
            b.onResolve({ filter: /^tsflow$/ }, () => ({ path: lib, external: true }));
            // The bundle lives in a cache directory; each file keeps its own import.meta.url,
            // so `new URL("./data.csv", import.meta.url)` still finds the user's files.
            b.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, async (args) => {
              if (args.path.includes("/node_modules/")) return undefined;
              const source = await readFile(args.path, "utf8");
              const url = pathToFileURL(args.path).href;
              const contents = source
                .replace(/\bimport\.meta\.url\b/g, JSON.stringify(url))
                .replace(/\bimport\.meta\.filename\b/g, JSON.stringify(args.path))
                .replace(/\bimport\.meta\.dirname\b/g, JSON.stringify(dirname(args.path)));
              const ext = args.path.slice(args.path.lastIndexOf(".") + 1);
              const loader = ext.startsWith("t") || ext.endsWith("ts") ? (ext.endsWith("x") ? "tsx" : "ts") : ext.endsWith("x") ? "jsx" : "js";
              return { contents, loader, resolveDir: dirname(args.path) };
            });
          },
        },
      ],
    });
  } catch (e) {
    const failure = e as { errors?: { text: string; location?: { file: string; line: number; column: number; lineText: string } }[] };
    const first = failure.errors?.[0];
    if (first) {
      const loc = first.location ? `${first.location.file}:${first.location.line}:${first.location.column + 1}: ` : "";
      const more = failure.errors!.length > 1 ? ` (and ${failure.errors!.length - 1} more errors)` : "";
      throw new TsflowError("BadFlow", `cannot load flow file '${file}': ${loc}${first.text}${more}${first.location ? `\n    ${first.location.lineText.trim()}` : ""}`);
    }
    throw e;
  }
  const code = absoluteSources(result.outputFiles![0]!.contents, cacheDir(file));
  const hash = createHash("sha256").update(code).digest("hex").slice(0, 24);
  const dir = cacheDir(file);
  const out = join(dir, `${hash}.mjs`);
  if (!existsSync(out)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    writeFileSync(tmp, code);
    renameSync(tmp, out);
  }
  const inputs = [...Object.keys(result.metafile!.inputs).map((p) => resolve(p)), ...tsconfigsOf(file)];
  writeManifest(manifest, { out, inputs: inputs.map(signature) });
  trace("flow bundled by esbuild");
  return out;
}

/**
 * Rewrites the inline source map's paths (relative to `outdir`) as absolute file URLs, so stack
 * traces name the user's real files (flows/train.ts:21:42) wherever the cached module lives —
 * also when node_modules is a symlink, which Node resolves before reading the map.
 */
function absoluteSources(code: Uint8Array, outdir: string): Uint8Array {
  const text = new TextDecoder().decode(code);
  const marker = "//# sourceMappingURL=data:application/json;base64,";
  const at = text.lastIndexOf(marker);
  if (at < 0) return code;
  const map = JSON.parse(Buffer.from(text.slice(at + marker.length).trim(), "base64").toString("utf8")) as { sources: string[] };
  map.sources = map.sources.map((src) => (/^[a-z]+:/.test(src) ? src : pathToFileURL(resolve(outdir, src)).href));
  return new TextEncoder().encode(`${text.slice(0, at)}${marker}${Buffer.from(JSON.stringify(map)).toString("base64")}\n`);
}

/** Bumped when built modules change shape, so stale cached builds are not reused. */
const BUILD_FORMAT = 3;

type Signature = [path: string, mtimeMs: number, size: number];

function signature(path: string): Signature {
  try {
    const st = statSync(path);
    return [path, st.mtimeMs, st.size];
  } catch {
    return [path, -1, -1];
  }
}

/** tsconfig.json files esbuild may read for `file` (the nearest one decides; all count). */
function tsconfigsOf(file: string): string[] {
  const out: string[] = [];
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    out.push(join(dir, "tsconfig.json"));
    if (dirname(dir) === dir || existsSync(join(dir, "package.json"))) return out;
  }
}

/**
 * The built module of a manifest whose every input is unchanged, else `undefined`. A manifest
 * is only a hint: its module must sit in the manifest's own directory, be named by the hash
 * of its content and still have that content, and its inputs must include the flow file.
 */
function readManifest(path: string, flowFile: string): string | undefined {
  try {
    const m = JSON.parse(readFileSync(path, "utf8")) as { out: string; inputs: Signature[] };
    const name = basename(m.out);
    if (m.out !== join(dirname(path), name) || !/^[0-9a-f]{24}\.mjs$/.test(name)) return undefined;
    if (!Array.isArray(m.inputs) || !m.inputs.some(([p]) => p === flowFile)) return undefined;
    for (const [p, mtime, size] of m.inputs) {
      const [, now, nowSize] = signature(p);
      if (now !== mtime || nowSize !== size) return undefined;
    }
    if (createHash("sha256").update(readFileSync(m.out)).digest("hex").slice(0, 24) !== name.slice(0, 24)) return undefined;
    return m.out;
  } catch {
    return undefined;
  }
}

function writeManifest(path: string, manifest: { out: string; inputs: Signature[] }) {
  try {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(manifest));
    renameSync(tmp, path);
  } catch {
    // A cache that cannot be written only costs the next run a build.
  }
}

export interface LoadedFlow {
  flowClass: Function;
  /** The flow's source file (absolute). */
  file: string;
  /** The module actually imported (the built bundle on Node); workers import it too. */
  module: string;
  exportName?: string;
}

const loaded = new Map<string, Promise<LoadedFlow>>();

/**
 * Imports a flow file and picks its flow class: `exportName`, else a class named `flowName`,
 * else the default export, else the only flow exported. `module` skips the build (workers).
 */
export function loadFlow(file: string, exportName?: string, options: { cwd?: string; flowName?: string; module?: string } = {}): Promise<LoadedFlow> {
  const abs = isAbsolute(file) ? file : resolve(options.cwd ?? process.cwd(), file);
  const key = `${abs}#${exportName ?? ""}#${options.flowName ?? ""}#${options.module ?? ""}`;
  let p = loaded.get(key);
  if (!p) {
    p = importFlow(abs, file, exportName, options.flowName, options.module);
    loaded.set(key, p);
    p.catch(() => loaded.delete(key));
  }
  return p;
}

/**
 * The first frame of a stack in the user's code — not tsflow, not a package, not Node itself —
 * as `path:line:column`, relative to the working directory when inside it.
 */
function sourceLocation(stack: string | undefined): string | undefined {
  const lib = libraryPath();
  for (const line of stack?.split("\n").slice(1) ?? []) {
    const m = /(?:\(|at )(?:file:\/\/)?(\/[^():]+):(\d+):(\d+)\)?\s*$/.exec(line);
    if (!m) continue;
    const path = decodeURIComponent(m[1]!);
    // The bundle: dist/tsflow.mjs loads the CLI's code from dist/tsflow.script.js.
    if (path === lib || path.includes("/node_modules/") || /\/dist\/[^/]+\.m?js$/.test(path)) continue;
    const rel = relative(process.cwd(), path);
    return `${rel.startsWith("..") || isAbsolute(rel) ? path : rel}:${m[2]}:${m[3]}`;
  }
  return undefined;
}

async function importFlow(abs: string, given: string, exportName?: string, flowName?: string, prebuilt?: string): Promise<LoadedFlow> {
  let module = prebuilt && existsSync(prebuilt) ? prebuilt : undefined;
  if (!module) {
    if (!existsSync(abs) || !statSync(abs).isFile()) throw new TsflowError("NotFound", `flow file '${given}' does not exist`);
    module = detectRuntime() === "node" && !/\.m?js$/.test(abs) ? await buildFlowModule(abs) : abs;
  }
  if (detectRuntime() === "node") process.setSourceMapsEnabled(true);
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(module).href);
    trace("flow module imported");
  } catch (e) {
    if (e instanceof TsflowError) throw new TsflowError(e.code, `cannot load flow file '${given}': ${e.message}`);
    const err = e as Error;
    const msg = (err?.message ?? String(e)).split("\n").slice(0, 6).join("\n");
    // Where it was thrown, in the user's source (the built module's source map applies).
    const at = sourceLocation(err?.stack);
    throw new TsflowError("BadFlow", `cannot load flow file '${given}': ${at ? `${at}: ` : ""}${err?.name && err.name !== "Error" ? `${err.name}: ` : ""}${msg}`);
  }
  const found = (flowClass: unknown, name?: string): LoadedFlow => ({ flowClass: flowClass as Function, file: abs, module: module!, exportName: name });
  if (exportName) {
    const cls = mod[exportName];
    if (cls === undefined) throw new TsflowError("BadFlow", `flow file '${given}' has no export named '${exportName}' (exports: ${Object.keys(mod).join(", ") || "none"})`);
    if (!isFlowClass(cls)) throw new TsflowError("BadFlow", `export '${exportName}' of '${given}' is not a class extending FlowSpec`);
    return found(cls, exportName);
  }
  if (flowName && (mod.default as Function | undefined)?.name !== flowName) {
    const match = Object.entries(mod).find(([, v]) => isFlowClass(v) && (v as Function).name === flowName);
    if (match) return found(match[1], match[0]);
  }
  if (mod.default !== undefined) {
    if (!isFlowClass(mod.default)) throw new TsflowError("BadFlow", `the default export of '${given}' is not a class extending FlowSpec from "tsflow"`);
    return found(mod.default);
  }
  const flows = Object.entries(mod).filter(([, v]) => isFlowClass(v));
  if (flows.length === 1) return found(flows[0]![1], flows[0]![0]);
  if (flows.length > 1) {
    throw new TsflowError("BadFlow", `flow file '${given}' exports several flows (${flows.map(([k]) => k).join(", ")}); pick one with --flow Name`);
  }
  throw new TsflowError("BadFlow", `flow file '${given}' has no default export; export the flow class as default (export default class MyFlow extends FlowSpec)`);
}

/** The module to import for `spec`: its code package (`package:<hash>`, fetched once) or `spec.module`. */
export async function packageModule(spec: TaskSpec, store: Datastore): Promise<string | undefined> {
  if (!spec.flowFile.startsWith("package:")) return spec.module;
  const { fetchPackage } = await import("../plugins/executors/_package.ts");
  return fetchPackage(store, spec.flowFile.slice("package:".length));
}
