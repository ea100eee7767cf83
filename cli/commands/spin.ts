/**
 * `tsflow spin Flow/run/step/task` (or `tsflow spin flow.ts run/step/task`, or
 * `tsflow spin flow.ts STEP --from RUN [--task ID | --index N]`): re-run one past task with its
 * exact inputs and the step's current code, and show what it produced against the original.
 */
import { defineCommand } from "citty";
import { getJson, mapLimit } from "../../core/_datastore.ts";
import { runKey, stepPrefix } from "../../core/_layout.ts";
import { readTaskDoc } from "../../core/_tasks.ts";
import { TsflowError } from "../../core/errors.ts";
import { loadArtifact } from "../../core/artifacts.ts";
import { describeType } from "../../core/serialize.ts";
import nodeHost from "../../plugins/host/node.ts";
import type { Datastore } from "../../core/types.ts";
import { loadOverrides, spinStep } from "../../runner/spin.ts";
import { openDatastore } from "../../runner/stores.ts";
import { datastoreArg, printable } from "./_client.ts";

const isFlowFile = (s: string) => /\.(?:[cm]?[jt]s|tsx)$/.test(s);

/** The task of `step` in `run` that the user means: `--task`, `--index`, or the only one. */
async function pickTask(store: Datastore, flow: string, run: string, step: string, task?: string, index?: number): Promise<string> {
  if (task) return task;
  const ids = (await store.list(stepPrefix(flow, run, step))).filter((k) => k.endsWith("/")).map((k) => k.slice(0, -1));
  if (ids.length === 0) throw new TsflowError("NotFound", `run ${flow}/${run} has no tasks of step '${step}'`);
  if (index === undefined) {
    if (ids.length === 1) return ids[0]!;
    throw new TsflowError("BadOption", `step '${step}' of ${flow}/${run} has ${ids.length} tasks; pick one with --task ID or --index N (its foreach index)`);
  }
  const docs = await mapLimit(ids, 16, (id) => readTaskDoc(store, flow, run, step, id));
  const hit = docs.find((d) => d?.foreach?.at(-1)?.index === index);
  if (!hit) throw new TsflowError("NotFound", `step '${step}' of ${flow}/${run} has no task at foreach index ${index}`);
  return hit.taskId;
}

function preview(value: unknown): string {
  // Bytes, maps, sets, dates… say what they are; JSON would spell a 1 MB Uint8Array out.
  const plain = value === null || typeof value !== "object" || Array.isArray(value) || Object.getPrototypeOf(value) === Object.prototype;
  if (!plain) {
    const size = ArrayBuffer.isView(value) ? `(${value.byteLength} bytes)` : value instanceof Map || value instanceof Set ? `(${value.size})` : "";
    return `${describeType(value)}${size}`;
  }
  let text: string;
  try {
    text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `${v}n` : v)) ?? describeType(value));
  } catch {
    text = describeType(value);
  }
  return printable(text.length > 80 ? `${text.slice(0, 77)}...` : text);
}

export default defineCommand({
  meta: { name: "spin", description: "Re-run one past task with its exact inputs and the step's current code: tsflow spin Flow/run/step/task" },
  args: {
    target: { type: "positional", description: "Flow/run/step/task, or the flow file", required: true },
    rest: { type: "positional", description: "With a flow file: run/step/task, or STEP with --from RUN", required: false },
    from: { type: "string", description: "With `flow.ts STEP`: the run whose task to re-run" },
    task: { type: "string", description: "With --from: the task id" },
    index: { type: "string", description: "With --from: the foreach index of the task" },
    flow: { type: "string", description: "Named export of the flow class" },
    artifacts: { type: "string", description: "A module exporting artifact values that replace the task's inputs" },
    "no-persist": { type: "boolean", description: "Keep nothing: the spun task is not stored" },
    ...datastoreArg,
  },
  async run({ args, rawArgs }) {
    const target = String(args.target);
    const positional = (args as { _?: string[] })._ ?? [];
    const store = await openDatastore(args.datastore as string | undefined);
    let file: string | undefined;
    let pathspec: string;
    if (isFlowFile(target)) {
      file = target;
      const second = positional[1];
      if (!second) throw new TsflowError("BadOption", "give the task after the flow file: tsflow spin flow.ts run/step/task, or flow.ts STEP --from RUN");
      if (second.includes("/")) pathspec = second;
      else {
        if (!args.from) throw new TsflowError("BadOption", `give the run to take step '${second}' from: tsflow spin ${file} ${second} --from RUN`);
        const { loadFlow } = await import("../../runner/load.ts");
        const { flowClass } = await loadFlow(file, args.flow as string | undefined);
        const index = args.index === undefined ? undefined : Number(args.index);
        if (index !== undefined && !Number.isInteger(index)) throw new TsflowError("BadOption", `--index must be a whole number, got '${args.index}'`);
        const task = await pickTask(store, flowClass.name, String(args.from), second, args.task as string | undefined, index);
        pathspec = `${flowClass.name}/${args.from}/${second}/${task}`;
      }
    } else {
      pathspec = target;
      const parts = target.split("/");
      if (parts.length !== 4) throw new TsflowError("BadOption", `spin takes Flow/run/step/task (or a flow file first), got '${target}'`);
      // The file the run was started from, as recorded: its current code is what spins.
      const run = await getJson<{ flowFile?: string }>(store, runKey(parts[0]!, parts[1]!));
      if (!run) throw new TsflowError("NotFound", `run ${parts[0]}/${parts[1]} is not in datastore ${store.url}`);
      file = run.flowFile;
      if (!file || !isFlowFile(file)) throw new TsflowError("BadOption", `run ${parts[0]}/${parts[1]} does not say which file it came from; give it: tsflow spin flow.ts ${parts.slice(1).join("/")}`);
    }
    const overrides = args.artifacts ? await loadOverrides(String(args.artifacts)) : undefined;
    const persist = !(args["no-persist"] || rawArgs.includes("--no-persist"));
    process.stdout.write(`Spinning ${pathspec} with the current code of ${file}${overrides ? ` (overriding ${Object.keys(overrides).join(", ")})` : ""}\n`);
    const r = await spinStep(file, pathspec, { datastore: store, overrides, persist, exportName: args.flow as string | undefined });
    const secs = (r.durationMs / 1000).toFixed(2);
    if (!r.ok) {
      // Where it failed, in the step's code: what a spin is for.
      const frames = (r.error?.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l) && !/node:internal|tsflow\.mjs|\/(?:core|runner)\/[^/]+\.ts/.test(l)).slice(0, 5);
      process.stderr.write(`✖ Spin of ${r.origin} failed after ${secs} s: ${r.error?.type}: ${r.error?.message}\n${frames.map((f) => `  ${printable(f.trim())}\n`).join("")}`);
      return 1;
    }
    process.stdout.write(`✔ Spun ${r.origin} in ${secs} s${r.persisted ? ` as ${r.pathspec} (tsflow dump ${r.pathspec})` : " (not stored: --no-persist)"}\n`);
    const names = [...new Set([...Object.keys(r.refs), ...Object.keys(r.diff)])].sort();
    const original = Object.keys(r.diff).length > 0;
    process.stdout.write(original ? "Artifacts against the original task:\n" : "Artifacts (the original task had not succeeded):\n");
    const width = Math.max(...names.map((n) => n.length), 4);
    for (const name of names) {
      const change = r.diff[name] ?? "new";
      let shown = name in r.artifacts ? `  ${preview(r.artifacts[name])}` : change === "same" ? "" : "  (passed on from its inputs)";
      // What it was, for a changed artifact: one more read each, only here in the terminal.
      if (change === "changed" && r.originalRefs[name]) shown += `  (was ${preview(await loadArtifact(store, nodeHost(), r.originalRefs[name]!, name, r.origin))})`;
      process.stdout.write(`  ${printable(name).padEnd(width)}  ${(original ? change : "").padEnd(7)}${shown}\n`);
    }
    return 0;
  },
});
