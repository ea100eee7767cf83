/**
 * The conformance suite every datastore passes, ours and third parties' (unstorage's
 * `test/drivers/utils.ts` is the model). A plugin's own test file calls `datastoreSuite` with a
 * factory and adds what only that plugin can be asked (`additionalTests`).
 *
 * Each test writes under its own key prefix, so the tests share one store and one server.
 */
import { createHash, randomBytes } from "node:crypto";
import { blobKey } from "../core/_layout.ts";
import { loadArtifact, storeArtifact } from "../core/artifacts.ts";
import nodeHost from "../plugins/host/node.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deletePrefix, listAll, mapLimit, readStream, wrapDatastore } from "../core/_datastore.ts";
import type { Bytes, Datastore } from "../core/types.ts";

export interface SuiteOptions {
  /** Tests this datastore cannot pass, by title, each group with the reason shown in the report. */
  skip?: { reason: string; tests: string[] }[];
  /** Plugin-specific tests, registered inside the suite's `describe` (the store is ready in them). */
  additionalTests?: (getStore: () => Datastore) => void;
  /** Size of the "large value" tests. Default 64 MiB. */
  largeBytes?: number;
}

export interface SuiteStore {
  store: Datastore;
  /** Runs after the store is closed: stop servers, remove directories. */
  cleanup?: () => Promise<void>;
}

/** Titles of the suite's tests, the names `skip` accepts. */
export const TESTS = {
  missing: "get of a missing key returns null",
  roundTrip: "put then get round-trips bytes, an empty value included",
  chunks: "put of several chunks stores their concatenation",
  overwrite: "put overwrites an existing value",
  has: "has tells present keys from missing ones",
  hasPrefix: "a prefix that holds keys is not itself a key",
  size: "size is the byte length, null when missing",
  sync: "sync of a key written earlier keeps its value; of a missing key it rejects naming the key",
  syncMany: "syncMany of keys written earlier (a few, or a hundred) keeps their values; a missing one rejects naming it",
  list: "list returns the immediate children sorted, deeper prefixes as name/",
  listDeep: "list shows a prefix whose keys all sit two or more levels down",
  listPaged: "list and listAll return more than 1,000 keys",
  listAll: "listAll returns every key below a prefix, recursively",
  delete: "delete removes a key, and a missing key is fine",
  deletePrefix: "deletePrefix removes everything below a prefix and nothing else",
  immutableRace: "20 concurrent writers of one immutable key all succeed",
  largePut: "a large value written in chunks reads back intact through getStream",
  largeStream: "a large value written with putStream reads back intact",
  atomic: "a reader polling during a large put sees null or the whole value",
  stage: "a staged write committed under a key reads back whole, and nothing else appears",
  stageExisting: "a staged write committed to an existing immutable key keeps that key's value, and nothing else appears",
  stageAbort: "an aborted staged write leaves no key",
  badKeys: "keys with .., absolute paths or empty segments are rejected",
  corrupt: "a read of a corrupted or missing artifact blob names the artifact",
} as const;

const MiB = 1024 * 1024;
/** What `checkKey` says; a plugin may wrap its error (code `Datastore`) but must keep the reason. */
const INVALID_KEY = /invalid datastore key/;
const sha256 = (data: Bytes | readonly Bytes[]) => {
  const h = createHash("sha256");
  for (const c of data instanceof Uint8Array ? [data] : data) h.update(c);
  return h.digest("hex");
};
const text = (s: string) => new TextEncoder().encode(s);

async function hashStream(stream: AsyncIterable<Bytes>): Promise<{ hash: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const chunk of stream) {
    h.update(chunk);
    size += chunk.byteLength;
  }
  return { hash: h.digest("hex"), size };
}

/** `n` bytes as 1 MiB random chunks (the last one shorter). */
function largeChunks(n: number): Bytes[] {
  const out: Bytes[] = [];
  for (let at = 0; at < n; at += MiB) out.push(new Uint8Array(randomBytes(Math.min(MiB, n - at))));
  return out;
}

export function datastoreSuite(name: string, make: () => Promise<SuiteStore>, options: SuiteOptions = {}): void {
  const large = options.largeBytes ?? 64 * MiB;
  const skipped = new Map<string, string>();
  const titles = new Set<string>(Object.values(TESTS));
  for (const group of options.skip ?? []) {
    for (const title of group.tests) {
      if (!titles.has(title)) throw new Error(`datastoreSuite(${name}): cannot skip unknown test '${title}'`);
      skipped.set(title, group.reason);
    }
  }

  describe(`datastore ${name}`, () => {
    let made: SuiteStore | undefined;
    const store = () => {
      if (!made) throw new Error(`datastore ${name} was not created`);
      return made.store;
    };
    // Every test gets its own directory, so tests never see each other's keys.
    let n = 0;
    const dir = () => `suite/t${++n}-${Date.now().toString(36)}`;

    beforeAll(async () => {
      made = await make();
      // The suite tests the store as tsflow uses it: wrapped once by the core, so a plugin
      // implements the raw operations and the core adds key checks and fallbacks.
      made.store = wrapDatastore(made.store);
    }, 60_000);
    afterAll(async () => {
      await made?.store.close?.();
      await made?.cleanup?.();
    }, 60_000);

    const test = (title: string, fn: () => Promise<void>, timeout?: number) => {
      const reason = skipped.get(title);
      if (reason !== undefined) it.skip(`${title} (skipped: ${reason})`, fn);
      else it(title, fn, timeout);
    };

    test(TESTS.missing, async () => {
      expect(await store().get(`${dir()}/nothing`)).toBeNull();
    });

    test(TESTS.roundTrip, async () => {
      const d = dir();
      const bytes = new Uint8Array(randomBytes(4096));
      await store().put(`${d}/bytes`, bytes);
      await store().put(`${d}/empty`, new Uint8Array(0));
      const back = await store().get(`${d}/bytes`);
      expect(back).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(back!).equals(bytes)).toBe(true);
      const empty = await store().get(`${d}/empty`);
      expect(empty).toBeInstanceOf(Uint8Array);
      expect(empty!.byteLength).toBe(0);
    });

    test(TESTS.chunks, async () => {
      const key = `${dir()}/chunks`;
      const chunks = [text("hello "), new Uint8Array(0), text("wide "), new Uint8Array(randomBytes(1000)), text("world")];
      await store().put(key, chunks);
      expect(sha256((await store().get(key))!)).toBe(sha256(chunks));
    });

    test(TESTS.overwrite, async () => {
      const key = `${dir()}/value`;
      await store().put(key, text("first, longer value"));
      await store().put(key, text("second"));
      expect(new TextDecoder().decode((await store().get(key))!)).toBe("second");
    });

    test(TESTS.has, async () => {
      const d = dir();
      await store().put(`${d}/here`, text("x"));
      expect(await store().has(`${d}/here`)).toBe(true);
      expect(await store().has(`${d}/gone`)).toBe(false);
    });

    test(TESTS.hasPrefix, async () => {
      const d = dir();
      await store().put(`${d}/sub/key`, text("x"));
      expect(await store().has(`${d}/sub`)).toBe(false);
      expect(await store().get(`${d}/sub`)).toBeNull();
    });

    test(TESTS.size, async () => {
      const s = store();
      if (!s.size) return;
      const d = dir();
      await s.put(`${d}/three`, text("abc"));
      await s.put(`${d}/zero`, new Uint8Array(0));
      expect(await s.size(`${d}/three`)).toBe(3);
      expect(await s.size(`${d}/zero`)).toBe(0);
      expect(await s.size(`${d}/gone`)).toBeNull();
    });

    test(TESTS.sync, async () => {
      const s = store();
      if (!s.sync) return;
      const d = dir();
      await s.put(`${d}/done.json`, text("{}"));
      await s.sync(`${d}/done.json`);
      expect(new TextDecoder().decode((await s.get(`${d}/done.json`))!)).toBe("{}");
      await expect(s.sync(`${d}/missing.json`)).rejects.toThrow(/missing\.json/);
    });

    test(TESTS.syncMany, async () => {
      const s = store();
      if (!s.syncMany) return;
      const d = dir();
      // A hundred: over the fs store's threshold for one flush of the filesystem.
      const keys = Array.from({ length: 100 }, (_, i) => `${d}/${i}/done.json`);
      for (const k of keys) await s.put(k, text(k));
      await s.syncMany(keys.slice(0, 2));
      await s.syncMany(keys);
      for (const k of [keys[0]!, keys[99]!]) expect(new TextDecoder().decode((await s.get(k))!)).toBe(k);
      await expect(s.syncMany([keys[0]!, `${d}/missing.json`])).rejects.toThrow(/missing\.json/);
      await expect(s.syncMany([...keys, `${d}/missing.json`])).rejects.toThrow(/missing\.json/);
    });

    test(TESTS.list, async () => {
      const d = dir();
      for (const k of ["z", "a", "b/c", "b/d", "b/e/f", "a.json"]) await store().put(`${d}/${k}`, text(k));
      const expected = ["a", "a.json", "b/", "z"];
      expect(await store().list(d)).toEqual(expected);
      expect(await store().list(`${d}/`)).toEqual(expected);
      expect(await store().list(`${d}/b`)).toEqual(["c", "d", "e/"]);
      expect(await store().list(`${d}/missing`)).toEqual([]);
      expect(await store().list(`${d}/a`)).toEqual([]);
    });

    test(TESTS.listDeep, async () => {
      // The shape of `runs/<flow>/<run>/<step>/<task>/…`: no key directly below `<run>`.
      const d = dir();
      await store().put(`${d}/run/step/task/done.json`, text("x"));
      await store().put(`${d}/top`, text("x"));
      expect(await store().list(d)).toEqual(["run/", "top"]);
      expect(await store().list(`${d}/run`)).toEqual(["step/"]);
      expect(await store().list("")).toContain("suite/");
    });

    test(
      TESTS.listPaged,
      async () => {
        const d = dir();
        const keys = Array.from({ length: 1100 }, (_, i) => `k${String(i).padStart(4, "0")}`);
        await mapLimit(keys, 32, (k) => store().put(`${d}/${k}`, text(k)));
        await store().put(`${d}/zz/deeper`, text("x"));
        const listed = await store().list(d);
        expect(listed.length).toBe(1101);
        expect(listed).toEqual([...keys, "zz/"]);
        const all = await listAll(store(), d);
        expect(all.length).toBe(1101);
        expect(all.at(-1)).toBe(`${d}/zz/deeper`);
      },
      60_000,
    );

    test(TESTS.listAll, async () => {
      const d = dir();
      const keys = ["a", "b/c", "b/d/e", "b/d/f/g"].map((k) => `${d}/${k}`);
      for (const k of keys) await store().put(k, text(k));
      expect((await listAll(store(), d)).sort()).toEqual(keys);
      expect((await listAll(store(), `${d}/b/`)).sort()).toEqual(keys.slice(1));
      expect(await listAll(store(), `${d}/missing`)).toEqual([]);
    });

    test(TESTS.delete, async () => {
      const key = `${dir()}/doomed`;
      await store().put(key, text("x"));
      await store().delete(key);
      expect(await store().get(key)).toBeNull();
      expect(await store().has(key)).toBe(false);
      await store().delete(key);
    });

    test(TESTS.deletePrefix, async () => {
      const d = dir();
      for (const k of ["run/a", "run/b/c", "run/b/d/e", "runner/x", "other"]) await store().put(`${d}/${k}`, text(k));
      await deletePrefix(store(), `${d}/run`);
      expect((await listAll(store(), d)).sort()).toEqual([`${d}/other`, `${d}/runner/x`]);
      expect(await store().list(d)).toEqual(["other", "runner/"]);
      await deletePrefix(store(), `${d}/never-there`);
    });

    test(
      TESTS.immutableRace,
      async () => {
        const key = `${dir()}/blob`;
        const value = new Uint8Array(randomBytes(256 * 1024));
        await Promise.all(Array.from({ length: 20 }, () => store().put(key, value, { immutable: true })));
        expect(sha256((await store().get(key))!)).toBe(sha256(value));
      },
      30_000,
    );

    test(
      TESTS.largePut,
      async () => {
        const key = `${dir()}/large`;
        const chunks = largeChunks(large);
        await store().put(key, chunks);
        if (store().size) expect(await store().size!(key)).toBe(large);
        const stream = await readStream(store(), key);
        expect(stream).not.toBeNull();
        expect(await hashStream(stream!)).toEqual({ hash: sha256(chunks), size: large });
      },
      120_000,
    );

    test(
      TESTS.largeStream,
      async () => {
        const s = store();
        if (!s.putStream) return;
        const key = `${dir()}/streamed`;
        const source = createHash("sha256");
        // Produced on demand: a store that buffers everything is not caught here, but one
        // that reads the source twice or out of order is.
        async function* produce() {
          for (let at = 0; at < large; at += 256 * 1024) {
            const chunk = new Uint8Array(randomBytes(Math.min(256 * 1024, large - at)));
            source.update(chunk);
            yield chunk;
          }
        }
        await s.putStream(key, produce());
        const back = await hashStream((await readStream(s, key))!);
        expect(back).toEqual({ hash: source.digest("hex"), size: large });
        expect(await readStream(s, `${key}-missing`)).toBeNull();
      },
      120_000,
    );

    test(
      TESTS.atomic,
      async () => {
        const key = `${dir()}/atomic`;
        const chunks = largeChunks(large);
        const whole = sha256(chunks);
        let done = false;
        const writing = store()
          .put(key, chunks)
          .finally(() => (done = true));
        const seen: string[] = [];
        while (!done) {
          const value = await store().get(key);
          seen.push(value === null ? "null" : value.byteLength === large && sha256(value) === whole ? "whole" : `partial ${value.byteLength} bytes`);
        }
        await writing;
        expect(seen.filter((s) => s !== "null" && s !== "whole")).toEqual([]);
        expect(sha256((await store().get(key))!)).toBe(whole);
      },
      120_000,
    );

    // Datastore.stage (optional): the core writes a big blob while it hashes it.
    test(
      TESTS.stage,
      async () => {
        const s = store();
        if (!s.stage) return;
        const d = dir();
        const chunks = [text("head"), ...largeChunks(large), text("tail")];
        const staged = await s.stage(`${d}/`, chunks);
        // A store may decline a speculative write (see Datastore.stage): nothing to test then.
        if (!staged) return;
        await staged.commit(`${d}/ab/blob`, { immutable: true });
        expect(sha256((await s.get(`${d}/ab/blob`))!)).toBe(sha256(chunks));
        expect(await listAll(s, d)).toEqual([`${d}/ab/blob`]);
        // A key outside the prefix it was staged under is refused, and leaves nothing.
        const astray = (await s.stage(`${d}/`, [text("x")]))!;
        await expect(astray.commit(`${dir()}/elsewhere`)).rejects.toThrow(/not below/);
        expect(await listAll(s, d)).toEqual([`${d}/ab/blob`]);
      },
      120_000,
    );

    test(
      TESTS.stageExisting,
      async () => {
        const s = store();
        if (!s.stage) return;
        const d = dir();
        const key = `${d}/cd/blob`;
        const first = largeChunks(2 * MiB);
        await s.put(key, first, { immutable: true });
        // Different bytes, to tell which value stays: an immutable key is never rewritten.
        const staged = await s.stage(`${d}/`, largeChunks(large));
        if (!staged) return;
        await staged.commit(key, { immutable: true });
        expect(sha256((await s.get(key))!)).toBe(sha256(first));
        expect(await listAll(s, d)).toEqual([key]);
      },
      120_000,
    );

    test(
      TESTS.stageAbort,
      async () => {
        const s = store();
        if (!s.stage) return;
        const d = dir();
        const staged = await s.stage(`${d}/`, largeChunks(large));
        if (!staged) return;
        await staged.abort();
        await staged.abort();
        expect(await listAll(s, d)).toEqual([]);
        expect(await s.list(d)).toEqual([]);
      },
      120_000,
    );

    test(TESTS.badKeys, async () => {
      const s = store();
      for (const bad of ["../escape", "a/../../b", "/etc/passwd", "a//b", "", "a/./b", "a\\b"]) {
        const calls: [string, () => Promise<unknown>][] = [
          ["get", () => s.get(bad)],
          ["put", () => s.put(bad, text("x"))],
          ["has", () => s.has(bad)],
          ["delete", () => s.delete(bad)],
        ];
        for (const [method, call] of calls) {
          // Bad keys reject the returned promise; they must not throw synchronously.
          let result: Promise<unknown> | undefined;
          expect(() => (result = call()), `${method}('${bad}') threw synchronously`).not.toThrow();
          await expect(result, `${method}('${bad}')`).rejects.toThrow(INVALID_KEY);
        }
      }
      for (const bad of ["../", "/abs", "a//b/"]) await expect(s.list(bad), `list('${bad}')`).rejects.toThrow(INVALID_KEY);
    });

    // ── Artifacts over this datastore ────────────────────────────────────────────────────
    it(TESTS.corrupt, async () => {
      const host = nodeHost();
      const ref = await storeArtifact(store(), host, "model", { weights: new Float64Array([1, 2, 3]), name: "m" });
      const key = blobKey(ref.hash);
      const bytes = (await store().get(key))!.slice();
      bytes[bytes.length - 1] ^= 0xff;
      await store().put(key, bytes);
      const err = await loadArtifact(store(), host, ref, "model", "R/train/7").then(
        () => undefined,
        (e: unknown) => e as { code?: string; message: string },
      );
      expect(err?.code).toBe("CorruptArtifact");
      expect(err?.message).toMatch(/artifact 'model' of R\/train\/7 is corrupt/);
      await store().delete(key);
      const missing = await loadArtifact(store(), host, ref, "model").catch((e: { message: string }) => e.message);
      expect(missing).toMatch(/artifact 'model' is missing/);
    });

    options.additionalTests?.(store);
  });
}
