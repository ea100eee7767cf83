/**
 * The `tsflow` package: the flow API, `runFlow` for programmatic runs, and the plugin
 * interfaces. `runFlow` here wires the defaults a user expects (the local datastore found
 * like git finds `.git`, warm local workers); `executeRun` from the core takes everything
 * explicitly.
 */
import { existsSync } from "node:fs";
import { defaultCardRenderer } from "./cards/index.ts";
import { installCardRenderer } from "./core/cards.ts";
import { openDatastore } from "./runner/stores.ts";
import { buildFlowModule } from "./runner/load.ts";
import { createClient, type Flow as ClientFlow } from "./core/client.ts";
import { TsflowError } from "./core/errors.ts";
import { getStepMeta } from "./core/flow.ts";
import { loadFlowInfo } from "./core/graph.ts";
import { executeRun, type RunReporter, type RunResult, resolveParameters } from "./core/runtime.ts";
import type { Datastore, Executor } from "./core/types.ts";
import inlineExecutor from "./plugins/executors/inline.ts";
import processExecutor from "./plugins/executors/process.ts";
import nodeHost from "./plugins/host/node.ts";

export * from "./core/index.ts";
export { cardHtml, vegaLiteHtml } from "./cards/index.ts";

// Tasks render their cards, and readers build card documents, with tsflow's renderer.
installCardRenderer(defaultCardRenderer);

export interface RunFlowOptions {
  /** Parameter values by parameter name (typed, or strings as on the command line). */
  params?: Record<string, unknown>;
  /** Configs by name: a file path, inline JSON text, or the value itself (validated all the same). */
  config?: Record<string, unknown>;
  /** A datastore, or its location (path or s3://…). Default: `.tsflow` found upwards. */
  datastore?: Datastore | string;
  /** The module defining the flow; found from the class when omitted. */
  file?: string;
  exportName?: string;
  /** `process` (warm workers, default when the flow's file is known), `inline`, or an executor. */
  executor?: "process" | "inline" | Executor;
  tags?: string[];
  maxWorkers?: number;
  maxNumSplits?: number;
  with?: Record<string, Record<string, unknown>>;
  reporter?: RunReporter;
  signal?: AbortSignal;
}

/** Runs a flow class from code (tests, notebooks) and resolves with the finished run. */
export async function runFlow(flowClass: Function, options: RunFlowOptions = {}): Promise<RunResult> {
  const host = nodeHost();
  const info = loadFlowInfo(flowClass);
  const store = typeof options.datastore === "object" ? options.datastore : await openDatastore(options.datastore);
  const file = options.file ?? definingFile(flowClass);
  const mode = options.executor ?? (file ? "process" : "inline");
  if (mode === "process" && !file) {
    throw new TsflowError("BadOption", `cannot tell which file defines ${info.name}; pass { file } or { executor: "inline" }`);
  }
  // Parameters and configs are checked before any worker starts or anything is stored.
  const parameters = await resolveParameters(info, options.params ?? {}, host, options.config);
  const executor = mode === "process" ? processExecutor() : mode === "inline" ? inlineExecutor({ flowClass, store, host }) : mode;
  const flowModule = file && mode === "process" && host.runtime === "node" && !/\.m?js$/.test(file) ? await buildFlowModule(file) : file;
  try {
    return await executeRun({
      flowClass,
      flowFile: file ?? `<inline ${info.name}>`,
      exportName: options.exportName,
      flowModule,
      store,
      host,
      executor,
      parameters,
      tags: options.tags,
      maxWorkers: options.maxWorkers,
      maxNumSplits: options.maxNumSplits,
      with: options.with,
      reporter: options.reporter,
      signal: options.signal,
    });
  } finally {
    if (typeof options.executor !== "object") await executor.close?.();
  }
}

/** The file that defined the class, read from the stack captured by `@step`. */
function definingFile(flowClass: Function): string | undefined {
  const first = Object.getOwnPropertyNames(flowClass.prototype)
    .map((k) => getStepMeta(Object.getOwnPropertyDescriptor(flowClass.prototype, k)?.value))
    .find((m) => m?.definedAt);
  for (const line of first?.definedAt?.split("\n").slice(1) ?? []) {
    const m = /(?:\(|at |@)((?:file:\/\/)?\/[^():]+\.(?:[cm]?[jt]s|tsx)):\d+/.exec(line);
    if (!m) continue;
    const path = decodeURIComponent(m[1]!.replace(/^file:\/\//, ""));
    if (/\/(core|dist)\/[^/]+\.(ts|mjs)$/.test(path) && /tsflow|\/core\//.test(path)) continue;
    // Legacy decorators run through a helper (tslib's __decorate, oxc's or a bundler's runtime
    // helper, sometimes a virtual module): that frame is not the flow's file.
    if (path.includes("/node_modules/") || /[\0\s]@|decorate\.[cm]?js$/.test(path) || !existsSync(path)) continue;
    return path;
  }
  return undefined;
}

// The client API wired to the defaults: the datastore `runFlow` would use (`TSFLOW_DATASTORE`
// or `.tsflow` found upwards), opened on first use.
const defaultClient = createClient(() => openDatastore(), nodeHost());
/** `Flow.get(name)` / `Flow.list()` over the default datastore (see core/client.ts). */
export const Flow = defaultClient.Flow;
export type Flow<F = unknown> = ClientFlow<F>;
/** Sets the namespace of client reads (`null`: every run) and returns the previous one. */
export const namespace = defaultClient.namespace;
/** The namespace client reads use: `user:<current user>` unless {@link namespace} changed it. */
export const getNamespace = defaultClient.getNamespace;
/** Whatever a pathspec (`Flow[/run[/step[/task]]]`) names, from the default datastore. */
export const getPathspec = defaultClient.get;
