/**
 * Lifecycle of stored runs: delete a run, and collect the blobs no run references any more.
 *
 * Blobs are shared (content addressing, resume clones by reference, `@cached` reuses), so a
 * blob is garbage only when no remaining run's run.json parameters, done.json or result.json
 * names it. gc is mark-and-sweep; what keeps it from deleting a blob a live run has put but not
 * yet referenced is the protocol of `_sweeps.ts` (a marker, a second mark of the live runs
 * before sweeping, and writers that put again what a sweep may have taken), not timing. The
 * grace period only spares recent unreferenced blobs (a put of an existing blob refreshes its
 * age where the store can); without a way to tell a blob's age (`modifiedAt`), every blob
 * counts as young: nothing unreferenced is deleted unless the grace period is 0.
 */
import { deletePrefix, getJson, listAll, mapLimit } from "./_datastore.ts";
import type { CardRef } from "./cards.ts";
import { doneKey, flowsPrefix, runKey, runPrefix, runsPrefix, runTimeKey, tagsPrefix } from "./_layout.ts";
import { ABANDONED_AFTER_MS, effectiveStatus, readHeartbeat } from "./_status.ts";
import { BEAT_MS, FENCE_MS, type SweepPhase, sweepMarkerKey, sweepPhases } from "./_sweeps.ts";
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
  /** Their keys. */
  staleCacheKeys: string[];
  /** Runs (`Flow/run`) whose run.json is damaged: marked from their other records, never deleted here. */
  damaged: string[];
}

const CARD_DOC = /\/\d+\/cards\/[^/]+\.json$/;
// gc and delete touch nothing but keys of these exact shapes (see _layout.ts): a datastore
// directory may hold other files (`--datastore .` in a project, a bucket's root), and those are
// not tsflow's to delete.
const HASH_KEY = /^blobs\/([0-9a-f]{2})\/(\1[0-9a-f]{62})$/;
const SEG = "[A-Za-z0-9_.:@=+-]+";
const CACHE_KEY = new RegExp(`^cache/(${SEG})/(${SEG})/[0-9a-f]{64}$`);
/** Keys of a run, relative to `flows/<Flow>/runs/<run>/`. */
// An attempt's files are one or two levels deep: start.json, result.json, logs (or their
// segments, stdout/<n>), cards/<id>.json. The run index: index.json and index/<n>.json.
const RUN_KEY = new RegExp(`^(run\\.json|heartbeat|index\\.json|index/\\d+\\.json|tasks/${SEG}/${SEG}/(task\\.json|done\\.json|\\d+/${SEG}(/${SEG})?))$`);
/** Tag changes, relative to `flows/<Flow>/tags/<run>/`. */
const TAG_CHANGE = /^\d{13}-[a-z0-9]{6}\.json$/;

/**
 * Refuses a location that holds no tsflow data: no `flows/<Flow>/runs/` (or `bytime/`), no
 * `blobs/<xx>/`, no code packages. gc and delete would otherwise read a project directory or a bucket's root as
 * an empty datastore whose files are all garbage.
 */
export async function assertDatastore(store: Datastore, command: string): Promise<"empty" | "datastore"> {
  const top = await store.list("");
  // Nothing at all (a datastore no run has used yet): nothing to touch, nothing to refuse.
  if (top.length === 0) return "empty";
  if (top.includes("flows/")) {
    // A run files its time-index entry (bytime/) before its run.json: a gc beside the first run
    // of a new datastore may see only that.
    for (const f of await store.list(flowsPrefix())) {
      if (!f.endsWith("/")) continue;
      const entries = await store.list(`${flowsPrefix()}${f}`);
      if (entries.includes("runs/") || entries.includes("bytime/")) return "datastore";
    }
  }
  if (top.includes("blobs/") && (await store.list("blobs/")).some((e) => /^[0-9a-f]{2}\/$/.test(e))) return "datastore";
  if (top.includes("packages/") && (await store.list("packages/")).some((e) => /^[0-9a-f]{64}$/.test(e))) return "datastore";
  // A datastore a gc has emptied still carries that gc's marker.
  if (top.includes("gc/") && (await sweepPhases(store)).size > 0) return "datastore";
  throw new TsflowError(
    "BadOption",
    `${store.url} is not a tsflow datastore (no flows/<Flow>/runs/, blobs/ or packages/ in it): ${command} touches nothing there; give --datastore the directory or s3:// location tsflow stores runs in`,
  );
}

/** Every blob hash a run references: parameters, and each task's done.json and attempt result.json. */
async function markRun(store: Datastore, flow: string, runId: string, into: Set<string>): Promise<void> {
  const add = (refs: Record<string, ArtifactRef> | undefined) => {
    // An inline reference holds its value itself: it marks no blob.
    for (const ref of Object.values(refs ?? {})) if (ref && typeof ref.hash === "string" && ref.inline === undefined) into.add(ref.hash);
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

/** gc's marker (see `_sweeps.ts`): announced before marking, rewritten while gc runs. */
async function announce(store: Datastore) {
  const id = `${Date.now()}-${Math.floor(Math.random() * 36 ** 6)
    .toString(36)
    .padStart(6, "0")}`;
  let phase: SweepPhase = "mark";
  let lastBeat = Date.now();
  // One write at a time, so a late beat never brings back the key of a phase already left.
  let writing: Promise<void> = Promise.resolve();
  const write = async () => {
    await store.put(sweepMarkerKey(id, phase), new TextEncoder().encode(String(Date.now())));
    lastBeat = Date.now();
  };
  const beat = () => (writing = writing.then(write, write));
  await beat();
  const timer = setInterval(() => void beat().catch(() => {}), BEAT_MS);
  return {
    /** Moves to `next`: the new marker is written before the old one goes. */
    async phase(next: SweepPhase) {
      const old = phase;
      phase = next;
      await beat();
      await store.delete(sweepMarkerKey(id, old));
    },
    /** Throws when the marker could not be rewritten lately: writers may count this gc as dead. */
    fence() {
      if (Date.now() - lastBeat > FENCE_MS) {
        throw new TsflowError("Datastore", `gc stopped: it could not update its marker in ${store.url} for ${Math.round((Date.now() - lastBeat) / 1000)} s (paused or cut off), so live runs may no longer count on it; nothing more was deleted, run it again`);
      }
    },
    async finish() {
      clearInterval(timer);
      await this.phase("done");
      // Markers of gcs long over (or long dead) only cost listings.
      for (const [other, p] of await sweepPhases(store)) {
        const at = Number(other.split("-")[0]);
        if (other !== id && Date.now() - at > 7 * 86_400_000) await store.delete(sweepMarkerKey(other, p));
      }
    },
    /** After a failure: a gc that stopped deletes nothing more, so it counts as done. */
    async abandon() {
      clearInterval(timer);
      if (phase !== "done") await this.phase("done").catch(() => {});
    },
  };
}

/** Mark-and-sweep over `blobs/`. Never deletes a referenced blob, one younger than the grace period, or one a live run has put. */
export async function collectGarbage(store: Datastore, options: GcOptions = {}): Promise<GcReport> {
  const now = options.now ?? Date.now();
  const graceMs = options.graceMs ?? 3_600_000;
  if ((await assertDatastore(store, "gc")) === "empty") {
    return { runs: 0, live: 0, blobs: 0, referenced: 0, deleted: [], deletedBytes: 0, young: 0, staleCacheEntries: 0, staleCacheKeys: [], damaged: [] };
  }
  const marker = options.dryRun ? undefined : await announce(store);
  try {
    // List blobs before marking: a blob written after this listing is not a candidate at all,
    // and one written before it is either referenced by a document marked below, young, or
    // put again by its writer (see `_sweeps.ts`).
    const blobKeys = (await listAll(store, "blobs/")).filter((k) => HASH_KEY.test(k));
    const runs = await allRuns(store);
    const marked = new Set<string>();
    /** Runs that may still write references: running (or abandoned: a paused orchestrator may wake up). */
    const writing = new Set<string>();
    let live = 0;
    const damaged: string[] = [];
    await mapLimit(runs, 4, async ({ flow, runId }) => {
      const doc = await getJson<{ status?: string; createdAt?: number }>(store, runKey(flow, runId)).catch(() => undefined);
      if (doc === undefined) damaged.push(`${flow}/${runId}`);
      if (doc === undefined || doc?.status === "running") writing.add(`${flow}/${runId}`);
      if (doc && effectiveStatus(doc, await readHeartbeat(store, flow, runId), now) === "running") live++;
      await markRun(store, flow, runId, marked);
    });
    const report: GcReport = { runs: runs.length, live, blobs: blobKeys.length, referenced: 0, deleted: [], deletedBytes: 0, young: 0, staleCacheEntries: 0, staleCacheKeys: [], damaged: damaged.sort() };
    let candidates: string[] = [];
    for (const key of blobKeys) {
      const hash = HASH_KEY.exec(key)![2]!;
      if (marked.has(hash)) report.referenced++;
      else candidates.push(key);
    }
    const old = await mapLimit(candidates, 16, async (key) => {
      if (graceMs <= 0) return true;
      const at = options.modifiedAt ? await options.modifiedAt(key) : null;
      return at !== null && now - at >= graceMs;
    });
    report.young = old.filter((o) => !o).length;
    candidates = candidates.filter((_, i) => old[i]);
    if (marker) {
      // Writers that published after the first mark are seen by this second one; those that
      // publish later find this gc in `sweep` (or `done`) and put their blobs again.
      await marker.phase("sweep");
      const known = new Set(runs.map((r) => `${r.flow}/${r.runId}`));
      const again = (await allRuns(store)).filter((r) => !known.has(`${r.flow}/${r.runId}`) || writing.has(`${r.flow}/${r.runId}`));
      await mapLimit(again, 4, ({ flow, runId }) => markRun(store, flow, runId, marked));
      candidates = candidates.filter((key) => !marked.has(HASH_KEY.exec(key)![2]!));
    }
    await mapLimit(candidates, 16, async (key) => {
      const size = store.size ? ((await store.size(key)) ?? 0) : 0;
      if (marker) {
        marker.fence();
        await store.delete(key);
      }
      report.deleted.push(key);
      report.deletedBytes += size;
    });
    report.deleted.sort();
    // `@cached` index entries whose task is gone (its run was deleted) would only ever miss.
    // Only keys of the index's own shape.
    for (const key of (await listAll(store, "cache/")).filter((k) => CACHE_KEY.test(k))) {
      const flow = CACHE_KEY.exec(key)![1]!;
      const bytes = await store.get(key);
      if (bytes === null || bytes.byteLength > 1024) continue;
      const [run, step, task, extra] = new TextDecoder().decode(bytes).trim().split("/");
      const valid = run && step && task && extra === undefined && [run, step, task].every((p) => new RegExp(`^${SEG}$`).test(p) && p !== "." && p !== "..");
      // No grace period here: an entry is written after its task's done.json, so one whose
      // task is missing can never become valid again.
      if (valid && (await store.has(doneKey(flow, run, step, task)))) continue;
      report.staleCacheEntries++;
      report.staleCacheKeys.push(key);
      if (marker) await store.delete(key);
    }
    await marker?.finish();
    return report;
  } catch (e) {
    await marker?.abandon();
    throw e;
  }
}

/** What {@link deleteRun} deleted (or, with `dryRun`, would delete), and what it left alone. */
export interface DeleteReport {
  deleted: string[];
  /** Keys below the run's prefix that tsflow does not write: never deleted. */
  kept: string[];
  /** The run's run.json could not be read: deleted all the same. */
  damaged: boolean;
}

/**
 * Deletes a run's metadata, logs and tag changes (its blobs go at the next gc): only keys of
 * tsflow's shapes. Refuses a running run; a run whose run.json is damaged is deleted unless its
 * heartbeat says an orchestrator still writes it.
 */
export async function deleteRun(store: Datastore, flow: string, runId: string, options: { dryRun?: boolean } = {}): Promise<DeleteReport> {
  await assertDatastore(store, "delete");
  let doc: { status?: string; createdAt?: number } | null = null;
  let damaged = false;
  try {
    doc = await getJson<{ status?: string; createdAt?: number }>(store, runKey(flow, runId));
  } catch {
    damaged = true;
  }
  if (!damaged && doc === null) throw new TsflowError("NotFound", `flow '${flow}' has no run '${runId}' in ${store.url}`);
  const heartbeat = await readHeartbeat(store, flow, runId);
  const live = damaged ? heartbeat !== undefined && Date.now() - heartbeat <= ABANDONED_AFTER_MS : effectiveStatus(doc!, heartbeat) === "running";
  if (live && damaged) throw new TsflowError("BadOption", `run ${flow}/${runId} has a damaged run.json and a heartbeat from the last 60 s: it may still be running; try again in a minute`);
  if (live) throw new TsflowError("BadOption", `run ${flow}/${runId} is still running; stop it first (or wait 60 s after its orchestrator died)`);
  const prefix = runPrefix(flow, runId);
  const tags = tagsPrefix(flow, runId);
  const [runKeys, tagKeys] = await Promise.all([listAll(store, prefix), listAll(store, tags)]);
  const ours = runKeys.filter((k) => RUN_KEY.test(k.slice(prefix.length)));
  const ourTags = tagKeys.filter((k) => TAG_CHANGE.test(k.slice(tags.length)));
  const kept = [...runKeys.filter((k) => !ours.includes(k)), ...tagKeys.filter((k) => !ourTags.includes(k))];
  // run.json goes first: a half-deleted run then no longer lists as a run. Its entry in the
  // flow's time index goes too (a leftover one is only passed over by readers).
  const timeKey = runTimeKey(flow, runId, typeof doc?.createdAt === "number" ? doc.createdAt : 0);
  const indexed = (/^\d{13}-/.test(runId) || typeof doc?.createdAt === "number") && (await store.has(timeKey)) ? [timeKey] : [];
  const deleted = [runKey(flow, runId), ...ours.filter((k) => k !== runKey(flow, runId)), ...indexed, ...ourTags];
  if (options.dryRun) return { deleted, kept, damaged };
  await store.delete(runKey(flow, runId));
  await mapLimit(deleted.slice(1), 16, (k) => store.delete(k));
  // With nothing else left, the now empty "directories" (and stray temporary files) go too.
  if (!kept.some((k) => k.startsWith(prefix))) await deletePrefix(store, prefix);
  if (!kept.some((k) => k.startsWith(tags))) await deletePrefix(store, tags);
  return { deleted, kept, damaged };
}
