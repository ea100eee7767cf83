import { defineCommand } from "citty";
import { type Artifact, parsePathspec, type Run, type Step, type Task } from "../../core/client.ts";
import { TsflowError } from "../../core/errors.ts";
import { cliClient, datastoreArg, formatBytes, printable, table } from "./_client.ts";

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
    const { client } = await cliClient(args.datastore);
    const target = await client.get(spec);
    let tasks: Task[];
    if ("stepNames" in target) tasks = await (target as Run).step("end").tasks();
    else if ("onlyTask" in target) tasks = await (target as Step).tasks();
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
      const state = task.successful ? (task.clonedFrom ? `cloned from ${task.clonedFrom}` : "succeeded") : "failed";
      process.stdout.write(`${task.pathspec}${task.index !== undefined ? ` [index ${task.index}]` : ""} (${state}, ${arts.length} artifacts)\n`);
      const rows: string[][] = [];
      for (const a of arts) rows.push([a.name, a.type, formatBytes(a.size), a.size <= PREVIEW_LOAD_LIMIT ? preview(await a.value()) : "(large: --json to load)"]);
      if (rows.length) process.stdout.write(table(["NAME", "TYPE", "SIZE", "PREVIEW"], rows));
    }
    return 0;
  },
});

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
