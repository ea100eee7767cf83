/**
 * What a run's status really is. `run.json` says `running` from the moment a run starts until
 * its orchestrator writes the final status; an orchestrator that is killed (SIGKILL, OOM, a
 * lost laptop lid) never writes it. The orchestrator rewrites the `heartbeat` key every 5 s,
 * so a `running` run whose heartbeat is older than {@link ABANDONED_AFTER_MS} is dead.
 * The client, the CLI and the viewer all decide through {@link effectiveStatus}.
 */
import { getJson } from "./_datastore.ts";
import { heartbeatKey, runKey } from "./_layout.ts";
import type { Datastore } from "./types.ts";

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
  run: { status?: string; createdAt?: number; orchestrator?: { hostname: string; pid: number } },
  heartbeatMs: number | undefined,
  now: number = Date.now(),
  /** Asks the host whether the orchestrator's process lives (see `Host.processAlive`). */
  alive?: (hostname: string, pid: number) => boolean | undefined,
): EffectiveStatus {
  const status = run.status;
  if (status === "succeeded" || status === "failed") return status;
  if (status !== "running") return "failed";
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
export async function runStatus(store: Datastore, flow: string, runId: string, now: number = Date.now()): Promise<EffectiveStatus | null> {
  const run = await getJson<{ status?: string; createdAt?: number }>(store, runKey(flow, runId));
  if (!run) return null;
  return effectiveStatus(run, await readHeartbeat(store, flow, runId), now);
}
