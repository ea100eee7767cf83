import { defineCommand } from "citty";
import { type Step, type Task, parsePathspec } from "../../core/client.ts";
import { TsflowError } from "../../core/errors.ts";
import { cliClient, datastoreArg } from "./_client.ts";

export default defineCommand({
  meta: { name: "logs", description: "Print a task's output: tsflow logs Flow/run/step[/task]" },
  args: {
    pathspec: { type: "positional", description: "Flow/run/step[/task]; a step with one task needs no task", required: true },
    stderr: { type: "boolean", description: "Print stderr instead of stdout" },
    attempt: { type: "string", description: "Attempt number (default: the one that counts)" },
    ...datastoreArg,
  },
  async run({ args }) {
    parsePathspec(String(args.pathspec), 3, 4);
    let attempt: number | undefined;
    if (args.attempt !== undefined) {
      attempt = Number(args.attempt);
      if (!Number.isInteger(attempt) || attempt < 0) throw new TsflowError("BadOption", `option --attempt must be a whole number of at least 0, got '${args.attempt}'`);
    }
    const { client } = await cliClient(args.datastore);
    const target = await client.get(String(args.pathspec));
    const task: Task = "onlyTask" in target ? await (target as Step).onlyTask() : (target as Task);
    if (attempt !== undefined) {
      const attempts = await task.attempts();
      if (!attempts.includes(attempt)) throw new TsflowError("NotFound", `task ${task.pathspec} has no attempt ${attempt} (attempts: ${attempts.join(", ") || "none"})`);
    }
    const text = args.stderr ? await task.stderr(attempt) : await task.stdout(attempt);
    process.stdout.write(text);
    return 0;
  },
});
