/**
 * What the core adds on top of any datastore plugin: key validation and the optional
 * methods a plugin may leave out (unstorage fills driver gaps the same way).
 */
import type { Bytes, Datastore } from "./types.ts";
import { TsflowError } from "./errors.ts";

const SEGMENT = /^[A-Za-z0-9_.:@=+-]+$/;

/**
 * Keys come from flow names, run ids and pathspecs typed by users; refusing `..`, absolute
 * paths and odd characters here keeps every plugin from reading or writing outside its root.
 */
export function checkKey(key: string, allowEmpty = false): string {
  if (key === "" && allowEmpty) return key;
  const parts = key.replace(/\/$/, "").split("/");
  for (const part of parts) {
    if (!SEGMENT.test(part) || part === "." || part === "..") {
      throw new TsflowError("BadKey", `invalid datastore key '${key}': segment '${part}' is not allowed`);
    }
  }
  return key;
}

/** Every key below `prefix`, using the plugin's `listAll` when it has one. */
export async function listAll(store: Datastore, prefix: string): Promise<string[]> {
  if (store.listAll) return store.listAll(prefix);
  const out: string[] = [];
  const base = prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
  for (const entry of await store.list(base)) {
    if (entry.endsWith("/")) out.push(...(await listAll(store, base + entry)));
    else out.push(base + entry);
  }
  return out;
}

export async function deletePrefix(store: Datastore, prefix: string): Promise<void> {
  if (store.deletePrefix) return store.deletePrefix(prefix);
  const keys = await listAll(store, prefix);
  await mapLimit(keys, 16, (k) => store.delete(k));
}

/** Reads a value as a stream when the plugin can, else in one piece. */
export async function readStream(store: Datastore, key: string): Promise<AsyncIterable<Bytes> | null> {
  if (store.getStream) return store.getStream(key);
  const data = await store.get(key);
  if (data === null) return null;
  return (async function* () {
    yield data;
  })();
}

/** Runs `fn` over `items` with at most `limit` in flight; resolves in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export async function putJson(store: Datastore, key: string, value: unknown): Promise<void> {
  await store.put(key, encoder.encode(JSON.stringify(value)));
}

/** Reads a JSON document; `null` when missing; a clear error naming the key when damaged. */
export async function getJson<T>(store: Datastore, key: string): Promise<T | null> {
  const bytes = await store.get(key);
  if (bytes === null) return null;
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch (e) {
    throw new TsflowError("CorruptMetadata", `metadata '${key}' in datastore ${store.url} is damaged (${(e as Error).message}); delete the run or restore the file`);
  }
}
