/** Invariants of a datastore on S3, read straight from the store (not through a faulty network). */
import { matchesBlobName } from "../_blobs.ts";
import { getJson } from "../../core/_datastore.ts";
import { blobKey, doneKey, runKey, runsPrefix, stepPrefix } from "../../core/_layout.ts";
import { loadArtifact } from "../../core/artifacts.ts";
import type { Datastore } from "../../core/types.ts";
import nodeHost from "../../plugins/host/node.ts";

export interface StoreCheck {
  blobs: number;
  doneTasks: number;
  runs: number;
  problems: string[];
}

/**
 * Every blob's bytes hash to its name; every done.json and run.json parses, and every artifact
 * or parameter it names is present and loads (loadArtifact verifies the hash again).
 */
export async function checkStore(store: Datastore): Promise<StoreCheck> {
  const host = nodeHost();
  const problems: string[] = [];
  const keys = await store.listAll!("");
  const blobs = keys.filter((k) => k.startsWith("blobs/"));
  for (const k of blobs) {
    const bytes = await store.get(k);
    const hash = k.slice(k.lastIndexOf("/") + 1);
    if (!bytes) problems.push(`blob ${k} is listed but cannot be read`);
    else if (!matchesBlobName(bytes, hash)) problems.push(`blob ${k} does not match its hash`);
  }
  let doneTasks = 0;
  let runs = 0;
  for (const k of keys) {
    const name = k.slice(k.lastIndexOf("/") + 1);
    if (name !== "done.json" && name !== "run.json") continue;
    let doc: any;
    try {
      doc = await getJson(store, k);
    } catch (e) {
      problems.push((e as Error).message);
      continue;
    }
    if (name === "done.json") doneTasks++;
    else runs++;
    for (const [artifact, ref] of Object.entries((name === "done.json" ? doc.artifacts : doc.parameters) ?? {}) as [string, any][]) {
      // An inline reference holds its value (no blob); loadArtifact checks it against the hash.
      if (ref.inline === undefined && !(await store.has(blobKey(ref.hash)))) problems.push(`${k} names artifact '${artifact}' whose blob ${blobKey(ref.hash)} is missing`);
      else await loadArtifact(store, host, ref, artifact, k).catch((e) => problems.push(`${k}: ${(e as Error).message}`));
    }
  }
  return { blobs: blobs.length, doneTasks, runs, problems };
}

/** The ids of a flow's runs with their recorded status. */
export async function runStatuses(store: Datastore, flow: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const dir of await store.list(runsPrefix(flow))) {
    const run = dir.replace(/\/$/, "");
    const record = await getJson<{ status: string }>(store, runKey(flow, run));
    if (record) out[run] = record.status;
  }
  return out;
}

/** The artifacts of the finished task of `step` in a run (the first one, for a linear step). */
export async function stepArtifactsOf(store: Datastore, flow: string, run: string, step: string): Promise<Record<string, unknown>> {
  const host = nodeHost();
  for (const dir of await store.list(stepPrefix(flow, run, step))) {
    const task = dir.replace(/\/$/, "");
    const done = await getJson<{ artifacts: Record<string, any> }>(store, doneKey(flow, run, step, task));
    if (!done) continue;
    const out: Record<string, unknown> = {};
    for (const [name, ref] of Object.entries(done.artifacts)) out[name] = await loadArtifact(store, host, ref, name);
    return out;
  }
  throw new Error(`run ${flow}/${run} has no finished ${step} task`);
}
