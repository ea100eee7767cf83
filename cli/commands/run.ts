import { defineCommand } from "citty";
import { refOf } from "../../core/artifacts.ts";
import { type StepCache, stepCache } from "../../core/cache.ts";
import { applyConfig, configValues } from "../../core/config.ts";
import { TsflowError } from "../../core/errors.ts";
import { type FlowInfo, formatParameter, inspectFlow, loadFlowInfo } from "../../core/graph.ts";
import { executeRun, type RunOptions, type RunResult, resolveParameters } from "../../core/runtime.ts";
import type { Host } from "../../core/types.ts";
import nodeHost from "../../plugins/host/node.ts";
import { executorSet } from "../../runner/executors.ts";
import { loadFlow } from "../../runner/load.ts";
import { openDatastore } from "../../runner/stores.ts";
import { applyDefaults, checkBareParameters, parseConfigFlags, parseRunArgs, parseWith, type RunFlags } from "../options.ts";
import { terminalReporter } from "../reporter.ts";

export const runArgs = {
  file: { type: "positional", description: "The flow file (.ts, .mts or .js)", required: false },
  flow: { type: "string", description: "Named export of the flow class, when it is not the default export" },
  tag: { type: "string", description: "Tag the run (repeatable)" },
  "max-workers": { type: "string", description: "Tasks running at once (default: number of CPUs)" },
  "max-num-splits": { type: "string", description: "Largest foreach allowed (default: 1000)" },
  with: { type: "string", description: "Attach a decorator to every step: retry, timeout:seconds=60, batch:memory=8192 (repeatable)" },
  datastore: { type: "string", description: "Where runs are stored: a path or s3://bucket/prefix (default: .tsflow found upwards)" },
  executor: { type: "string", description: "process (default), docker, batch, or the path of an executor plugin" },
  "fresh-workers": { type: "boolean", description: "One process per task instead of warm workers (full isolation)" },
  "no-cache": { type: "boolean", description: "Run @cached steps even when an earlier result matches" },
  config: { type: "string", description: "A config of the flow: NAME=FILE or NAME=<inline JSON> (repeatable)" },
} as const;

/** Flow parameters as extra help lines (`tsflow run flow.ts --help`). */
async function parameterHelp(file: string, flow?: string): Promise<string> {
  const { flowClass } = await loadFlow(file, flow);
  const info = inspectFlow(flowClass);
  const configs = Object.values(info.parameters)
    .filter((p) => p.kind === "config")
    .map((p) => `  ${formatParameter(p)}`);
  const lines = Object.values(info.parameters)
    .filter((p) => p.kind !== "config")
    .map((p) => `  ${formatParameter(p)}`);
  const configText = configs.length ? `\nConfigs of ${info.name}:\n${configs.join("\n")}\n` : "";
  return (lines.length ? `\nParameters of ${info.name}:\n${lines.join("\n")}\n` : `\n${info.name} has no parameters.\n`) + configText;
}

export interface PreparedRun {
  options: RunOptions;
  close(): Promise<void>;
  flags: RunFlags;
  /** The `@cached` step cache of this run, when a step is cached. */
  cache?: StepCache;
}

/** Content hashes of the parameter values by field, for cache keys. */
async function parameterHashes(info: FlowInfo, values: Record<string, unknown>, host: Host): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [field, spec] of Object.entries(info.parameters)) out[field] = refOf(host, field, values[spec.name]).ref.hash;
  return out;
}

/** Everything `run` and `resume` share: flags, flow, parameters, datastore, executors. */
export async function prepareRun(
  rawArgs: string[],
  extraParams?: Record<string, unknown>,
  resolved?: (info: FlowInfo) => Promise<Record<string, unknown>>,
  paramHashes?: (info: FlowInfo) => Promise<Record<string, string>>,
): Promise<PreparedRun> {
  const flags = await applyDefaults(parseRunArgs(rawArgs));
  if (!flags.file) throw new TsflowError("BadOption", "give the flow file to run, e.g. tsflow run flows/pets.ts");
  const host = nodeHost();
  const withDecorators = parseWith(flags.with);
  const defaultExecutor = flags.executor ?? "process";
  // Start local workers while the flow is being built: they are ready when `start` is.
  const early = defaultExecutor === "process" ? await executorSet("process", [], {}, { freshWorkers: flags.freshWorkers }) : undefined;
  early?.all()[0]?.warm?.(flags.maxWorkers ?? host.cpus());
  const [{ flowClass, file, exportName, module }, store] = await Promise.all([loadFlow(flags.file, flags.flow), openDatastore(flags.datastore)]);
  const declared = loadFlowInfo(flowClass, flags.file);
  checkBareParameters(flags, declared.parameters);
  // Resume brings the origin's values (`resolved`) instead of reading them from the flags.
  const parameters = resolved ? await resolved(declared) : await resolveParameters(declared, { ...(extraParams ?? {}), ...flags.params }, host, parseConfigFlags(flags.configs));
  // Executors are picked from decorators whose arguments may come from the configs.
  const info = applyConfig(declared, configValues(declared, parameters));
  // @cached steps (or --with cached) reuse earlier results unless --no-cache.
  const cache =
    !flags.noCache && (withDecorators.cached || Object.values(info.graph.nodes).some((n) => n.decorators.cached))
      ? stepCache({ store, host, info, withCached: Boolean(withDecorators.cached), paramHashes: await (paramHashes ?? parameterHashes)(info, parameters, host) })
      : undefined;
  const executors = await executorSet(defaultExecutor, Object.values(info.graph.nodes), withDecorators, { freshWorkers: flags.freshWorkers, reuse: early });
  return {
    flags,
    options: {
      flowClass,
      flowFile: file,
      exportName,
      flowModule: module,
      store,
      host,
      executor: executors.select,
      parameters,
      tags: flags.tags,
      maxWorkers: flags.maxWorkers,
      maxNumSplits: flags.maxNumSplits,
      with: withDecorators,
      freshWorkers: flags.freshWorkers,
      ...(cache ? { reuse: cache.reuse } : {}),
    },
    cache,
    close: async () => {
      await executors.close();
      await cache?.finish();
    },
  };
}

/** Runs with the terminal reporter and Ctrl-C handling; returns the exit code. */
export async function runInTerminal(prepared: PreparedRun, execute: (options: RunOptions) => Promise<RunResult> = executeRun): Promise<number> {
  const reporter = terminalReporter();
  const hits = prepared.cache?.hits;
  const finished = reporter.taskFinished;
  // A cache hit reaches the reporter as a clone; say where it came from in cache terms.
  if (hits) reporter.taskFinished = (task) => (task.clonedFrom && hits.has(task.clonedFrom) ? reporter.message(`[${task.pathspec}] cached from ${task.clonedFrom}`) : finished?.(task));
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      reporter.message("\nStopping every task (Ctrl-C again to force)…");
      controller.abort();
    } else {
      // Second Ctrl-C: fall back to the default handler, which ends the process at once.
      process.off("SIGINT", onSigint);
      process.kill(process.pid, "SIGINT");
    }
  };
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigint);
  let result: RunResult;
  try {
    result = await execute({ ...prepared.options, reporter, signal: controller.signal });
  } finally {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigint);
    reporter.stop();
    await prepared.close();
  }
  const secs = (result.durationMs / 1000).toFixed(2);
  const id = `${result.flow}/${result.runId}`;
  if (result.successful) {
    process.stdout.write(`✔ Run ${id} succeeded in ${secs} s (${result.tasks} ${result.tasks === 1 ? "task" : "tasks"})\n  inspect: tsflow dump ${id}/end · tsflow logs ${id}/start · tsflow view\n`);
    return 0;
  }
  const where = result.error?.pathspec ? ` in ${result.flow}/${result.error.pathspec}` : "";
  process.stderr.write(`✖ Run ${id} failed${where} after ${secs} s: ${result.error?.type}: ${result.error?.message}\n  resume it: tsflow resume ${prepared.flags.file} --origin-run-id ${result.runId}\n`);
  return interrupts > 0 ? 130 : 1;
}

export default defineCommand({
  meta: { name: "run", description: "Run a flow: tsflow run flow.ts [--param value …]" },
  args: runArgs,
  async run({ rawArgs }) {
    const flags = parseRunArgs(rawArgs);
    if (flags.help) {
      if (flags.file) process.stdout.write(await parameterHelp(flags.file, flags.flow));
      return 0;
    }
    return runInTerminal(await prepareRun(rawArgs));
  },
});
