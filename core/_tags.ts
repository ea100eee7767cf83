/**
 * A run's user tags (issue 19.3). `run.json` holds the tags the run started with and is written
 * only by its orchestrator (at the start and once more with the final status), so a tag change
 * never rewrites it: that final write would lose a tag added meanwhile, and a tag write based on
 * an older run.json would bring back `running` after the run ended (an "abandoned" success).
 *
 * Every change is its own immutable document, `flows/<Flow>/tags/<run>/<time>-<rand>.json`
 * (`{ add, remove }`): writers never read-modify-write, so concurrent changes all survive on any
 * datastore, with no locks or conditional writes. A run's tags are its run.json tags with the
 * changes applied in key order (time, then a random tie-break).
 */
import { getJson, isKeyExists, putJson } from "./_datastore.ts";
import { tagChangeKey, tagsPrefix } from "./_layout.ts";
import { TsflowError } from "./errors.ts";
import type { Datastore } from "./types.ts";

/** One change of a run's tags. */
export interface TagChange {
  add?: string[];
  remove?: string[];
  /** Epoch ms of the change, by the writer's clock. */
  at?: number;
}

const CHANGE = /^\d{13}-[a-z0-9]{6}\.json$/;

/** The tag rule of `tsflow run --tag` and `tsflow tag`: 1 to 256 characters on one line. */
export function checkTag(tag: string): string {
  if (typeof tag !== "string" || tag.length === 0 || tag.length > 256 || /[\n\r]/.test(tag)) {
    throw new TsflowError("BadOption", `tag '${String(tag).slice(0, 40)}' is invalid: tags are 1 to 256 characters on one line`);
  }
  return tag;
}

/** Records a change of a run's tags. Concurrent changes (another `tsflow tag`, the run ending) all survive. */
export async function changeTags(store: Datastore, flow: string, runId: string, change: { add?: string[]; remove?: string[] }): Promise<void> {
  for (const t of [...(change.add ?? []), ...(change.remove ?? [])]) checkTag(t);
  // Create-only: two tag commands on two machines in one millisecond with the same draw must
  // not overwrite each other's change (a lost tag); the loser draws again.
  for (let tries = 1; ; tries++) {
    const id = `${String(Date.now()).padStart(13, "0")}-${Math.floor(Math.random() * 36 ** 6)
      .toString(36)
      .padStart(6, "0")}`;
    try {
      await putJson(store, tagChangeKey(flow, runId, id), { add: change.add ?? [], remove: change.remove ?? [], at: Date.now() } satisfies TagChange, { ifAbsent: true });
      return;
    } catch (e) {
      if (!isKeyExists(e) || tries >= 5) throw e;
    }
  }
}

/** Applies `changes` (in order) to the tags a run started with. */
export function applyTagChanges(initial: readonly string[], changes: readonly TagChange[]): string[] {
  const tags = new Set(initial.filter((t) => typeof t === "string"));
  for (const c of changes) {
    for (const t of Array.isArray(c.remove) ? c.remove : []) tags.delete(t);
    for (const t of Array.isArray(c.add) ? c.add : []) if (typeof t === "string") tags.add(t);
  }
  return [...tags];
}

/** The changes recorded for one run, in order; a damaged change is skipped (tags are not worth failing a listing for). */
export async function readTagChanges(store: Datastore, flow: string, runId: string): Promise<TagChange[]> {
  const names = (await store.list(tagsPrefix(flow, runId))).filter((n) => CHANGE.test(n)).sort();
  const docs = await Promise.all(names.map((n) => getJson<TagChange>(store, `${tagsPrefix(flow, runId)}${n}`).catch(() => null)));
  return docs.filter((d): d is TagChange => d !== null && typeof d === "object");
}

/** A run's current user tags: run.json's `tags` with every recorded change applied. */
export async function currentTags(store: Datastore, flow: string, runId: string, initial: readonly string[] | undefined): Promise<string[]> {
  return applyTagChanges(Array.isArray(initial) ? initial : [], await readTagChanges(store, flow, runId));
}
