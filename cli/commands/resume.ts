/**
 * `tsflow resume FILE [STEP] [--origin-run-id ID]`: a new run that clones, by reference, every
 * successful task before the failed step (or before STEP) and re-runs the rest with the
 * origin's parameters. Cloning writes the origin task's done.json (with `clonedFrom`) as the
 * new task's done.json: no blob is copied.
 */
import { defineCommand } from "citty";
import { getJson, listAll, mapLimit } from "../../core/_datastore.ts";
import { doneKey, stepsPrefix } from "../../core/_layout.ts";
import { contentHash } from "../../core/artifacts.ts";
import { createClient, type Run, type TaskDoc } from "../../core/client.ts";
import { TsflowError } from "../../core/errors.ts";
import type { FlowInfo } from "../../core/graph.ts";
import type { RunOptions } from "../../core/runtime.ts";
import type { DoneRecord } from "../../core/task.ts";
import type { ArtifactRef, Datastore, Host } from "../../core/types.ts";
import { parseRunArgs } from "../options.ts";
import { prepareRun, runArgs, runInTerminal } from "./run.ts";

/** What a resume will do, decided before the new run starts. */
export interface ResumePlan {
  origin: Run;
  /** The first step that re-runs. */
  step: string;
  /** Steps whose tasks all re-run: the resume step (when named) and everything downstream or later. */
  rerun: Set<string>;
  /** The origin's successful tasks by `step|foreach indices`. */
  done: Map<string, { pathspec: string; record: DoneRecord }>;
}

const matchKey = (step: string, foreach: { index: number }[]) => `${step}|${foreach.map((f) => f.index).join(".")}`;

/** Reads the origin run and decides where to resume. */
export async function planResume(store: Datastore, host: Host, info: FlowInfo, originRunId: string | undefined, stepArg: string | undefined): Promise<ResumePlan> {
  const client = createClient(store, host);
  client.namespace(null);
  const flow = client.Flow.get(info.name);
  let origin: Run;
  if (originRunId) origin = await flow.run(originRunId);
  else {
    const latest = await flow.latestRun();
    if (!latest) throw new TsflowError("NotFound", `flow '${info.name}' has no runs to resume in ${store.url}`);
    origin = latest;
  }
  const order = info.graph.order;
  if (stepArg !== undefined && !info.graph.nodes[stepArg]) {
    throw new TsflowError("NotFound", `flow ${info.name} has no step '${stepArg}' to resume from (steps: ${order.join(", ")})`);
  }
  if (origin.status === "running") throw new TsflowError("BadOption", `run ${origin.pathspec} is still running; resume it once it has ended`);
  if (origin.successful && stepArg === undefined) {
    throw new TsflowError("BadOption", `run ${origin.pathspec} succeeded, so there is nothing to resume; name a step to re-run from (tsflow resume FILE STEP)`);
  }

  // The origin's tasks: which succeeded, at which foreach position.
  const done = new Map<string, { pathspec: string; record: DoneRecord }>();
  const notDone = new Set<string>();
  const keys = (await listAll(store, stepsPrefix(info.name, origin.id))).filter((k) => k.endsWith("/task.json"));
  await mapLimit(keys, 16, async (key) => {
    const doc = await getJson<TaskDoc>(store, key);
    if (!doc) return;
    const record = await getJson<DoneRecord>(store, doneKey(info.name, origin.id, doc.step, doc.taskId));
    if (record) done.set(matchKey(doc.step, doc.foreach ?? []), { pathspec: `${origin.id}/${doc.step}/${doc.taskId}`, record });
    else notDone.add(doc.step);
  });

  let step = stepArg;
  if (step === undefined) {
    const failedAt = origin.error?.pathspec?.split("/")[1];
    step = failedAt && info.graph.nodes[failedAt] ? failedAt : order.find((s) => notDone.has(s));
    step ??= order.find((s) => ![...done.keys()].some((k) => k.startsWith(`${s}|`)));
    if (!step) throw new TsflowError("BadOption", `run ${origin.pathspec} has no failed step to resume from; name one (tsflow resume FILE STEP)`);
  }

  // Everything at or after the resume point in graph order, and everything downstream of it.
  const rerun = new Set(order.slice(order.indexOf(step)));
  const stack = [step];
  while (stack.length) {
    const s = stack.pop()!;
    for (const n of info.graph.nodes[s]?.next ?? []) {
      if (!rerun.has(n)) stack.push(n);
      rerun.add(n);
    }
    rerun.add(s);
  }
  // A failed step found from the failure keeps its successful tasks (siblings of a failed
  // foreach item); a step the user named re-runs whole.
  if (stepArg === undefined) rerun.delete(step);
  return { origin, step, rerun, done };
}

/** The `reuse` hook of a resume: the origin's done record for tasks before the resume point. */
export function resumeReuse(plan: ResumePlan, cloned: Map<string, number>): NonNullable<RunOptions["reuse"]> {
  return async (task) => {
    if (plan.rerun.has(task.step)) return undefined;
    const hit = plan.done.get(matchKey(task.step, task.foreach));
    if (!hit) return undefined;
    cloned.set(task.step, (cloned.get(task.step) ?? 0) + 1);
    return { ...hit.record, clonedFrom: hit.pathspec };
  };
}

export default defineCommand({
  meta: { name: "resume", description: "Resume a failed run: tsflow resume flow.ts [STEP] [--origin-run-id ID]" },
  args: {
    ...runArgs,
    step: { type: "positional", description: "Re-run from this step (default: the step that failed)", required: false },
    "origin-run-id": { type: "string", description: "The run to resume (default: the latest run of the flow)" },
  },
  async run({ rawArgs }) {
    const flags = parseRunArgs(rawArgs);
    if (flags.help) return 0;
    if (Object.keys(flags.params).length > 0) {
      throw new TsflowError("BadParameter", `resume keeps the origin run's parameters; drop ${Object.keys(flags.params).map((p) => `--${p}`).join(", ")} (or start a new run)`);
    }
    if (flags.configs.length > 0) throw new TsflowError("BadConfig", `resume keeps the origin run's configs; drop --config ${flags.configs.join(" ")} (or start a new run)`);
    if (flags.rest.length > 1) throw new TsflowError("BadOption", `resume takes one step, got ${flags.rest.join(", ")}`);
    let plan: ResumePlan | undefined;
    const prepared = await prepareRun(
      rawArgs,
      undefined,
      async (info) => {
        const { openDatastore } = await import("../../runner/stores.ts");
        const { default: nodeHost } = await import("../../plugins/host/node.ts");
        plan = await planResume(await openDatastore(flags.datastore), nodeHost(), info, flags.originRunId, flags.rest[0]);
        return { ...plan.origin.parameters };
      },
      // Cache keys from the origin's stored parameters: the values above are for display.
      async () => Object.fromEntries(Object.entries((plan!.origin.doc.parameters ?? {}) as Record<string, ArtifactRef>).map(([k, r]) => [k, contentHash(r)])),
    );
    const p = plan!;
    const cloned = new Map<string, number>();
    const resumeClone = resumeReuse(p, cloned);
    const cacheReuse = prepared.options.reuse;
    const originParams = p.origin.doc.parameters as Record<string, ArtifactRef> | undefined;
    const rerun = [p.step, ...[...p.rerun].filter((s) => s !== p.step)];
    const partly = p.rerun.has(p.step) ? "" : ` (its successful tasks are cloned)`;
    process.stdout.write(`Resuming ${p.origin.pathspec} from step '${p.step}'${partly}: cloning the successful tasks before it, re-running ${rerun.join(", ")}\n`);
    const code = await runInTerminal({
      ...prepared,
      options: {
        ...prepared.options,
        originRunId: p.origin.id,
        reuse: async (task) => (await resumeClone(task)) ?? (await cacheReuse?.(task)),
        runRecord: { ...(originParams ? { parameters: originParams } : {}), parameterValues: p.origin.parameters, resumedFrom: p.step },
      },
    });
    const total = [...cloned.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(`Cloned ${total} task${total === 1 ? "" : "s"} from ${p.origin.pathspec}${total ? ` (${[...cloned].map(([s, n]) => `${s} ×${n}`).join(", ")})` : ""}; re-ran from '${p.step}'\n`);
    return code;
  },
});
