/** Compression only where it pays: compressible values on stores that ask for it, never random bytes. */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { blobKey } from "../../core/_layout.ts";
import { contentHash, loadArtifact, loadArtifactSync, refOf, storeArtifact } from "../../core/artifacts.ts";
import type { Datastore } from "../../core/types.ts";
import memoryDatastore from "../../plugins/datastores/memory.ts";
import nodeHost from "../../plugins/host/node.ts";

const host = nodeHost();
const records = Array.from({ length: 20_000 }, (_, i) => ({ id: i, name: `user-${i % 100}`, score: i % 7 }));

function compressing(): Datastore {
  return Object.assign(memoryDatastore({}), { compress: true });
}

describe("artifact compression", () => {
  it("gzips a compressible value on a store that asks for it, and reads it back", async () => {
    const store = compressing();
    const ref = await storeArtifact(store, host, "records", records);
    expect(ref.gzipped).toBeGreaterThan(0);
    expect(ref.gzipped!).toBeLessThan(ref.size / 3);
    expect((await store.get(blobKey(ref.hash)))!.byteLength).toBe(ref.gzipped);
    expect(await loadArtifact(store, host, ref, "records")).toEqual(records);
    // The content hash is the one an unchanged, re-serialized value gets (no rewrite downstream).
    expect(refOf(host, "records", records).ref.hash).toBe(contentHash(ref));
  });

  it("never gzips incompressible binary, small values, or on a local disk", async () => {
    const store = compressing();
    const noise = new Uint8Array(randomBytes(1024 * 1024));
    expect((await storeArtifact(store, host, "noise", noise)).gzipped).toBeUndefined();
    expect((await storeArtifact(store, host, "small", { a: "x".repeat(1000) })).gzipped).toBeUndefined();
    const local = memoryDatastore({});
    expect((await storeArtifact(local, host, "records", records)).gzipped).toBeUndefined();
  });

  it("verifies the stored bytes before inflating: a corrupt gzipped blob names the artifact", async () => {
    const store = compressing();
    const ref = await storeArtifact(store, host, "records", records);
    const bytes = (await store.get(blobKey(ref.hash)))!.slice();
    bytes[20] ^= 0xff;
    await store.put(blobKey(ref.hash), bytes);
    await expect(loadArtifact(store, host, ref, "records")).rejects.toThrow(/artifact 'records' is corrupt/);
    if (store.getSync) expect(() => loadArtifactSync(store, host, ref, "records")).toThrow(/corrupt/);
  });
});
