/**
 * Big artifacts on S3: put+get of a 100 MB and a 1 GB artifact through s3rver on 127.0.0.1,
 * each side in its own process so its peak memory is its own, beside the AWS SDK's own ways of
 * moving the same bytes against the same server in the same run (lib-storage's `Upload`, and
 * ranged GetObjects in parallel): s3rver is the limit here, so the ratio is what tells.
 *
 * Samples come in pairs (tsflow and the SDK, one right after the other), the order swapped from
 * one pair to the next, and each pair gives one ratio; the median and the minimum of the ratios
 * are reported (TSFLOW_BENCH_S3_REPEAT pairs, default 4; TSFLOW_BENCH_S3_MB=100,1024 the sizes).
 * Before each sample the machine's dirty pages are flushed (`sync`) and each pair's objects are
 * deleted after it: s3rver writes 2 GB for a 1 GB multipart upload (the parts, then the object
 * they are joined into), which the kernel otherwise writes back while the next sample runs, and
 * the bench used to run tsflow always right after the SDK. On a shared machine single samples
 * still swing by ±40 %: read the median, and the client CPU rows, which hardly move with the load.
 */
import { spawnSync } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { S3RVER_CREDENTIALS, startS3rver } from "../test/_s3rver.ts";
import { measure, type Row } from "./_measure.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The middle value; of an even count, the mean of the two in the middle. */
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const lowHigh = (xs: number[]) => `min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}`;

type Sample = { putSecs?: number; getSecs?: number; cpu: number; ref?: unknown; rss: number };

export async function benchS3(): Promise<Row[]> {
  // The SDK's Node 20 notice, from the client that clears the bucket between pairs.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const s3 = await startS3rver({ buckets: ["bench"] });
  const env = {
    TSFLOW_S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: "us-east-1",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  };
  const client = new S3Client({
    endpoint: s3.endpoint,
    forcePathStyle: true,
    region: "us-east-1",
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  const clear = async (Prefix: string) => {
    const { Contents = [] } = await client.send(new ListObjectsV2Command({ Bucket: "bench", Prefix }));
    if (Contents.length) await client.send(new DeleteObjectsCommand({ Bucket: "bench", Delete: { Objects: Contents.map((o) => ({ Key: o.Key! })) } }));
  };
  const script = join(root, "bench", "_artifact.ts");
  const run = async (...args: string[]): Promise<Sample> => {
    // Every sample starts with nothing left for the kernel to write back.
    spawnSync("sync");
    const r = await measure(process.execPath, ["--import", "tsx", script, ...args], { env });
    return { ...(JSON.parse(r.out.trim().split("\n").pop()!) as Omit<Sample, "rss">), rss: r.peakOneMb };
  };
  const repeat = Number(process.env.TSFLOW_BENCH_S3_REPEAT ?? 4);
  const rows: Row[] = [];
  try {
    for (const mb of (process.env.TSFLOW_BENCH_S3_MB ?? "100,1024").split(",").map(Number)) {
      const got = { put: [] as Sample[], sdkPut: [] as Sample[], get: [] as Sample[], sdkGet: [] as Sample[] };
      const putRatio: number[] = [];
      const getRatio: number[] = [];
      const load = loadavg()[0]!;
      for (let i = 0; i < repeat; i++) {
        const where = `s3://bench/mb${mb}/pair${i}`;
        const oursFirst = i % 2 === 1;
        // Put: each pair writes new keys (the store skips a blob it already has).
        const pair = async (ours: () => Promise<Sample>, sdk: () => Promise<Sample>): Promise<[Sample, Sample]> => {
          if (oursFirst) {
            const first = await ours();
            return [first, await sdk()];
          }
          const first = await sdk();
          return [await ours(), first];
        };
        const [put, sdkPut] = await pair(
          () => run("put", where, String(mb)),
          () => run("sdk-put", where, String(mb)),
        );
        const [get, sdkGet] = await pair(
          () => run("get", where, JSON.stringify(put.ref)),
          () => run("sdk-get", where),
        );
        got.put.push(put);
        got.sdkPut.push(sdkPut);
        got.get.push(get);
        got.sdkGet.push(sdkGet);
        putRatio.push((100 * sdkPut.putSecs!) / put.putSecs!);
        getRatio.push((100 * sdkGet.getSecs!) / get.getSecs!);
        await clear(`mb${mb}/pair${i}/`);
      }
      const note = `load ${load.toFixed(1)}→${loadavg()[0]!.toFixed(1)}, median of ${repeat}`;
      const rate = (xs: Sample[], k: "putSecs" | "getSecs") => median(xs.map((s) => mb / s[k]!));
      const cpu = (xs: Sample[]) => median(xs.map((s) => s.cpu));
      rows.push({ name: `s3rver artifact put ${mb} MB (hashed, multipart)`, value: rate(got.put, "putSecs"), unit: "MB/s", reference: note });
      rows.push({ name: `s3rver SDK Upload ${mb} MB (lib-storage)`, value: rate(got.sdkPut, "putSecs"), unit: "MB/s" });
      rows.push({ name: `s3rver artifact put ${mb} MB vs SDK Upload, median`, value: median(putRatio), unit: "%", target: "≥ 80 %", reference: `pairs: ${putRatio.map((r) => r.toFixed(0)).join(", ")}` });
      rows.push({ name: `s3rver artifact put ${mb} MB vs SDK Upload, min`, value: Math.min(...putRatio), unit: "%", reference: lowHigh(putRatio) });
      rows.push({ name: `s3rver artifact get ${mb} MB (verified)`, value: rate(got.get, "getSecs"), unit: "MB/s", reference: note });
      rows.push({ name: `s3rver SDK ranged GetObject ${mb} MB`, value: rate(got.sdkGet, "getSecs"), unit: "MB/s" });
      rows.push({ name: `s3rver artifact get ${mb} MB vs SDK GetObject, median`, value: median(getRatio), unit: "%", target: "≥ 80 %", reference: `pairs: ${getRatio.map((r) => r.toFixed(0)).join(", ")}` });
      rows.push({ name: `s3rver artifact get ${mb} MB vs SDK GetObject, min`, value: Math.min(...getRatio), unit: "%", reference: lowHigh(getRatio) });
      // Client CPU seconds of each variant (its own process): steadier than throughput when
      // s3rver shares a loaded machine with everything else.
      rows.push({ name: `client CPU ${mb} MB put: tsflow (hash included) / SDK Upload`, value: cpu(got.put) / cpu(got.sdkPut), unit: "×", reference: `${cpu(got.put).toFixed(2)} s / ${cpu(got.sdkPut).toFixed(2)} s` });
      rows.push({ name: `client CPU ${mb} MB get: tsflow (verified) / SDK GetObject`, value: cpu(got.get) / cpu(got.sdkGet), unit: "×", reference: `${cpu(got.get).toFixed(2)} s / ${cpu(got.sdkGet).toFixed(2)} s` });
      const rss = Math.max(...got.put.map((s) => s.rss), ...got.get.map((s) => s.rss));
      const sdkRss = Math.max(...got.sdkPut.map((s) => s.rss), ...got.sdkGet.map((s) => s.rss));
      rows.push({ name: `s3rver artifact ${mb} MB peak RSS (put, get)`, value: rss, unit: "MB", target: mb >= 1024 ? "≤ 1536 MB" : undefined, reference: `SDK side ${sdkRss.toFixed(0)} MB` });
    }
  } finally {
    client.destroy();
    await s3.close();
  }
  return rows;
}
