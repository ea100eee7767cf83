/**
 * Step result caching (`@cached()`, `--with cached`): a task of a cached step is reused from
 * an earlier successful task of the same step when everything it could depend on is the same.
 *
 * The key is sha256 of: the code (the built module's hash — the flow file and every local file
 * it imports — or, for a flow defined inline, the step's own source), the tsflow version, the
 * step's environment variables (`@environment`, `--with environment`), the parameter hashes,
 * the input artifacts' hashes and the foreach position. Not in it: npm packages (external to
 * the build: pin them), files a step reads at run time, the clock, the network, and
 * environment variables the step was not given through tsflow. The index
 * `cache/<Flow>/<step>/<key>` holds the pathspec (`run/step/task`) of the task to reuse.
 * It is written after the run for each cached task that really ran, and read through the
 * runtime's `reuse` hook. An entry whose run was deleted is a miss, never an error.
 */
import { getJson } from "./_datastore.ts";
import { doneKey, stepPrefix, taskKey } from "./_layout.ts";
import { docOf } from "./_tasks.ts";
import { contentHash } from "./artifacts.ts";
import type { TaskDoc } from "./client.ts";
import type { FlowInfo } from "./graph.ts";
import type { RunOptions } from "./runtime.ts";
import type { DoneRecord } from "./task.ts";
import type { Datastore, ForeachFrame, Host } from "./types.ts";
import { VERSION } from "./version.ts";

export const cacheKeyPath = (flow: string, step: string, key: string) => `cache/${flow}/${step}/${key}`;

export interface StepCache {
  /** The `reuse` hook: a cached step's earlier task when the key matches. */
  reuse: NonNullable<RunOptions["reuse"]>;
  /** `run/step/task` pathspecs handed out as cache hits, so a reporter can say "cached from". */
  hits: Set<string>;
  /** Steps that are cached. */
  steps: Set<string>;
  /** Records the cache entries of the tasks that ran; call when the run has ended. */
  finish(): Promise<void>;
}

/**
 * The cache of one run. `paramHashes` are the content hashes of the run's parameters by field;
 * `withCached` is `--with cached`.
 */
export function stepCache(options: {
  store: Datastore;
  host: Host;
  info: FlowInfo;
  paramHashes: Record<string, string>;
  withCached?: boolean;
  /**
   * Hash of everything the steps can execute: the built module (the flow file and its local
   * imports). Without it (a flow defined inline) only the step's own source is in the key.
   */
  codeHash?: string;
  /** Decorators of `--with`, whose `environment` vars add to the steps' own. */
  with?: Record<string, Record<string, unknown>>;
}): StepCache {
  const { store, host, info } = options;
  const flow = info.name;
  const steps = new Set(info.graph.order.filter((s) => options.withCached || info.graph.nodes[s]?.decorators.cached));
  const pending = new Map<string, string>();
  const hits = new Set<string>();
  let runId: string | undefined;
  const params = Object.keys(options.paramHashes)
    .sort()
    .map((k) => `${k}=${options.paramHashes[k]}`)
    .join("\n");
  const where = (step: string, parents: string[], foreach: ForeachFrame[]) => `${step}|${parents.join(",")}|${foreach.map((f) => f.index).join(".")}`;

  // The step's environment as the runtime builds it (a step's own vars win over --with's).
  const environmentOf = (step: string) => {
    const vars = { ...((options.with?.environment?.vars as object) ?? {}), ...((info.graph.nodes[step]!.decorators.environment?.vars as object) ?? {}) } as Record<string, unknown>;
    return Object.keys(vars)
      .sort()
      .map((k) => JSON.stringify([k, String(vars[k])]))
      .join(",");
  };
  const keyOf = async (step: string, parents: string[], foreach: ForeachFrame[]): Promise<string | undefined> => {
    const h = host.sha256();
    const enc = new TextEncoder();
    const code = options.codeHash ? `module ${options.codeHash}` : `source ${info.graph.nodes[step]!.source}`;
    h.update(enc.encode(`tsflow-cache-2\n${VERSION}\n${step}\n${code}\n${environmentOf(step)}\n${params}\n${foreach.map((f) => `${f.step}:${f.index}/${f.count}`).join(",")}\n`));
    for (const p of parents) {
      const [run, pstep, ptask] = p.split("/") as [string, string, string];
      const done = await getJson<DoneRecord>(store, doneKey(flow, run, pstep, ptask));
      if (!done) return undefined;
      const names = Object.keys(done.artifacts).sort();
      h.update(enc.encode(`${names.map((n) => `${n}=${contentHash(done.artifacts[n]!)}`).join(",")}\n`));
    }
    return h.digest();
  };

  return {
    hits,
    steps,
    async reuse(task) {
      runId ??= task.parents[0]?.split("/")[0];
      if (!steps.has(task.step)) return undefined;
      const key = await keyOf(task.step, task.parents, task.foreach);
      if (!key) return undefined;
      pending.set(where(task.step, task.parents, task.foreach), key);
      const bytes = await store.get(cacheKeyPath(flow, task.step, key));
      if (!bytes) return undefined;
      const pathspec = new TextDecoder().decode(bytes).trim();
      const [run, step, id] = pathspec.split("/");
      if (!run || step !== task.step || !id) return undefined;
      const done = await getJson<DoneRecord>(store, doneKey(flow, run, step, id)).catch(() => null);
      if (!done) return undefined;
      hits.add(pathspec);
      return { ...done, clonedFrom: pathspec };
    },
    async finish() {
      if (!runId || pending.size === 0) return;
      for (const step of steps) {
        const entries = await store.list(stepPrefix(flow, runId, step));
        for (const e of entries) {
          if (!e.endsWith("/")) continue;
          const id = e.slice(0, -1);
          const [file, done] = await Promise.all([getJson<TaskDoc>(store, taskKey(flow, runId, step, id)), getJson<DoneRecord>(store, doneKey(flow, runId, step, id))]);
          // A quick task's doc is in its done.json only (core/_tasks.ts).
          const doc = file ?? docOf(done);
          if (!doc || !done || done.clonedFrom) continue;
          const key = pending.get(where(step, doc.parents, doc.foreach));
          if (key) await store.put(cacheKeyPath(flow, step, key), new TextEncoder().encode(`${runId}/${step}/${id}`));
        }
      }
    },
  };
}
