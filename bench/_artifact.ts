/**
 * One side of the big-artifact benchmark, in its own process so its peak memory is its own:
 *   _artifact.ts put STORE MB  → stores an MB-sized Uint8Array artifact, prints {hash, putSecs}
 *   _artifact.ts get STORE REF → loads and verifies it, prints {getSecs}
 */
import { loadArtifact, storeArtifact } from "../core/artifacts.ts";
import { openDatastore } from "../cli/datastores.ts";
import nodeHost from "../plugins/host/node.ts";

// STORE is a directory or s3://bucket/prefix (with TSFLOW_S3_ENDPOINT for s3rver).
const [mode, where, arg] = process.argv.slice(2);
const host = nodeHost();
const store = await openDatastore(where!);
if (mode === "put") {
  const value = new Uint8Array(Number(arg) * 1024 * 1024);
  for (let i = 0; i < value.length; i += 4096) value[i] = i & 255;
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
