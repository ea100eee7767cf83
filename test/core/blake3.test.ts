/** The portable BLAKE3 (core/_blake3.ts) against the native one, and artifacts across hosts with and without it. */
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { blake3 } from "../../core/_blake3.ts";
import { loadArtifact, storeArtifact } from "../../core/artifacts.ts";
import memoryDatastore from "../../plugins/datastores/memory.ts";
import nodeHost from "../../plugins/host/node.ts";

const native = createRequire(import.meta.url)("@napi-rs/blake-hash") as { blake3(input: Uint8Array): Buffer };
const js = (data: Uint8Array, piece?: number) => {
  const h = blake3();
  if (!piece) h.update(data);
  else for (let at = 0; at < data.byteLength; at += piece) h.update(data.subarray(at, at + piece));
  return h.digest();
};

describe("BLAKE3 in JavaScript", () => {
  it("gives the published digests", () => {
    expect(js(new Uint8Array(0))).toBe("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    expect(js(new TextEncoder().encode("abc"))).toBe("6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
  });

  it("matches the native one at every block, chunk and tree boundary, however the input is cut", () => {
    for (const n of [1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 4097, 8193, 31744, 65537, 1048576 + 7]) {
      const data = new Uint8Array(n).map((_, i) => (i * 31) % 251);
      const want = native.blake3(data).toString("hex");
      expect(js(data), `${n} bytes`).toBe(want);
      expect(js(data, 7), `${n} bytes in pieces of 7`).toBe(want);
      expect(js(data, 1000), `${n} bytes in pieces of 1000`).toBe(want);
    }
  });
});

describe("artifacts addressed by BLAKE3", () => {
  it("are verified by a host without a native BLAKE3, which writes SHA-256 addresses itself", async () => {
    const store = memoryDatastore();
    const withNative = nodeHost();
    const { blake3: _, ...without } = nodeHost();
    const value = { big: new Float64Array(200_000).map((_, i) => i), text: "x".repeat(70_000) };
    const ref = await storeArtifact(store, withNative, "v", value);
    expect(ref.alg).toBe("blake3");
    expect(await loadArtifact(store, without, ref, "v")).toEqual(value);
    const old = await storeArtifact(store, without, "v", value);
    expect(old.alg).toBeUndefined();
    expect(old.hash).not.toBe(ref.hash);
    expect(await loadArtifact(store, withNative, old, "v")).toEqual(value);
    // Small values stay SHA-256 everywhere: SHA-256 costs nothing there, and hello never loads the native module.
    expect((await storeArtifact(store, withNative, "small", new Float64Array(1000))).alg).toBeUndefined();
    // A blob that does not match its BLAKE3 address is refused, by either host.
    await store.put(`blobs/${ref.hash.slice(0, 2)}/${ref.hash}`, new TextEncoder().encode("not it"));
    for (const host of [withNative, without]) await expect(loadArtifact(store, host, ref, "v")).rejects.toThrow(/artifact 'v' is corrupt/);
  });
});
