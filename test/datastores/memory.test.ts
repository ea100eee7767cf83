import type { Driver } from "unstorage";
import { expect, it } from "vitest";
import memoryDatastore from "../../plugins/datastores/memory.ts";
import unstorageDatastore from "../../plugins/datastores/unstorage.ts";
import { datastoreSuite } from "../../testing/datastores.ts";

datastoreSuite("memory", async () => ({ store: memoryDatastore() }), {
  additionalTests(store) {
    it("keeps keys with ':' apart from keys with '/' (unstorage's separator)", async () => {
      await store().put("colon/a:b", new Uint8Array([1]));
      await store().put("colon/a/b", new Uint8Array([2]));
      expect(await store().get("colon/a:b")).toEqual(new Uint8Array([1]));
      expect(await store().list("colon")).toEqual(["a/", "a:b"]);
    });
  },
});

/** A driver without raw methods, like many unstorage drivers: bytes travel as `base64:` strings. */
function stringOnlyDriver(): Driver {
  const data = new Map<string, string>();
  return {
    name: "string-only",
    hasItem: (key) => data.has(key),
    getItem: (key) => data.get(key) ?? null,
    setItem: (key, value) => void data.set(key, value),
    removeItem: (key) => void data.delete(key),
    getKeys: () => [...data.keys()],
  };
}

datastoreSuite("unstorage (string-only driver)", async () => ({ store: unstorageDatastore({ driver: stringOnlyDriver() }) }), { largeBytes: 8 << 20 });
