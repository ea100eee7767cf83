import { defineCommand } from "citty";
import { type Artifact, parsePathspec, type Run, type Step, type Task } from "../../core/client.ts";
import { TsflowError } from "../../core/errors.ts";
import type { Datastore, TaskError } from "../../core/types.ts";
import { attemptError, cliClient, datastoreArg, formatBytes, formatTaskError, plural, printable, table } from "./_client.ts";

const PREVIEW_LOAD_LIMIT = 256 * 1024;

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
      process.stdout.write(`${JSON.stringify(tasks.length === 1 ? out[tasks[0]!.pathspec] : out, jsonReplacer, 2)}\n`);
      return 0;
    }
    for (const task of tasks) {
      const arts = await pick(task);
      const error = task.successful ? undefined : await attemptError(store, task, task.attempt);
      const state = task.successful ? (task.clonedFrom ? `cloned from ${task.clonedFrom}` : "succeeded") : error ? `failed at attempt ${task.attempt}` : "not finished";
      process.stdout.write(`${taskTitle(task)} (${state}, ${plural(arts.length, "artifact")})\n`);
      if (error) process.stdout.write(`${formatTaskError(error, "  ")}\n`);
      const rows: string[][] = [];
      for (const a of arts) rows.push([a.name, a.type, formatBytes(a.size), a.size <= PREVIEW_LOAD_LIMIT ? preview(await a.value()) : "(large: --json to load)"]);
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
    process.stdout.write(`${JSON.stringify({ run: run.pathspec, status, error: run.error, tasks }, jsonReplacer, 2)}\n`);
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

/** One line, at most 80 characters, control characters escaped. */
function preview(v: unknown): string {
  let s: string;
  if (typeof v === "string") s = JSON.stringify(v);
  else if (typeof v === "function") s = "[function]";
  else {
    try {
      s = JSON.stringify(v, jsonReplacer) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  s = printable(s.replace(/\s+/g, " "));
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** JSON for values JSON cannot hold: Map, Set, bigint, bytes, Date, errors. */
function jsonReplacer(_key: string, v: unknown): unknown {
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Map) return Object.fromEntries([...v.entries()].map(([k, x]) => [String(k), x]));
  if (v instanceof Set) return [...v];
  if (v instanceof Uint8Array) return { type: "Uint8Array", byteLength: v.byteLength, base64: toBase64(v.subarray(0, 1 << 20)) };
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (v instanceof Error) return { name: v.name, message: v.message };
  if (typeof v === "function") return "[function]";
  if (v === undefined) return null;
  return v;
}

function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}
