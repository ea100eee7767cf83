/**
 * Turns any unstorage `Driver` into a tsflow `Datastore`, so the many unstorage drivers
 * (memory, Redis, Cloudflare KV, …) can hold a run. Binary values go through the drivers'
 * raw methods; drivers without them get `base64:` strings, the encoding unstorage itself uses.
 *
 * Only `put` through a driver whose single write is atomic keeps tsflow's atomicity promise:
 * check the driver before relying on it for real runs.
 */
import { Buffer } from "node:buffer";
import { checkKey } from "../../core/_datastore.ts";
import { TsflowError } from "../../core/errors.ts";
import type { Bytes, Datastore } from "../../core/types.ts";

/**
 * The part of unstorage's `Driver` this adapter calls, spelled out here rather than imported:
 * unstorage's own declarations pull in every driver's types (Azure, chokidar, Node's), which
 * would break `tsc` for a user whose project has neither those packages nor `@types/node`.
 * Any unstorage driver fits it.
 */
export interface UnstorageDriver {
  name?: string;
  hasItem(key: string, opts: any): unknown;
  getItem(key: string, opts?: any): unknown;
  getItemRaw?(key: string, opts: any): unknown;
  setItem?(key: string, value: string, opts: any): unknown;
  setItemRaw?(key: string, value: any, opts: any): unknown;
  removeItem?(key: string, opts: any): unknown;
  getKeys(base: string, opts: any): string[] | Promise<string[]>;
  dispose?(): unknown;
}

export const NAME = "unstorage";

export interface UnstorageOptions {
  /** The unstorage driver holding the bytes, e.g. `memoryDriver()` from `unstorage/drivers/memory`. */
  driver: UnstorageDriver;
  /** Datastore name in messages. Defaults to the driver's name. */
  name?: string;
  /** Shown in messages and handed to remote tasks. Defaults to `unstorage:<driver name>`. */
  url?: string;
}

/**
 * unstorage separates key segments with `:`, which tsflow keys may contain; `%` is never in a
 * valid tsflow key, so escaping `:` as `%3A` keeps the mapping one-to-one.
 */
const toDriver = (key: string) => key.replaceAll(":", "%3A").replaceAll("/", ":");
const fromDriver = (key: string) => key.replaceAll(":", "/").replaceAll("%3A", ":");

export default function unstorageDatastore(options: UnstorageOptions): Datastore {
  const { driver } = options;
  const name = options.name ?? driver.name ?? NAME;
  const url = options.url ?? `unstorage:${driver.name ?? "driver"}`;

  async function attempt<T>(action: string, key: string, fn: () => T | Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof TsflowError) throw e;
      throw new TsflowError("Datastore", `[${name}] cannot ${action} '${key}' in ${url}: ${(e as Error).message}`);
    }
  }

  /** Every key (as a tsflow key) below a directory prefix, `""` meaning all. */
  async function keysBelow(prefix: string): Promise<string[]> {
    const dir = checkKey(prefix, true).replace(/\/$/, "");
    const base = dir === "" ? "" : `${dir}/`;
    const keys = await attempt("list", prefix, () => driver.getKeys(dir === "" ? "" : toDriver(dir), {}));
    // Drivers may ignore `base` (the memory driver returns every key), so filter here.
    return keys.map(fromDriver).filter((k) => k.startsWith(base) && k.length > base.length);
  }

  async function read(key: string): Promise<Bytes | null> {
    const k = toDriver(checkKey(key));
    return attempt("read", key, async () => {
      const value = driver.getItemRaw ? await driver.getItemRaw(k, {}) : await driver.getItem(k, {});
      return toBytes(value);
    });
  }

  async function write(key: string, bytes: Bytes, immutable?: boolean): Promise<void> {
    const k = toDriver(checkKey(key));
    await attempt("write", key, async () => {
      if (immutable && (await driver.hasItem(k, {}))) return;
      if (driver.setItemRaw) await driver.setItemRaw(k, bytes, {});
      else if (driver.setItem) await driver.setItem(k, `base64:${Buffer.from(bytes).toString("base64")}`, {});
      else throw new Error("the driver is read-only");
    });
  }

  async function remove(key: string): Promise<void> {
    const k = toDriver(checkKey(key));
    await attempt("delete", key, () => driver.removeItem?.(k, {}));
  }

  return {
    name,
    url,

    get: read,

    put(key, data, options) {
      // Always a fresh buffer: the caller may reuse its own after `put` resolves.
      const chunks = data instanceof Uint8Array ? [data] : data;
      return write(key, concat(chunks), options?.immutable);
    },

    async putStream(key, data, options) {
      const chunks: Bytes[] = [];
      for await (const chunk of data) chunks.push(chunk);
      await write(key, concat(chunks), options?.immutable);
    },

    async getStream(key) {
      const bytes = await read(key);
      if (bytes === null) return null;
      return (async function* () {
        yield bytes;
      })();
    },

    async has(key) {
      const k = toDriver(checkKey(key));
      return attempt("check", key, async () => Boolean(await driver.hasItem(k, {})));
    },

    async size(key) {
      return (await read(key))?.byteLength ?? null;
    },

    async list(prefix) {
      const dir = checkKey(prefix, true).replace(/\/$/, "");
      const base = dir === "" ? "" : `${dir}/`;
      const children = new Set<string>();
      for (const key of await keysBelow(prefix)) {
        const rest = key.slice(base.length);
        const slash = rest.indexOf("/");
        children.add(slash === -1 ? rest : rest.slice(0, slash + 1));
      }
      return [...children].sort();
    },

    async listAll(prefix) {
      return (await keysBelow(prefix)).sort();
    },

    delete: remove,

    async deletePrefix(prefix) {
      // Key by key: some drivers' `clear(base)` ignores the base and empties everything.
      for (const key of await keysBelow(prefix)) await remove(key);
    },

    async close() {
      await driver.dispose?.();
    },
  };
}

/** Raw values come back as whatever the driver keeps: bytes, buffers or `base64:` strings. */
function toBytes(value: unknown): Bytes | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (typeof value === "string") {
    return value.startsWith("base64:") ? new Uint8Array(Buffer.from(value.slice(7), "base64")) : new TextEncoder().encode(value);
  }
  throw new Error(`the driver returned a ${typeof value}, not bytes`);
}

function concat(chunks: readonly Bytes[]): Bytes {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
