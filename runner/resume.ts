/**
 * Resume planning (`resumeFlow`, `tsflow resume`): a new run that clones, by reference, every
 * successful task before the failed step (or before STEP) and re-runs the rest with the
 * origin's parameters. Cloning writes the origin task's done.json (with `clonedFrom`) as the
 * new task's done.json: no blob is copied.
 */
import { listTaskIds, readRunIndex, readTasks, type TaskRecord } from "../core/_tasks.ts";
import { createClient, type Run, type TaskDoc } from "../core/client.ts";
import { TsflowError } from "../core/errors.ts";
import type { FlowInfo } from "../core/graph.ts";
import type { RunOptions } from "../core/runtime.ts";
import type { DoneRecord } from "../core/task.ts";
import type { Datastore, Host } from "../core/types.ts";

/** What a resume will do, decided before the new run starts. */
export interface ResumePlan {
  origin: Run;
  /** The first step that re-runs. */
  step: string;
  /** Steps whose tasks all re-run: the resume step (when named) and everything downstream or later. */
  rerun: Set<string>;
  /** The origin's successful tasks by `step|foreach indices|loop iteration`. */
  done: Map<string, { pathspec: string; record: DoneRecord }>;
  /** How many tasks the origin run has: no resume clones more. */
  originTasks: number;
}

/**
 * A task's place in a run, the same in the origin and the resumed run: its step, its foreach
 * indices and, for a step that loops on itself (a switch case), which iteration it is.
 */
const matchKey = (step: string, foreach: { index: number }[], iteration: number) => `${step}|${foreach.map((f) => f.index).join(".")}|${iteration}`;

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

  // The origin's tasks: which succeeded, at which foreach position and loop iteration.
  const done = new Map<string, { pathspec: string; record: DoneRecord }>();
  const notDone = new Set<string>();
  // From the origin's run index when it has one (a run that ended), else task by task (an
  // abandoned run: its orchestrator died before writing one).
  const tasks =
    (await readRunIndex(store, info.name, origin.id, origin.doc)) ??
    (await readTasks(store, info.name, origin.id, await listTaskIds(store, info.name, origin.id), { lenient: false })).filter((t): t is TaskRecord => t !== null);
  const docs = new Map<string, TaskDoc>();
  for (const t of tasks) if (t.doc) docs.set(`${origin.id}/${t.step}/${t.task}`, t.doc);
  for (const t of tasks) {
    if (!t.doc) continue;
    if (t.done) done.set(matchKey(t.step, t.doc.foreach ?? [], iterationOf(`${origin.id}/${t.step}/${t.task}`, docs)), { pathspec: `${origin.id}/${t.step}/${t.task}`, record: t.done });
    else notDone.add(t.step);
  }

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
  return { origin, step, rerun, done, originTasks: docs.size };
}

/**
 * The loop iteration of an origin task: one more than its parent's when the parent is a task of
 * the same step (a switch case looping back), else 0. Read from the parents, so runs written
 * before task.json recorded it resume the same way.
 */
function iterationOf(pathspec: string, docs: Map<string, TaskDoc>): number {
  const doc = docs.get(pathspec);
  if (typeof doc?.iteration === "number") return doc.iteration;
  let n = 0;
  let at = doc;
  // Walk up the chain of same-step parents (iteratively: a loop may run thousands of times).
  while (at && at.parents?.length === 1) {
    const parent = docs.get(at.parents[0]!);
    if (!parent || parent.step !== at.step) break;
    n++;
    at = parent;
  }
  return n;
}

/** The `reuse` hook of a resume: the origin's done record for tasks before the resume point. */
export function resumeReuse(plan: ResumePlan, cloned: Map<string, number>): NonNullable<RunOptions["reuse"]> {
  // Each origin task is cloned at most once, so no resume clones more tasks than its origin has.
  const used = new Set<string>();
  return async (task) => {
    if (plan.rerun.has(task.step) || used.size >= plan.originTasks) return undefined;
    const hit = plan.done.get(matchKey(task.step, task.foreach, task.iteration));
    if (!hit || used.has(hit.pathspec)) return undefined;
    used.add(hit.pathspec);
    cloned.set(task.step, (cloned.get(task.step) ?? 0) + 1);
    return { ...hit.record, clonedFrom: hit.pathspec };
  };
}
