/**
 * What the core adds on top of any datastore plugin: key validation and the optional
 * methods a plugin may leave out (unstorage fills driver gaps the same way).
 */
import type { Bytes, Datastore, Logger, PutOptions, ReadOptions, StagedWrite } from "./types.ts";
import { isTsflowError, TsflowError } from "./errors.ts";

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

/**
 * The largest record (run.json, done.json…) what displays a datastore reads: the runtime writes
 * a few KB; a bigger one is damage or a plant, and parsing it would exhaust memory.
 */
export const RECORD_MAX = 16 << 20;

/**
 * A key's bytes, refusing to load more than `max` (`TooLarge`): fs and s3 look at the size
 * before reading (a record or blob may be far bigger than whatever document points at it);
 * for other stores the length read is checked. `null` when missing.
 */
export async function getCapped(store: Datastore, key: string, max: number, what: string): Promise<Bytes | null> {
  let bytes: Bytes | null;
  try {
    bytes = await store.get(key, { maxBytes: max });
  } catch (e) {
    // Say what it is (artifact 'x' of …), not only which key.
    const size = (e as { size?: unknown }).size;
    if (isTsflowError(e) && e.code === "TooLarge" && typeof size === "number") throw tooLarge(what, size, max);
    throw e;
  }
  if (bytes && bytes.byteLength > max) throw tooLarge(what, bytes.byteLength, max);
  return bytes;
}

/** The error of a value over a read limit; `size` is kept on it for callers that rename it. */
export function tooLarge(what: string, size: number, max: number): TsflowError {
  return Object.assign(new TsflowError("TooLarge", `${what} is too large to load here (${size} bytes, limit ${max})`), { size });
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

export async function putJson(store: Datastore, key: string, value: unknown, options?: PutOptions): Promise<void> {
  await store.put(key, encoder.encode(JSON.stringify(value)), options);
}

/** The refusal of a `put` with `ifAbsent` on a key that exists. */
export function keyExists(key: string, url: string): TsflowError {
  return new TsflowError("KeyExists", `'${key}' already exists in ${url}`);
}

export const isKeyExists = (e: unknown): boolean => isTsflowError(e) && (e as TsflowError).code === "KeyExists";

/**
 * Reads a JSON document; `null` when missing; a clear error naming the key when damaged. With
 * `max`, a document bigger than `max` bytes is refused before it is read (`TooLarge`): what
 * displays records (the viewer) must not be made to load a planted 2 GB `run.json`.
 */
export async function getJson<T>(store: Datastore, key: string, max?: number): Promise<T | null> {
  const bytes = max === undefined ? await store.get(key) : await getCapped(store, key, max, `metadata '${key}' in datastore ${store.url}`);
  if (bytes === null) return null;
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch (e) {
    throw new TsflowError("CorruptMetadata", `metadata '${key}' in datastore ${store.url} is damaged (${(e as Error).message}); delete the run or restore the file`);
  }
}

const WRAPPED = Symbol.for("tsflow.datastore.wrapped");

/** Where a wrapped store reports slow operations, and what counts as slow. */
const watchers = new WeakMap<Datastore, { logger: Logger; slowMs: number }>();
const SLOW_MS = 10_000;
/** One warning per store in this window; the next one counts what was not reported. */
const WARN_EVERY_MS = 30_000;

/**
 * Gives a wrapped store a logger (the run's: consola in the CLI): an operation slower than
 * `slowMs` (default 10 s: throttling, retries, a saturated link) is reported, at most once
 * every 30 s per store.
 */
export function watchDatastore(store: Datastore, logger: Logger | undefined, options: { slowMs?: number } = {}): void {
  if (!logger) watchers.delete(store);
  else watchers.set(store, { logger, slowMs: options.slowMs ?? SLOW_MS });
}

/**
 * What the core puts around every datastore, once (as unstorage's `createStorage` wraps a
 * driver): keys are checked before the plugin sees them, `get` of a missing key is `null`
 * whatever the plugin returned, optional methods a plugin lacks get a fallback, and every
 * error names the store, the operation and the key. Plugin authors implement the raw
 * operations only. `location` is how another process re-opens the store (see
 * {@link Datastore.location}); a store without one lives in this process only.
 */
export function wrapDatastore(raw: Datastore, location: string | undefined = raw.location): Datastore {
  if ((raw as unknown as Record<symbol, unknown>)[WRAPPED] && location === raw.location) return raw;
  const name = raw.name || "datastore";
  const fail = (action: string, key: string, e: unknown): never => {
    if (isTsflowError(e)) throw e;
    throw new TsflowError("Datastore", `[${name}] cannot ${action} '${key}' in ${raw.url}: ${(e as Error)?.message ?? String(e)}`);
  };
  let lastWarning = 0;
  let unreported = 0;
  const slow = (action: string, key: string, ms: number) => {
    const watch = watchers.get(store);
    if (!watch || ms < watch.slowMs) return;
    const now = Date.now();
    if (now - lastWarning < WARN_EVERY_MS) {
      unreported++;
      return;
    }
    const more = unreported ? ` (and ${unreported} more slow operation${unreported === 1 ? "" : "s"} since the last warning)` : "";
    lastWarning = now;
    unreported = 0;
    watch.logger.warn(`[${name}] slow storage: ${action} '${key}' in ${raw.url} took ${(ms / 1000).toFixed(1)} s${more}`);
  };
  const guard = async <T>(action: string, key: string, allowEmpty: boolean, fn: () => T | Promise<T>): Promise<T> => {
    checkKey(key, allowEmpty);
    const t0 = Date.now();
    try {
      return await fn();
    } catch (e) {
      return fail(action, key, e);
    } finally {
      slow(action, key, Date.now() - t0);
    }
  };
  const store: Datastore = {
    name,
    url: raw.url,
    ...(location !== undefined ? { location } : {}),
    ...(raw.root !== undefined ? { root: raw.root } : {}),
    ...(raw.compress ? { compress: true } : {}),
    ...(raw.durableWrites ? { durableWrites: true } : {}),
    get: (key, options?: ReadOptions) => guard("read", key, false, async () => (await raw.get(key, options)) ?? null),
    put: (key, data, options?: PutOptions) =>
      guard("write", key, false, async () => {
        // A store that cannot create atomically: check first (a race window remains; see PutOptions).
        if (options?.ifAbsent && !raw.atomicIfAbsent && (await raw.has(key))) throw keyExists(key, raw.url);
        return raw.put(key, data, options);
      }),
    has: (key) => guard("check", key, false, async () => Boolean(await raw.has(key))),
    list: (prefix) => guard("list", prefix, true, () => raw.list(prefix)),
    delete: (key) => guard("delete", key, false, () => raw.delete(key)),
    listAll: (prefix) => guard("list", prefix, true, () => listAll(raw, prefix)),
    deletePrefix: (prefix) => guard("delete", prefix, true, () => deletePrefix(raw, prefix)),
    getStream: (key) => guard("read", key, false, () => readStream(raw, key)),
    close: async () => {
      try {
        await raw.close?.();
      } catch (e) {
        fail("close", "", e);
      }
    },
  };
  // Optional capabilities stay absent when the plugin lacks them: the core chooses its strategy
  // by their presence (a synchronous read, a cheap size, a streamed upload).
  if (raw.getSync) {
    const getSync = raw.getSync.bind(raw);
    store.getSync = (key, options?: ReadOptions) => {
      checkKey(key);
      try {
        return getSync(key, options) ?? null;
      } catch (e) {
        return fail("read", key, e);
      }
    };
  }
  if (raw.size) {
    const size = raw.size.bind(raw);
    store.size = (key) => guard("read the size of", key, false, async () => (await size(key)) ?? null);
  }
  if (raw.sync) {
    const sync = raw.sync.bind(raw);
    store.sync = (key) => guard("sync", key, false, () => sync(key));
    const many = raw.syncMany?.bind(raw);
    store.syncMany = async (keys) => {
      for (const key of keys) checkKey(key);
      if (!many) {
        await Promise.all(keys.map((key) => store.sync!(key)));
        return;
      }
      await guard("sync", keys[0] ?? "", true, () => many(keys));
    };
  }
  if (raw.putStream) {
    const putStream = raw.putStream.bind(raw);
    store.putStream = (key, data, options) => guard("write", key, false, () => putStream(key, data, options));
  }
  if (raw.stage) {
    const stage = raw.stage.bind(raw);
    store.stage = (prefix, data) =>
      guard("write", prefix, true, async (): Promise<StagedWrite | undefined> => {
        const staged = await stage(prefix, data);
        if (!staged) return undefined;
        const abort = () => Promise.resolve(staged.abort()).catch(() => {});
        return {
          commit: (key, options) =>
            guard("write", key, false, async () => {
              if (!key.startsWith(prefix)) {
                await abort();
                throw new TsflowError("BadKey", `key '${key}' of a staged write is not below '${prefix}', where it was staged`);
              }
              // Not atomic on this store: check first, as put does (see PutOptions.ifAbsent).
              if (options?.ifAbsent && !raw.atomicIfAbsent && (await raw.has(key))) {
                await abort();
                throw keyExists(key, raw.url);
              }
              return staged.commit(key, options);
            }),
          abort,
        };
      });
  }
  Object.defineProperty(store, WRAPPED, { value: true });
  return store;
}
