/**
 * What a run's status really is. `run.json` says `running` from the moment a run starts until
 * its orchestrator writes the final status; an orchestrator that is killed (SIGKILL, OOM, a
 * lost laptop lid) never writes it. The orchestrator rewrites the `heartbeat` key every 5 s,
 * so a `running` run whose heartbeat is older than {@link ABANDONED_AFTER_MS} is dead.
 * The client, the CLI and the viewer all decide through {@link effectiveStatus}.
 */
import { getJson, RECORD_MAX } from "./_datastore.ts";
import { heartbeatKey, runIdOfTimeLeaf, runKey, runsByTimePrefix, runsPrefix, runTimeKey } from "./_layout.ts";
import { currentTags } from "./_tags.ts";
import type { Datastore, Host } from "./types.ts";

/** A running run whose heartbeat is older than this is abandoned (12 missed beats). */
export const ABANDONED_AFTER_MS = 60_000;

/** The status stored in `run.json`, plus `abandoned` for a run whose orchestrator died. */
export type EffectiveStatus = "running" | "succeeded" | "failed" | "abandoned";

/**
 * The status of a run as users should see it. `heartbeatMs` is the time the heartbeat key
 * holds (or its modification time); `undefined` when there is none, in which case the run's
 * `createdAt` counts as the last sign of life. An abandoned run counts as failed
 * (`successful` false, resumable).
 */
export function effectiveStatus(
  run: { status?: string; createdAt?: number; orchestrator?: { hostname: string; pid: number }; stepFunctions?: unknown },
  heartbeatMs: number | undefined,
  now: number = Date.now(),
  /** Asks the host whether the orchestrator's process lives (see `Host.processAlive`). */
  alive?: (hostname: string, pid: number) => boolean | undefined,
): EffectiveStatus {
  const status = run.status;
  if (status === "succeeded" || status === "failed") return status;
  if (status !== "running") return "failed";
  // A production run has no orchestrator process and no heartbeat: its Step Functions execution
  // is the orchestrator, and its last state marks the run (`tsflow step-functions list-runs`).
  if (run.stepFunctions) return "running";
  // On the orchestrator's own machine a dead process is certain at once; elsewhere the
  // heartbeat decides. A reused pid only makes this fall back to the heartbeat.
  if (run.orchestrator && alive?.(run.orchestrator.hostname, run.orchestrator.pid) === false) return "abandoned";
  const last = heartbeatMs ?? run.createdAt;
  if (typeof last !== "number" || !Number.isFinite(last)) return "abandoned";
  return now - last > ABANDONED_AFTER_MS ? "abandoned" : "running";
}

/** Reads the heartbeat key of a run: the epoch milliseconds it holds, `undefined` when missing or unreadable. */
export async function readHeartbeat(store: Datastore, flow: string, runId: string): Promise<number | undefined> {
  const bytes = await store.get(heartbeatKey(flow, runId));
  if (bytes === null) return undefined;
  const ms = Number(new TextDecoder().decode(bytes).trim());
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** {@link effectiveStatus} of a stored run, reading `run.json` and its heartbeat; `null` when the run does not exist. */
export async function runStatus(store: Datastore, flow: string, runId: string, now: number = Date.now(), host?: Pick<Host, "processAlive">): Promise<EffectiveStatus | null> {
  return (await readRun(store, flow, runId, { now, host }))?.status ?? null;
}

/** The fields of `run.json` the status rule and the tag log need. */
export interface RunLike {
  status?: string;
  createdAt?: number;
  orchestrator?: { hostname: string; pid: number };
  tags?: string[];
  /** A production run (Step Functions): no orchestrator process, no heartbeat. */
  stepFunctions?: unknown;
}

/** A run as every reader shows it (client, CLI, viewer): `run.json`, its current tags, its real status. */
export interface StoredRun<D extends RunLike> {
  doc: D;
  /** `run.json`'s tags with the tag changes made since applied (core/_tags.ts). */
  tags: string[];
  /** The heartbeat's time, read only for a run that says `running`. */
  heartbeatMs: number | undefined;
  status: EffectiveStatus;
}

/**
 * The one reader of a run's record: the client and the viewer both go through it, so a dead
 * orchestrator reads as `abandoned` at once on its machine in both (`host.processAlive`).
 * `read` lets a caller read `run.json` its own way (the viewer's synchronous fast path).
 */
export async function readRun<D extends RunLike>(
  store: Datastore,
  flow: string,
  runId: string,
  options: { host?: Pick<Host, "processAlive">; now?: number; read?: (store: Datastore, key: string) => Promise<D | null> } = {},
): Promise<StoredRun<D> | null> {
  const key = runKey(flow, runId);
  // A planted 2 GB run.json is refused before it is read (RECORD_MAX), not parsed.
  const doc = options.read ? await options.read(store, key) : await getJson<D>(store, key, RECORD_MAX);
  if (!doc) return null;
  const [heartbeatMs, tags] = await Promise.all([doc.status === "running" ? readHeartbeat(store, flow, runId) : undefined, currentTags(store, flow, runId, doc.tags)]);
  const alive = options.host?.processAlive ? (h: string, pid: number) => options.host!.processAlive!(h, pid) : undefined;
  return { doc, tags, heartbeatMs, status: effectiveStatus(doc, heartbeatMs, options.now ?? Date.now(), alive) };
}

/** Run ids sort newest first: ids start with their creation time in ms (longer is newer). */
export const newestFirst = (a: string, b: string) => (a.length !== b.length ? b.length - a.length : a < b ? 1 : a > b ? -1 : 0);

/** The run ids of a flow (directories under its runs/ whose names pass `valid`), newest first; no run.json read. */
export async function listRunIds(store: Datastore, flow: string, valid: (name: string) => boolean): Promise<string[]> {
  const entries = await store.list(runsPrefix(flow));
  return entries
    .filter((e) => e.endsWith("/"))
    .map((e) => e.slice(0, -1))
    .filter(valid)
    .sort(newestFirst);
}

/**
 * Files a new run in its flow's time index (core/_layout.ts `runTimeKey`). Every writer of a new
 * run.json calls it first: an entry whose run.json never came (a crash, a refused create) is
 * passed over by readers, who read run.json anyway, while a run without an entry would be found
 * only after every indexed one. `deleteRun` removes it after run.json.
 */
export async function indexRun(store: Datastore, flow: string, runId: string, createdAt: number): Promise<void> {
  await store.put(runTimeKey(flow, runId, createdAt), new Uint8Array(0));
}

/**
 * The run ids of a flow, newest first, as the consumer asks for them: from the time index first,
 * a few small listings whatever the number of runs (the newest period, then the one before…),
 * then the runs the index lacks (stored before it existed, or by a writer that does not file
 * them) from the full listing of runs/, read only when the consumer gets that far. No run.json
 * is read: an entry is only a name, which readers check against the run itself.
 */
export async function* runIdsNewestFirst(store: Datastore, flow: string, valid: (name: string) => boolean): AsyncGenerator<string> {
  const seen = new Set<string>();
  const root = runsByTimePrefix(flow);
  const periods = async (prefix: string) =>
    (await store.list(prefix))
      .filter((e) => /^\d+\/$/.test(e))
      .sort(newestFirst)
      .map((e) => `${prefix}${e}`);
  for (const outer of await periods(root)) {
    for (const inner of await periods(outer)) {
      // Every leaf starts with its run's 13-digit time: reverse lexical order is newest first.
      const leaves = (await store.list(inner)).filter((e) => /^\d{13}-/.test(e)).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
      for (const leaf of leaves) {
        const id = runIdOfTimeLeaf(leaf);
        if (!valid(id) || seen.has(id)) continue;
        seen.add(id);
        yield id;
      }
    }
  }
  for (const id of await listRunIds(store, flow, valid)) if (!seen.has(id)) yield id;
}
