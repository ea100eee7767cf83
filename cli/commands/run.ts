/** `tsflow run FILE [--param value …]`: arguments in, terminal output and exit code out; the run itself is `runFlow`. */
import { defineCommand } from "citty";
import type { ConsolaInstance } from "consola";
import { TsflowError } from "../../core/errors.ts";
import { formatParameter, inspectFlow } from "../../core/graph.ts";
import type { Logger } from "../../core/types.ts";
import { loadFlow } from "../../runner/load.ts";
import { type FinishedRun, type RunFlowOptions, runFlow } from "../../runner/run.ts";
import { trace } from "../../runner/_trace.ts";
import { checkBareParameters, parseConfigFlags, parseRunArgs, type RunFlags } from "../args.ts";
import { type TerminalReporter, terminalReporter } from "../reporter.ts";

export const runArgs = {
  file: { type: "positional", description: "The flow file (.ts, .mts or .js)", required: false },
  flow: { type: "string", description: "Named export of the flow class, when it is not the default export" },
  tag: { type: "string", description: "Tag the run (repeatable)" },
  "max-workers": { type: "string", description: "Tasks running at once (default: number of CPUs)" },
  "max-num-splits": { type: "string", description: "Largest foreach allowed (default: 1000)" },
  with: { type: "string", description: "Attach a decorator to every step: retry, timeout:seconds=60, batch:memory=8192 (repeatable)" },
  datastore: { type: "string", description: "Where runs are stored: a path, s3://bucket/prefix or a datastore plugin file (./my-store.ts[:options]); default: .tsflow found upwards" },
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

/** What `run` and `resume` pass to the runner from their arguments (defaults are the runner's). */
export function runOptionsOf(flags: RunFlags): RunFlowOptions {
  return {
    exportName: flags.flow,
    datastore: flags.datastore,
    executor: flags.executor,
    tags: flags.tags.length ? flags.tags : undefined,
    with: flags.with.length ? flags.with : undefined,
    maxWorkers: flags.maxWorkers,
    maxNumSplits: flags.maxNumSplits,
    freshWorkers: flags.freshWorkers || undefined,
    noCache: flags.noCache,
    ...(flags.configs.length ? { config: parseConfigFlags(flags.configs) } : {}),
    validate: (info) => checkBareParameters(flags, info.parameters),
  };
}

/**
 * A logger for executors' and datastores' warnings: consola, on stderr, below the live status
 * line. consola loads on the first message: most runs never warn.
 */
function terminalLogger(reporter: TerminalReporter): Logger {
  let log: Promise<ConsolaInstance> | undefined;
  const say = (level: "info" | "warn" | "error" | "debug") => (m: string) => {
    log ??= import("consola").then(({ consola }) => consola.withTag("tsflow"));
    void log.then((l) => {
      reporter.pause();
      l[level](m);
    });
  };
  return { info: say("info"), warn: say("warn"), error: say("error"), debug: say("debug") };
}

/** Runs with the terminal reporter and Ctrl-C handling; prints the outcome and returns the exit code. */
export async function runInTerminal(file: string, start: (extra: Pick<RunFlowOptions, "reporter" | "signal" | "logger">) => Promise<FinishedRun>): Promise<number> {
  const reporter = terminalReporter();
  const finished = reporter.taskFinished;
  // A cache hit reaches the reporter as a clone; say where it came from in cache terms.
  reporter.taskFinished = (task) => (task.cached && task.clonedFrom ? reporter.message(`[${task.pathspec}] cached from ${task.clonedFrom}`) : finished?.(task));
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
  let result: FinishedRun;
  try {
    result = await start({ reporter, signal: controller.signal, logger: terminalLogger(reporter) });
  } finally {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigint);
    reporter.stop();
  }
  const secs = (result.durationMs / 1000).toFixed(2);
  const id = `${result.flow}/${result.runId}`;
  if (result.successful) {
    process.stdout.write(`✔ Run ${id} succeeded in ${secs} s (${result.tasks} ${result.tasks === 1 ? "task" : "tasks"})\n  inspect: tsflow dump ${id}/end · tsflow logs ${id}/start · tsflow view\n`);
    return 0;
  }
  const where = result.error?.pathspec ? ` in ${result.flow}/${result.error.pathspec}` : "";
  process.stderr.write(`✖ Run ${id} failed${where} after ${secs} s: ${result.error?.type}: ${result.error?.message}\n  resume it: tsflow resume ${file} --origin-run-id ${result.runId}\n`);
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
    if (!flags.file) throw new TsflowError("BadOption", "give the flow file to run, e.g. tsflow run flows/pets.ts");
    const file = flags.file;
    trace("run command parsed");
    return runInTerminal(file, (extra) => runFlow(file, { ...runOptionsOf(flags), params: flags.params, ...extra }));
  },
});
