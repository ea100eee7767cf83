import { defineCommand } from "citty";
import { type Step, type Task, parsePathspec } from "../../core/client.ts";
import { TsflowError } from "../../core/errors.ts";
import { attemptError, cliClient, datastoreArg, formatTaskError } from "./_client.ts";

export default defineCommand({
  meta: { name: "logs", description: "Print a task's output: tsflow logs Flow/run/step[/task]" },
  args: {
    pathspec: { type: "positional", description: "Flow/run/step[/task]; a step with several tasks prints each under a header", required: true },
    stderr: { type: "boolean", description: "Print stderr instead of stdout (a failed attempt's error ends it)" },
    attempt: { type: "string", description: "Attempt number (default: the one that counts)" },
    tail: { type: "string", description: "Only the last N lines (reads only the end of a long log)" },
    ...datastoreArg,
  },
  async run({ args }) {
    const spec = String(args.pathspec);
    parsePathspec(spec, 3, 4);
    let attempt: number | undefined;
    if (args.attempt !== undefined) {
      attempt = Number(args.attempt);
      if (!Number.isInteger(attempt) || attempt < 0) throw new TsflowError("BadOption", `option --attempt must be a whole number of at least 0, got '${args.attempt}'`);
    }
    let tail: number | undefined;
    if (args.tail !== undefined) {
      tail = Number(args.tail);
      if (!Number.isInteger(tail) || tail < 1) throw new TsflowError("BadOption", `option --tail must be a whole number of at least 1, got '${args.tail}'`);
    }
    const { client, store } = await cliClient(args.datastore);
    const target = await client.get(spec);
    const tasks: Task[] = "onlyTask" in target ? await (target as Step).tasks() : [target as Task];
    if (tasks.length === 0) throw new TsflowError("NotFound", `step ${spec} has no tasks in ${store.url}`);
    const several = tasks.length > 1;
    for (const task of tasks) {
      const n = attempt ?? task.attempt;
      const attempts = await task.attempts();
      if (attempt !== undefined && !attempts.includes(attempt)) {
        if (several) continue;
        throw new TsflowError("NotFound", `task ${task.pathspec} has no attempt ${attempt} (attempts: ${attempts.join(", ") || "none"})`);
      }
      const error = await attemptError(store, task, n);
      // Several tasks: each under a header, as `dump` shows them.
      if (several) {
        const state = task.successful && n === task.attempt ? "succeeded" : error ? "failed" : "running";
        process.stdout.write(`${task.pathspec}${task.index !== undefined ? ` [index ${task.index}]` : ""} (attempt ${n}, ${state})\n`);
      }
      const stream = args.stderr ? "stderr" : "stdout";
      await printLog(tail ? tailLines(task, stream, tail, n) : task.logChunks(stream, n), several ? "  " : "");
      if (!error) continue;
      // As in Metaflow's stderr log, a failed attempt's stderr ends with its error; stdout only
      // points at it, on the command's own stderr.
      if (args.stderr) process.stdout.write(`${formatTaskError(error, several ? "  " : "")}\n`);
      else process.stderr.write(`✖ ${task.pathspec} attempt ${n} failed: ${error.type}: ${error.message.split("\n")[0]} (the stack: tsflow logs ${task.pathspec} --stderr${attempt !== undefined ? ` --attempt ${n}` : ""})\n`);
    }
    return 0;
  },
});

/**
 * Prints a log piece by piece as stored (bounded memory, logs of any size), indenting each line
 * under a header when several tasks are shown, and ending with a newline.
 */
async function printLog(chunks: AsyncIterable<Uint8Array>, indent: string): Promise<void> {
  const decoder = new TextDecoder();
  let atLineStart = true;
  let last = "";
  const write = (text: string) => {
    if (!text) return Promise.resolve();
    let out = text;
    if (indent) {
      out = out.replace(/\n(?=.)/g, `\n${indent}`);
      if (atLineStart && !out.startsWith("\n")) out = indent + out;
      atLineStart = out.endsWith("\n");
    }
    last = text;
    // Wait for the pipe to drain: a slow reader must not make the whole log pile up in memory.
    return process.stdout.write(out) ? Promise.resolve() : new Promise<void>((r) => process.stdout.once("drain", r));
  };
  for await (const chunk of chunks) await write(decoder.decode(chunk, { stream: true }));
  await write(decoder.decode());
  if (last && !last.endsWith("\n")) process.stdout.write("\n");
}

/** The last `lines` lines of a log, reading a growing window from its end (never the whole of a long log). */
async function* tailLines(task: Task, stream: "stdout" | "stderr", lines: number, attempt: number): AsyncGenerator<Uint8Array> {
  for (let window = 64 * 1024; ; window *= 4) {
    const t = await task.logTail(stream, window, attempt);
    const text = t.text.endsWith("\n") ? t.text.slice(0, -1) : t.text;
    const all = text.split("\n");
    // A cut window starts mid-line: its first line only counts when the window holds the whole log.
    const usable = t.truncated ? all.slice(1) : all;
    if (usable.length >= lines || !t.truncated) {
      const kept = usable.slice(-lines).join("\n");
      yield new TextEncoder().encode(kept && t.text.endsWith("\n") ? `${kept}\n` : kept);
      return;
    }
  }
}
