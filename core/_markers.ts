/**
 * Deferred, batched syncs of success markers (docs/reliability.md, "Power loss").
 *
 * A task's done.json must be durable before any task that depends on it starts, and before the
 * run's final record. Syncing each marker as its task ends cost one file and one directory sync
 * per task (0.15-0.35 s of a 1,000-task foreach's wall here); but most markers are not needed at
 * once: a foreach's bodies are needed only by the join, when the last of them ends. So a marker
 * is recorded as pending when its task ends, and synced when something needs it: then every
 * pending marker goes in one {@link Datastore.syncMany} (the fs store: one `syncfs` for a big
 * batch). One flush runs at a time; markers that become pending meanwhile, and requests made
 * meanwhile, wait for the next one (group commit). Markers also go early, without waiting for a
 * need, once enough of them are pending (see EAGER).
 */
import type { Datastore } from "./types.ts";

/** A marker written but not yet known durable. */
export interface PendingMarker {
  /** The task's pathspec (`run/step/id`): what dependents name as their parents. */
  pathspec: string;
  /** Its done.json. */
  key: string;
  /** Synced: the task counts. */
  synced(): void;
  /** Could not be synced: the task does not count (the caller removes the marker, fails the run). */
  failed(error: unknown): Promise<void>;
}

/**
 * This many pending markers are flushed, needed or not, as soon as no flush is running: those
 * flushes happen while other tasks run, and the one a dependent waits for is small. Without
 * it a 1,000-way foreach's join waited for one flush of all its inputs (one syncfs: 45-350 ms
 * here under load, against ~15 ms for the last few dozen). 64 is where the fs store switches to
 * one syncfs per batch (plugins/datastores/fs.ts): a 1,000-way foreach costs ~15 of them.
 */
const EAGER = 64;
/**
 * ...but at least 1/EAGER_SHARE of the markers synced so far in the run. With a fixed 64, a
 * 100,000-way foreach made ~1,400 flushes (one `sync -f` child each), and each fork of the
 * orchestrator costs more the bigger it is (its page tables are copied and its pages turn
 * copy-on-write: 1.1 ms of CPU at 100 MB resident, 3.7 ms at 380 MB, measured here), so the cost
 * per task grew with N. Growing with the run, the early flushes are ~16 up to 1,024 markers
 * (fanout1000 unchanged) and then one per 1/16 more: ~16·(1 + ln(N/1024)), ~90 at 100,000.
 * What a dependent may wait for grows to ~N/16 markers, one syncfs (which costs about the dirty
 * data on the filesystem, not the number of files), against minutes of run.
 */
const EAGER_SHARE = 16;

export class MarkerSyncer {
  private readonly pending = new Map<string, PendingMarker>();
  private readonly syncing = new Map<string, PendingMarker>();
  private flushing: Promise<void> | undefined;
  private again = false;
  /** Markers flushed so far (synced or failed): the early-flush threshold grows with them. */
  private flushedCount = 0;

  constructor(
    private readonly store: Datastore,
    /** Called after each flush, when the markers it synced (or failed) are settled. */
    private readonly flushed: () => void,
  ) {}

  /** A marker was written; it is synced by the next flush. */
  add(marker: PendingMarker): void {
    this.pending.set(marker.pathspec, marker);
    if (this.eager && !this.flushing) this.request();
  }

  /** Whether the task's marker is durable (or was never deferred here). */
  durable(pathspec: string): boolean {
    return !this.pending.has(pathspec) && !this.syncing.has(pathspec);
  }

  /** A flush is running: the run is not over while one is. */
  get busy(): boolean {
    return this.flushing !== undefined;
  }

  /** Enough markers are pending to flush them before anything needs them (see EAGER, EAGER_SHARE). */
  private get eager(): boolean {
    return this.pending.size >= Math.max(EAGER, Math.floor(this.flushedCount / EAGER_SHARE));
  }

  /** Something needs the pending markers: flush now, or right after the flush that is running. */
  request(): void {
    if (this.flushing) {
      this.again = true;
      return;
    }
    if (this.pending.size === 0) return;
    // The callbacks do not throw (they record and report); a bug there must not stop the run.
    this.flushing = this.flush().catch(() => {}).finally(() => {
      this.flushing = undefined;
      const again = this.again;
      this.again = false;
      if (again || this.eager) this.request();
      this.flushed();
    });
  }

  /** Every pending marker synced (or failed): before the run's final record. */
  async flushAll(): Promise<void> {
    while (this.flushing || this.pending.size > 0) {
      this.request();
      await this.flushing;
    }
  }

  private async flush(): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending.clear();
    this.flushedCount += batch.length;
    for (const m of batch) this.syncing.set(m.pathspec, m);
    let errors: unknown[] = [];
    try {
      await syncMany(this.store, batch.map((m) => m.key));
    } catch {
      // Which ones? A batch says only that one failed: each is tried again on its own, so the
      // run names the task at fault and the others count.
      errors = await Promise.all(batch.map((m) => this.store.sync!(m.key).then(() => undefined, (e: unknown) => e ?? new Error("sync failed"))));
    }
    await Promise.all(
      batch.map(async (m, i) => {
        const error = errors[i];
        try {
          if (error === undefined) m.synced();
          else await m.failed(error);
        } finally {
          this.syncing.delete(m.pathspec);
        }
      }),
    );
  }
}

function syncMany(store: Datastore, keys: string[]): Promise<unknown> {
  if (store.syncMany) return store.syncMany(keys);
  return Promise.all(keys.map((key) => store.sync!(key)));
}
