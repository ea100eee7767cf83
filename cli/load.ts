/**
 * Loading a user's flow file: TypeScript on Node through tsx (either decorator mode), natively
 * on Bun and Deno. A flow importing "tsflow" gets this very tsflow when the package is not
 * installed next to it (a flow in a scratch directory, a compiled binary).
 */
import { existsSync, statSync } from "node:fs";
import { register } from "node:module";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { TsflowError } from "../core/errors.ts";
import { isFlowClass } from "../core/flow.ts";
import { detectRuntime } from "../plugins/host/node.ts";

let tsxReady: Promise<void> | undefined;

/** The URL a flow's `import "tsflow"` falls back to: this library, bundled or from source. */
function libraryUrl(): string {
  const here = import.meta.url;
  return here.endsWith(".ts") ? new URL("../mod.ts", here).href : new URL("./index.mjs", here).href;
}

async function prepareNode(): Promise<void> {
  if (detectRuntime() !== "node") return;
  tsxReady ??= (async () => {
    const hook = `
      const lib = ${JSON.stringify(libraryUrl())};
      export async function resolve(specifier, context, next) {
        if (specifier !== "tsflow") return next(specifier, context);
        try { return await next(specifier, context); }
        catch { return { url: lib, shortCircuit: true }; }
      }`;
    register(`data:text/javascript,${encodeURIComponent(hook)}`);
    const { register: registerTsx } = await import("tsx/esm/api");
    registerTsx();
  })();
  return tsxReady;
}

export interface LoadedFlow {
  flowClass: Function;
  file: string;
  exportName?: string;
}

const loaded = new Map<string, Promise<LoadedFlow>>();

/** Imports a flow file and picks its flow class (the default export, or `exportName`). */
export function loadFlow(file: string, exportName?: string, cwd = process.cwd(), flowName?: string): Promise<LoadedFlow> {
  const abs = isAbsolute(file) ? file : resolve(cwd, file);
  const key = `${abs}#${exportName ?? ""}#${flowName ?? ""}`;
  let p = loaded.get(key);
  if (!p) {
    p = importFlow(abs, file, exportName, flowName);
    loaded.set(key, p);
  }
  return p;
}

async function importFlow(abs: string, given: string, exportName?: string, flowName?: string): Promise<LoadedFlow> {
  if (!existsSync(abs) || !statSync(abs).isFile()) {
    throw new TsflowError("NotFound", `flow file '${given}' does not exist`);
  }
  await prepareNode();
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(abs).href);
  } catch (e) {
    const err = e as Error;
    const msg = (err.message ?? String(e)).split("\n").slice(0, 6).join("\n");
    throw new TsflowError("BadFlow", `cannot load flow file '${given}': ${msg}`);
  }
  if (exportName) {
    const cls = mod[exportName];
    if (cls === undefined) throw new TsflowError("BadFlow", `flow file '${given}' has no export named '${exportName}' (exports: ${Object.keys(mod).join(", ") || "none"})`);
    if (!isFlowClass(cls)) throw new TsflowError("BadFlow", `export '${exportName}' of '${given}' is not a class extending FlowSpec`);
    return { flowClass: cls, file: abs, exportName };
  }
  if (flowName && (mod.default as Function | undefined)?.name !== flowName) {
    // A worker looking for the class the orchestrator ran (files with several flows).
    const match = Object.entries(mod).find(([, v]) => isFlowClass(v) && (v as Function).name === flowName);
    if (match) return { flowClass: match[1] as Function, file: abs, exportName: match[0] };
  }
  if (mod.default !== undefined) {
    if (!isFlowClass(mod.default)) throw new TsflowError("BadFlow", `the default export of '${given}' is not a class extending FlowSpec from "tsflow"`);
    return { flowClass: mod.default, file: abs };
  }
  const flows = Object.entries(mod).filter(([, v]) => isFlowClass(v));
  if (flows.length === 1) return { flowClass: flows[0]![1] as Function, file: abs, exportName: flows[0]![0] };
  if (flows.length > 1) {
    throw new TsflowError("BadFlow", `flow file '${given}' exports several flows (${flows.map(([k]) => k).join(", ")}); pick one with --flow Name`);
  }
  throw new TsflowError("BadFlow", `flow file '${given}' has no default export; export the flow class as default (export default class MyFlow extends FlowSpec)`);
}
