/**
 * Choosing executors: `--executor process|docker|batch|./my-executor.ts`, and per step the
 * `@docker`/`@batch` decorators. Built-ins load lazily so a local run never loads the
 * container or AWS code.
 */
import { isAbsolute, resolve } from "node:path";
import { existsSync, statSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { TsflowError } from "../core/errors.ts";
import type { GraphNode } from "../core/graph.ts";
import type { ExecutorSelector } from "../core/runtime.ts";
import type { Executor, ExecutorFactory } from "../core/types.ts";
import processExecutor from "../plugins/executors/process.ts";
import { detectRuntime } from "../plugins/host/node.ts";
import { buildFlowModule } from "./load.ts";

const BUILTIN: Record<string, () => Promise<{ default: ExecutorFactory<any> }>> = {
  process: async () => ({ default: processExecutor }),
  docker: () => import("../plugins/executors/docker.ts"),
  batch: () => import("../plugins/executors/batch.ts"),
};

async function createExecutor(name: string, options: Record<string, unknown>, cwd: string): Promise<Executor> {
  let mod: { default?: unknown };
  if (BUILTIN[name]) mod = await BUILTIN[name]();
  else if (/[./\\]/.test(name)) {
    const file = isAbsolute(name) ? name : resolve(cwd, name);
    if (!existsSync(file) || !statSync(file).isFile()) throw new TsflowError("BadOption", `executor plugin '${name}' is not a file (looked for ${file})`);
    try {
      // A TypeScript plugin is bundled like a flow (Node 20 cannot import .ts), its `tsflow` import pointed at this tsflow.
      const module = /\.[cm]?tsx?$/.test(file) && detectRuntime() === "node" ? await buildFlowModule(file) : file;
      mod = await import(pathToFileURL(module).href);
    } catch (e) {
      throw new TsflowError("BadOption", `cannot load executor plugin '${name}': ${(e as Error).message.split("\n")[0]}`);
    }
  } else {
    throw new TsflowError("BadOption", `unknown executor '${name}' (built in: ${Object.keys(BUILTIN).join(", ")}; or give the path of a plugin file)`);
  }
  if (typeof mod.default !== "function") throw new TsflowError("BadOption", `executor plugin '${name}' must default-export a factory (options) => Executor`);
  // A flow file given by mistake default-exports a class: say so instead of a TypeError.
  if (/^class[\s{]/.test(Function.prototype.toString.call(mod.default))) throw new TsflowError("BadOption", `executor plugin '${name}' default-exports a class (a flow?), not a factory (options) => Executor`);
  let ex: Executor;
  try {
    ex = (mod.default as ExecutorFactory<Record<string, unknown>>)(options);
  } catch (e) {
    throw new TsflowError("BadOption", `executor plugin '${name}' failed to start with options ${JSON.stringify(options)}: ${(e as Error)?.message ?? String(e)}`);
  }
  if (!ex || typeof ex.run !== "function") throw new TsflowError("BadOption", `executor plugin '${name}' returned something without a run() method`);
  return ex;
}

export interface ExecutorSet {
  select: ExecutorSelector;
  /** Executors every step may need, created before the run starts. */
  all(): Executor[];
  close(): Promise<void>;
}

/**
 * Creates the executors a run needs up front (so a bad name fails before anything runs):
 * the default one, plus one per executor decorator used by any step.
 */
export async function executorSet(
  defaultName: string,
  nodes: GraphNode[],
  withDecorators: Record<string, Record<string, unknown>>,
  options: {
    freshWorkers?: boolean;
    cwd?: string;
    reuse?: ExecutorSet;
    /** Executors made by the caller, by name (an `Executor` given to `runFlow`, the inline one); the caller closes them. */
    given?: Executor[];
  } = {},
): Promise<ExecutorSet> {
  const cwd = options.cwd ?? process.cwd();
  const made = new Map<string, Executor>((options.reuse?.all() ?? []).map((e) => [e.name, e]));
  const given = new Set(options.given ?? []);
  for (const e of given) made.set(e.name, e);
  const get = async (name: string) => {
    let ex = made.get(name);
    if (!ex) {
      ex = await createExecutor(name, name === "process" ? { fresh: options.freshWorkers } : {}, cwd);
      made.set(name, ex);
    }
    return ex;
  };
  await get(defaultName);
  const decoratorExecutors = ["docker", "batch"];
  for (const node of nodes) {
    for (const d of decoratorExecutors) if (node.decorators[d] || withDecorators[d]) await get(d);
  }
  return {
    select(node) {
      for (const d of decoratorExecutors) if (node.decorators[d] && made.has(d)) return made.get(d)!;
      for (const d of decoratorExecutors) if (withDecorators[d] && made.has(d)) return made.get(d)!;
      return made.get(defaultName)!;
    },
    all: () => [...made.values()],
    async close() {
      await Promise.all([...made.values()].filter((e) => !given.has(e)).map((e) => e.close?.()));
    },
  };
}
