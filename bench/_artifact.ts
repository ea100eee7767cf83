/**
 * One side of the big-artifact benchmark, in its own process so its peak memory is its own:
 *   _artifact.ts put STORE MB  → stores an MB-sized Uint8Array artifact, prints {hash, putSecs}
 *   _artifact.ts get STORE REF → loads and verifies it, prints {getSecs}
 */
import { loadArtifact, storeArtifact } from "../core/artifacts.ts";
import { openDatastore } from "../runner/stores.ts";
import nodeHost from "../plugins/host/node.ts";

// STORE is a directory or s3://bucket/prefix (with TSFLOW_S3_ENDPOINT for s3rver).
const [mode, where, arg] = process.argv.slice(2);
const host = nodeHost();
const store = await openDatastore(where!);
if (mode === "put") {
  // Incompressible bytes: the benchmark measures moving data, not gzip on zeros.
  const words = new Uint32Array((Number(arg) * 1024 * 1024) / 4);
  let x = 2463534242;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  const value = new Uint8Array(words.buffer);
  const t0 = performance.now();
  const ref = await storeArtifact(store, host, "big", value);
  console.log(JSON.stringify({ ref, putSecs: (performance.now() - t0) / 1000 }));
} else {
  const ref = JSON.parse(arg!);
  const t0 = performance.now();
  const value = (await loadArtifact(store, host, ref, "big")) as Uint8Array;
  console.log(JSON.stringify({ getSecs: (performance.now() - t0) / 1000, bytes: value.byteLength }));
}
await store.close?.();
