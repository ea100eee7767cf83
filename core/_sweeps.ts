/**
 * The protocol that keeps `gc` from deleting a blob a live run needs (issue 19.2).
 *
 * A writer (a task storing its artifacts, an orchestrator storing parameters) puts blobs first
 * and publishes the references later (result.json, run.json). A gc that marks the writer's run
 * in between sees the blobs unreferenced; whatever their age (a put of an existing blob does not
 * write it again, and `--grace 0` ignores ages), it may delete them. No clock or grace period
 * closes that hole, so gc and writers follow a protocol instead:
 *
 * gc announces itself with a marker key `gc/<id>.<phase>` whose phase moves `mark` → `sweep` →
 * `done` (the new key is written before the old one is deleted). In `sweep`, before deleting
 * anything, it marks again every run that was running or did not exist when it first marked.
 * While it runs it rewrites its marker every few seconds, and it stops deleting once it has not
 * managed to for {@link FENCE_MS} (a paused gc must not wake up and delete from a stale mark).
 *
 * A writer lists the markers before its first put and again after publishing:
 * - a gc still in `mark` after the publication marks again after it: it will see the references;
 * - a gc in `sweep`, or one that reached `sweep` or `done` since the first listing, may have
 *   deleted what the writer put: the writer waits for it to finish (or to go silent for
 *   {@link STALE_MS}), then puts its blobs again (a put of an existing blob costs a check).
 * A writer's first listing must come before its first put, and its second after the
 * publication: then every gc that could delete its blobs is seen by one of the two rules.
 */
import type { Datastore } from "./types.ts";

export const SWEEPS_PREFIX = "gc/";
export type SweepPhase = "mark" | "sweep" | "done";
const ORDER: Record<SweepPhase, number> = { mark: 0, sweep: 1, done: 2 };
const MARKER = /^([0-9]+-[a-z0-9]+)\.(mark|sweep|done)$/;

/** How often a gc rewrites its marker. */
export const BEAT_MS = 5_000;
/** A gc that could not rewrite its marker for this long deletes nothing more. */
export const FENCE_MS = 30_000;
/** A writer stops waiting for a sweeping gc whose marker has not changed for this long. */
export const STALE_MS = 60_000;

export const sweepMarkerKey = (id: string, phase: SweepPhase) => `${SWEEPS_PREFIX}${id}.${phase}`;

/** The phase of every gc with a marker: the furthest one when a transition is half done. */
export async function sweepPhases(store: Datastore): Promise<Map<string, SweepPhase>> {
  const out = new Map<string, SweepPhase>();
  for (const name of await store.list(SWEEPS_PREFIX)) {
    const m = MARKER.exec(name);
    if (!m) continue;
    const phase = m[2] as SweepPhase;
    const seen = out.get(m[1]!);
    if (!seen || ORDER[phase] > ORDER[seen]) out.set(m[1]!, phase);
  }
  return out;
}

/** The writer's side: call before the first put; `swept()` after publishing the references. */
export interface SweepWatch {
  /**
   * Whether a gc may have deleted blobs put since the watch began. Waits first for any gc
   * still sweeping; when it answers true, put the blobs again.
   */
  swept(): Promise<boolean>;
  /**
   * A watch for the writer's next puts that begins with the listing `swept()` just made (call
   * it after `swept()` answered false): a worker running task after task lists once per task,
   * not twice. A listing taken earlier than needed is still before the first put, which is all
   * the protocol asks; it can only make `swept()` answer true more often, never less.
   */
  continued(): SweepWatch;
}

export async function watchSweeps(store: Datastore, sleep: (ms: number) => Promise<void> = defaultSleep): Promise<SweepWatch> {
  return watchFrom(store, await sweepPhases(store), sleep);
}

function watchFrom(store: Datastore, before: Map<string, SweepPhase>, sleep: (ms: number) => Promise<void>): SweepWatch {
  let last: Map<string, SweepPhase> | undefined;
  return {
    continued() {
      if (!last) throw new Error("SweepWatch.continued() needs a swept() that answered false first");
      return watchFrom(store, last, sleep);
    },
    async swept() {
      let after = await sweepPhases(store);
      let danger = false;
      for (const [id, phase] of after) if (phase !== "mark" && before.get(id) !== "done") danger = true;
      // A marker that vanished in between (old markers are cleaned up) may have swept too.
      for (const [id, phase] of before) if (phase !== "done" && !after.has(id)) danger = true;
      if (!danger) {
        last = after;
        return false;
      }
      // Wait for the sweeping ones: a gc that marked before the publication may still delete.
      const beats = new Map<string, { value: string; since: number }>();
      let pause = 100;
      for (;;) {
        const sweeping = [...after].filter(([, phase]) => phase === "sweep").map(([id]) => id);
        const live: string[] = [];
        for (const id of sweeping) {
          const bytes = await store.get(sweepMarkerKey(id, "sweep"));
          if (bytes === null) continue; // it moved on to `done` since the listing
          const value = new TextDecoder().decode(bytes);
          const seen = beats.get(id);
          if (!seen || seen.value !== value) beats.set(id, { value, since: Date.now() });
          else if (Date.now() - seen.since > STALE_MS) continue;
          live.push(id);
        }
        if (live.length === 0) return true;
        await sleep(pause);
        pause = Math.min(2_000, pause * 2);
        after = await sweepPhases(store);
      }
    },
  };
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
