/**
 * Lifecycle of stored runs: delete a run, and collect the blobs no run references any more.
 *
 * Blobs are shared (content addressing, resume clones by reference, `@cached` reuses), so a
 * blob is garbage only when no remaining run's run.json parameters, done.json or result.json
 * names it. gc is mark-and-sweep with two guards for runs that are still writing:
 * - a blob younger than the grace period is never deleted: a live task writes its blobs
 *   before the result.json that references them;
 * - the blobs of `running` runs are marked from whatever they have written so far.
 * Without a way to tell a blob's age (`modifiedAt`), every blob counts as young: nothing
 * unreferenced is deleted unless the grace period is 0.
 */
import { deletePrefix, getJson, listAll, mapLimit } from "./_datastore.ts";
import type { CardRef } from "./cards.ts";
import { doneKey, flowsPrefix, runKey, runPrefix, runsPrefix } from "./_layout.ts";
import { runStatus } from "./_status.ts";
import { TsflowError } from "./errors.ts";
import type { ArtifactRef, Datastore } from "./types.ts";

export interface GcOptions {
  /** Report what would be deleted, delete nothing. */
  dryRun?: boolean;
  /** Blobs younger than this are kept even when unreferenced. Default 1 hour. */
  graceMs?: number;
  /** When a blob was written (epoch ms), or `null` when unknown; the CLI reads file times. */
  modifiedAt?: (key: string) => Promise<number | null>;
  now?: number;
}

export interface GcReport {
  runs: number;
  /** Runs still running: marked, never touched. */
  live: number;
  blobs: number;
  referenced: number;
  /** Blob keys deleted (or, with dryRun, that would be). */
  deleted: string[];
  deletedBytes: number;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  young: number;
  /** `@cached` index entries pointing at deleted tasks (removed unless dryRun). */
  staleCacheEntries: number;
}

const CARD_DOC = /\/\d+\/cards\/[^/]+\.json$/;
const HASH_KEY = /^blobs\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/** Every blob hash a run references: parameters, and each task's done.json and attempt result.json. */
async function markRun(store: Datastore, flow: string, runId: string, into: Set<string>): Promise<void> {
  const add = (refs: Record<string, ArtifactRef> | undefined) => {
    for (const ref of Object.values(refs ?? {})) if (ref && typeof ref.hash === "string") into.add(ref.hash);
  };
  const prefix = runPrefix(flow, runId);
  const keys = await listAll(store, prefix);
  const docs = keys.filter((k) => k.endsWith("/run.json") || k.endsWith("/done.json") || k.endsWith("/result.json") || CARD_DOC.test(k));
  await mapLimit(docs, 16, async (key) => {
    const doc = await getJson<{ parameters?: Record<string, ArtifactRef>; artifacts?: Record<string, ArtifactRef>; cards?: CardRef[] }>(store, key).catch(() => null);
    if (!doc) return;
    add(doc.parameters);
    add(doc.artifacts);
    // A task's cards are blobs too: their data and rendered HTML.
    // Live card documents (`<attempt>/cards/<id>.json`) are references themselves.
    const cards = Array.isArray(doc.cards) ? doc.cards : CARD_DOC.test(key) ? [doc as unknown as CardRef] : [];
    for (const c of cards) for (const h of [c?.data, c?.html]) if (typeof h === "string") into.add(h);
  });
}

/** Every run of every flow in the store. */
async function allRuns(store: Datastore): Promise<{ flow: string; runId: string }[]> {
  const out: { flow: string; runId: string }[] = [];
  for (const f of await store.list(flowsPrefix())) {
    if (!f.endsWith("/")) continue;
    const flow = f.slice(0, -1);
    for (const r of await store.list(runsPrefix(flow))) if (r.endsWith("/")) out.push({ flow, runId: r.slice(0, -1) });
  }
  return out;
}

/** Mark-and-sweep over `blobs/`. Never deletes a referenced blob or one younger than the grace period. */
export async function collectGarbage(store: Datastore, options: GcOptions = {}): Promise<GcReport> {
  const now = options.now ?? Date.now();
  const graceMs = options.graceMs ?? 3_600_000;
  // List blobs before marking: a blob written after this listing is not a candidate at all,
  // and one written before it is either referenced by a document marked below or young.
  const blobKeys = (await listAll(store, "blobs/")).filter((k) => HASH_KEY.test(k));
  const runs = await allRuns(store);
  const marked = new Set<string>();
  let live = 0;
  await mapLimit(runs, 4, async ({ flow, runId }) => {
    if ((await runStatus(store, flow, runId, now)) === "running") live++;
    await markRun(store, flow, runId, marked);
  });
  const report: GcReport = { runs: runs.length, live, blobs: blobKeys.length, referenced: 0, deleted: [], deletedBytes: 0, young: 0, staleCacheEntries: 0 };
  const candidates: string[] = [];
  for (const key of blobKeys) {
    const hash = HASH_KEY.exec(key)![2]!;
    if (marked.has(hash)) report.referenced++;
    else candidates.push(key);
  }
  await mapLimit(candidates, 16, async (key) => {
    if (graceMs > 0) {
      const at = options.modifiedAt ? await options.modifiedAt(key) : null;
      if (at === null || now - at < graceMs) {
        report.young++;
        return;
      }
    }
    const size = store.size ? ((await store.size(key)) ?? 0) : 0;
    if (!options.dryRun) await store.delete(key);
    report.deleted.push(key);
    report.deletedBytes += size;
  });
  report.deleted.sort();
  // `@cached` index entries whose task is gone (its run was deleted) would only ever miss.
  for (const key of await listAll(store, "cache/")) {
    const target = new TextDecoder().decode((await store.get(key)) ?? new Uint8Array()).trim();
    const flow = key.split("/")[1];
    const [run, step, task] = target.split("/");
    const ok = flow && run && step && task && /^[A-Za-z0-9_.:@=+-]+$/.test(run + step + task) && (await store.has(doneKey(flow, run, step, task)));
    if (ok) continue;
    report.staleCacheEntries++;
    if (!options.dryRun) await store.delete(key);
  }
  return report;
}

/** Deletes a run's metadata and logs (its blobs go at the next gc). Refuses a running run. */
export async function deleteRun(store: Datastore, flow: string, runId: string): Promise<void> {
  const status = await runStatus(store, flow, runId);
  if (status === null) throw new TsflowError("NotFound", `flow '${flow}' has no run '${runId}' in ${store.url}`);
  if (status === "running") throw new TsflowError("BadOption", `run ${flow}/${runId} is still running; stop it first (or wait 60 s after its orchestrator died)`);
  // run.json goes first: a half-deleted run then no longer lists as a run.
  await store.delete(runKey(flow, runId));
  await deletePrefix(store, runPrefix(flow, runId));
}
