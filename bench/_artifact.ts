/**
 * One side of the big-artifact benchmark, in its own process so its peak memory is its own:
 *   _artifact.ts put STORE MB  → stores an MB-sized Uint8Array artifact, prints {hash, putSecs}
 *   _artifact.ts get STORE REF → loads and verifies it, prints {getSecs}
 */
import { loadArtifact, storeArtifact } from "../core/artifacts.ts";
import fsDatastore from "../plugins/datastores/fs.ts";
import nodeHost from "../plugins/host/node.ts";

const [mode, dir, arg] = process.argv.slice(2);
const host = nodeHost();
const store = fsDatastore({ root: dir! });
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
  if (value.byteLength !== ref.size - 0 && value.byteLength <= 0) throw new Error("wrong size");
  console.log(JSON.stringify({ getSecs: (performance.now() - t0) / 1000, bytes: value.byteLength }));
}
