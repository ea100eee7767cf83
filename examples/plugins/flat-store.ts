/**
 * A third-party datastore in one file: every key is one file in a single flat directory, its
 * name the key percent-encoded. It implements only the raw operations; tsflow's core wraps it
 * (key checks, `listAll`/`deletePrefix`/streaming fallbacks, errors naming the store).
 *
 *   tsflow run examples/pets.ts --datastore ./examples/plugins/flat-store.ts:dir=/tmp/flat
 *
 * Worker processes re-open it from the same location, so it works with every local executor.
 * It passes `tsflow/testing`'s datastore suite (test/datastores/flat-store.test.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Bytes, Datastore, PutOptions } from "tsflow";

export interface FlatStoreOptions {
  /** The directory holding one file per key; created when missing. */
  dir: string;
}

const fileName = (key: string) => encodeURIComponent(key);
const keyOf = (name: string) => decodeURIComponent(name);
const TMP = ".tmp-";

export default function flatStore(options: FlatStoreOptions): Datastore {
  if (!options?.dir) throw new Error("flat-store needs a directory: --datastore ./flat-store.ts:dir=/path");
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  const path = (key: string) => join(dir, fileName(key));

  const readOrNull = async (key: string): Promise<Bytes | null> => {
    try {
      return new Uint8Array(await fsp.readFile(path(key)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  };

  const keys = async (): Promise<string[]> => (await fsp.readdir(dir)).filter((n) => !n.startsWith(TMP)).map(keyOf);

  return {
    name: "flat",
    url: `flat://${dir}`,
    get: readOrNull,
    async put(key: string, data: Bytes | readonly Bytes[], put?: PutOptions) {
      const file = path(key);
      if (put?.immutable && (await fsp.stat(file).catch(() => null))) return;
      // Write aside, then rename: a reader sees the old value or the new one, never half.
      const tmp = join(dir, `${TMP}${randomBytes(6).toString("hex")}`);
      const handle = await fsp.open(tmp, "w");
      try {
        for (const chunk of data instanceof Uint8Array ? [data] : data) await handle.write(chunk);
      } finally {
        await handle.close();
      }
      await fsp.rename(tmp, file);
    },
    async has(key: string) {
      return (await fsp.stat(path(key)).catch(() => null)) !== null;
    },
    async list(prefix: string) {
      const base = prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
      const children = new Set<string>();
      for (const key of await keys()) {
        if (!key.startsWith(base)) continue;
        const rest = key.slice(base.length);
        const slash = rest.indexOf("/");
        children.add(slash === -1 ? rest : rest.slice(0, slash + 1));
      }
      return [...children].sort();
    },
    async delete(key: string) {
      await fsp.rm(path(key), { force: true });
    },
  };
}
