import { defineCommand } from "citty";
import { type Artifact, parsePathspec, type Run, type Step, type Task } from "../../core/client.ts";
import { JsonLimitError, jsonText } from "../../core/_json.ts";
import { isTsflowError, TsflowError } from "../../core/errors.ts";
import type { Datastore, TaskError } from "../../core/types.ts";
import { attemptError, cliClient, datastoreArg, formatBytes, formatTaskError, plural, printable, table } from "./_client.ts";

const PREVIEW_LOAD_LIMIT = 256 * 1024;
/** What `--json` prints at most: values walked (each object once). */
const JSON_MAX_VALUES = 20_000_000;

export default defineCommand({
  meta: { name: "dump", description: "Show a task's artifacts: tsflow dump Flow/run/step[/task] [--include a,b] [--json]" },
  args: {
    pathspec: { type: "positional", description: "Flow/run[/step[/task]] (a run means its end step)", required: true },
    include: { type: "string", description: "Only these artifacts, comma-separated" },
    json: { type: "boolean", description: "Print full values as JSON" },
    ...datastoreArg,
  },
  async run({ args }) {
    const spec = String(args.pathspec);
    parsePathspec(spec, 2, 4);
    const { client, store } = await cliClient(args.datastore);
    const target = await client.get(spec);
    let tasks: Task[];
    if ("stepNames" in target) {
      const run = target as Run;
      tasks = await run.step("end").tasks();
      // A run that did not finish well has no end step to show: list what it did and why it failed.
      if (!run.successful || !tasks.some((t) => t.successful)) return dumpUnfinishedRun(run, Boolean(args.json), store);
    } else if ("onlyTask" in target) tasks = await (target as Step).tasks();
    else tasks = [target as Task];
    if (tasks.length === 0) throw new TsflowError("NotFound", `${spec} has no tasks`);
    const include = args.include ? String(args.include).split(",").map((s) => s.trim()).filter(Boolean) : undefined;

    const pick = async (task: Task): Promise<Artifact[]> => {
      const all = await task.artifacts();
      if (!include) return all;
      const missing = include.filter((n) => !all.some((a) => a.name === n));
      if (missing.length) throw new TsflowError("NotFound", `task ${task.pathspec} has no artifact ${missing.map((m) => `'${m}'`).join(", ")} (it has ${all.map((a) => a.name).join(", ") || "none"})`);
      return all.filter((a) => include.includes(a.name));
    };

    if (args.json) {
      const out: Record<string, Record<string, unknown>> = {};
      for (const task of tasks) {
        const values: Record<string, unknown> = {};
        for (const a of await pick(task)) values[a.name] = await a.value();
        out[task.pathspec] = values;
      }
      // Bounded and iterative: shared sub-objects print once, any depth, no call-stack overflow.
      let text: string;
      try {
        text = jsonText(tasks.length === 1 ? out[tasks[0]!.pathspec] : out, { indent: 2, maxValues: JSON_MAX_VALUES });
      } catch (e) {
        if (e instanceof JsonLimitError) throw new TsflowError("TooLarge", `the artifacts of ${spec} are too large to print as JSON (${e.message}): pick some with --include, or read them with the client API`);
        throw e;
      }
      process.stdout.write(`${text}\n`);
      return 0;
    }
    for (const task of tasks) {
      const arts = await pick(task);
      const error = task.successful ? undefined : await attemptError(store, task, task.attempt);
      const state = task.successful ? (task.clonedFrom ? `cloned from ${task.clonedFrom}` : "succeeded") : error ? `failed at attempt ${task.attempt}` : "not finished";
      process.stdout.write(`${taskTitle(task)} (${state}, ${plural(arts.length, "artifact")})\n`);
      if (error) process.stdout.write(`${formatTaskError(error, "  ")}\n`);
      const rows: string[][] = [];
      for (const a of arts) rows.push([printable(a.name), printable(a.type), formatBytes(a.size), a.size <= PREVIEW_LOAD_LIMIT ? await previewOf(a) : "(large: --json to load)"]);
      if (rows.length) process.stdout.write(table(["NAME", "TYPE", "SIZE", "PREVIEW"], rows));
    }
    return 0;
  },
});

const taskTitle = (task: Task) => `${task.pathspec}${task.index !== undefined ? ` [index ${task.index}]` : ""}`;

/**
 * `dump Flow/RUN` of a run without a finished end step: the run's status and first failure,
 * then every task of every step with its state, and each failed task's error.
 */
async function dumpUnfinishedRun(run: Run, json: boolean, store: Datastore): Promise<number> {
  const rows: { task: Task; error?: TaskError }[] = [];
  for (const step of await run.steps()) {
    for (const task of await step.tasks()) rows.push({ task, error: task.successful ? undefined : await attemptError(store, task, task.attempt) });
  }
  const status = run.abandoned ? "failed (abandoned: its orchestrator died)" : run.status;
  if (json) {
    const tasks = Object.fromEntries(rows.map(({ task, error }) => [task.pathspec, { successful: task.successful, attempt: task.attempt, ...(error ? { error } : {}) }]));
    process.stdout.write(`${jsonText({ run: run.pathspec, status, error: run.error, tasks }, { indent: 2 })}\n`);
    return 0;
  }
  const where = run.error?.pathspec ? ` in ${run.flow}/${run.error.pathspec}` : "";
  process.stdout.write(`Run ${run.pathspec} ${status}${where}${run.error ? `: ${run.error.type}: ${printable(run.error.message.split("\n")[0]!)}` : ""}\n`);
  process.stdout.write(`${plural(rows.length, "task")}${run.finished ? "" : " so far"} (the end step has none; dump a step or task for its artifacts):\n`);
  for (const { task, error } of rows) {
    const state = task.successful ? (task.clonedFrom ? `cloned from ${task.clonedFrom}` : "succeeded") : error ? `failed at attempt ${task.attempt}` : run.finished ? "did not finish" : "running";
    process.stdout.write(`  ${taskTitle(task)} (${state})\n`);
    if (error) process.stdout.write(`${formatTaskError(error, "    ")}\n`);
  }
  return 0;
}

/** One line, at most 80 characters, control characters escaped; the load is capped by the blob's real size. */
async function previewOf(a: Artifact): Promise<string> {
  let v: unknown;
  try {
    v = await a.value({ maxBytes: PREVIEW_LOAD_LIMIT });
  } catch (e) {
    if (isTsflowError(e) && e.code === "TooLarge") return "(large: --json to load)";
    throw e;
  }
  const s = printable((typeof v === "string" ? JSON.stringify(v.slice(0, 200)) : jsonText(v, { maxChars: 200, maxValues: 100, truncate: true })).replace(/\s+/g, " "));
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
