/** A small run written straight into a datastore through the layout helpers (no flow runs). */
import { putJson } from "../../core/_datastore.ts";
import { attemptKey, doneKey, runKey, taskKey } from "../../core/_layout.ts";
import { storeArtifact } from "../../core/artifacts.ts";
import type { ArtifactRef, Datastore } from "../../core/types.ts";
import nodeHost from "../../plugins/host/node.ts";

export const F = "SecFlow";
export const R = "1790000000000-sec0";

/** A datastore that records every key it is asked for. */
export function spy(inner: Datastore, seen: string[]): Datastore {
  const wrap = <K extends keyof Datastore>(name: K) => {
    const fn = inner[name] as unknown as ((key: string, ...rest: unknown[]) => unknown) | undefined;
    if (!fn) return undefined;
    return (key: string, ...rest: unknown[]) => {
      seen.push(key);
      return fn.call(inner, key, ...rest);
    };
  };
  return { ...inner, get: wrap("get")!, getSync: wrap("getSync"), list: wrap("list")!, listAll: wrap("listAll"), size: wrap("size"), getStream: wrap("getStream"), has: wrap("has")! } as Datastore;
}

/**
 * start → end, one task each; `end` holds `artifacts` (values, or refs already stored);
 * `extra` adds fields to run.json.
 */
export async function writeRun(store: Datastore, artifacts: Record<string, unknown> = { x: 1 }, options: { flow?: string; run?: string; refs?: Record<string, ArtifactRef>; stdout?: string } = {}): Promise<{ flow: string; run: string }> {
  const flow = options.flow ?? F;
  const run = options.run ?? R;
  const host = nodeHost();
  const refs: Record<string, ArtifactRef> = { ...options.refs };
  for (const [name, value] of Object.entries(artifacts)) refs[name] = await storeArtifact(store, host, name, value);
  await putJson(store, runKey(flow, run), {
    flow, runId: run, status: "succeeded", createdAt: 1_790_000_000_000, finishedAt: 1_790_000_001_000, tags: [], systemTags: [], parameterValues: {},
    graph: { order: ["start", "end"], steps: { start: { type: "linear", next: ["end"] }, end: { type: "end", next: [] } } },
  });
  for (const [step, id] of [["start", "1"], ["end", "2"]] as const) {
    await putJson(store, taskKey(flow, run, step, id), { step, taskId: id, parents: [], foreach: [], createdAt: 1_790_000_000_100 });
    await putJson(store, attemptKey(flow, run, step, id, 0, "start.json"), { attempt: 0, mode: "run", startedAt: 1_790_000_000_100, executor: "process" });
    await store.put(attemptKey(flow, run, step, id, 0, "stdout"), new TextEncoder().encode(options.stdout ?? `hello from ${step}\n`));
    await putJson(store, doneKey(flow, run, step, id), { ok: true, attempt: 0, artifacts: step === "end" ? refs : {}, next: step === "end" ? [] : ["end"], startedAt: 1_790_000_000_100, finishedAt: 1_790_000_000_500 });
  }
  return { flow, run };
}
