/**
 * One side of the big-artifact benchmark, in its own process so its peak memory is its own:
 *   _artifact.ts put STORE MB     → stores an MB-sized Uint8Array artifact, prints {ref, putSecs}
 *   _artifact.ts get STORE REF    → loads and verifies it, prints {getSecs}
 * and the AWS SDK's own ways of moving the same bytes, for comparison (S3 only):
 *   _artifact.ts sdk-put S3URL MB → lib-storage's `Upload` of the bytes, prints {putSecs}
 *   _artifact.ts sdk-get S3URL    → ranged GetObjects in parallel into one buffer, prints {getSecs}
 * The SDK side uses the datastore's part size and concurrency, so only the code differs.
 */
import { GetObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { loadArtifact, storeArtifact } from "../core/artifacts.ts";
import { openDatastore } from "../runner/stores.ts";
import nodeHost from "../plugins/host/node.ts";

/** The s3 datastore's defaults (plugins/datastores/s3.ts). */
const PART = 8 * 1024 * 1024;
const QUEUE = 8;

/** Incompressible bytes: the benchmark measures moving data, not gzip on zeros. */
function randomBytes(mb: number): Uint8Array {
  const words = new Uint32Array((mb * 1024 * 1024) / 4);
  let x = 2463534242;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return new Uint8Array(words.buffer);
}

/** CPU seconds (user + system) this process spent since `from`. */
const cpuSince = (from: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1e6;
};

// STORE is a directory or s3://bucket/prefix (with TSFLOW_S3_ENDPOINT for s3rver).
const [mode, where, arg] = process.argv.slice(2);
const host = nodeHost();
if (mode === "put" || mode === "get") {
  const store = await openDatastore(where!);
  // Load the store's client (the AWS SDK for S3) before the clock starts, as the SDK side does.
  await store.has("bench-warm-up");
  if (mode === "put") {
    const value = randomBytes(Number(arg));
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const ref = await storeArtifact(store, host, "big", value);
    console.log(JSON.stringify({ ref, putSecs: (performance.now() - t0) / 1000, cpu: cpuSince(c0) }));
  } else {
    const ref = JSON.parse(arg!);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const value = (await loadArtifact(store, host, ref, "big")) as Uint8Array;
    console.log(JSON.stringify({ getSecs: (performance.now() - t0) / 1000, cpu: cpuSince(c0), bytes: value.byteLength }));
  }
  await store.close?.();
} else {
  const [, Bucket, prefix] = /^s3:\/\/([^/]+)\/?(.*)$/.exec(where!)!;
  const Key = `${prefix}/sdk.bin`;
  const client = new S3Client({
    endpoint: process.env.TSFLOW_S3_ENDPOINT,
    forcePathStyle: true,
    region: "us-east-1",
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  if (mode === "sdk-put") {
    const body = randomBytes(Number(arg));
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await new Upload({ client, params: { Bucket, Key, Body: body }, partSize: PART, queueSize: QUEUE }).done();
    console.log(JSON.stringify({ putSecs: (performance.now() - t0) / 1000, cpu: cpuSince(c0) }));
  } else if (mode === "sdk-get") {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const size = (await client.send(new HeadObjectCommand({ Bucket, Key }))).ContentLength!;
    const out = new Uint8Array(size);
    let next = 0;
    const worker = async () => {
      for (let at = next; at < size; at = next) {
        next += PART;
        const res = await client.send(new GetObjectCommand({ Bucket, Key, Range: `bytes=${at}-${Math.min(at + PART, size) - 1}` }));
        let pos = at;
        for await (const chunk of res.Body as AsyncIterable<Uint8Array>) {
          out.set(chunk, pos);
          pos += chunk.byteLength;
        }
      }
    };
    await Promise.all(Array.from({ length: QUEUE }, worker));
    console.log(JSON.stringify({ getSecs: (performance.now() - t0) / 1000, cpu: cpuSince(c0), bytes: out.byteLength }));
  } else throw new Error(`unknown mode '${mode}'`);
  client.destroy();
}
