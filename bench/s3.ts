/**
 * Big artifacts on S3: put+get of a 100 MB and a 1 GB artifact through s3rver on 127.0.0.1,
 * each side in its own process so its peak memory is its own, beside the AWS SDK's own ways of
 * moving the same bytes against the same server in the same run (lib-storage's `Upload`, and
 * ranged GetObjects in parallel): s3rver is the limit here, so the ratio is what tells.
 * Variants alternate (SDK, tsflow, SDK, tsflow…) and the best of each is kept
 * (TSFLOW_BENCH_S3_REPEAT times, default 2; TSFLOW_BENCH_S3_MB=100,1024 the sizes).
 */
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { S3RVER_CREDENTIALS, startS3rver } from "../test/_s3rver.ts";
import { measure, type Row } from "./_measure.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

export async function benchS3(): Promise<Row[]> {
  const s3 = await startS3rver({ buckets: ["bench"] });
  const env = {
    TSFLOW_S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: "us-east-1",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  };
  const rows: Row[] = [];
  const script = join(root, "bench", "_artifact.ts");
  const run = async (...args: string[]) => {
    const r = await measure(process.execPath, ["--import", "tsx", script, ...args], { env });
    return { ...(JSON.parse(r.out.trim().split("\n").pop()!) as { ref?: unknown; putSecs?: number; getSecs?: number; cpu: number }), rss: r.peakOneMb };
  };
  const repeat = Number(process.env.TSFLOW_BENCH_S3_REPEAT ?? 2);
  try {
    for (const mb of (process.env.TSFLOW_BENCH_S3_MB ?? "100,1024").split(",").map(Number)) {
      const where = `s3://bench/mb${mb}`;
      const best = { put: Infinity, get: Infinity, sdkPut: Infinity, sdkGet: Infinity, rss: 0 };
      // Client CPU seconds of each variant (its own process): steadier than throughput when
      // s3rver shares a loaded machine with everything else.
      const cpu = { put: Infinity, get: Infinity, sdkPut: Infinity, sdkGet: Infinity };
      const load = loadavg()[0]!;
      for (let i = 0; i < repeat; i++) {
        const sdkPut = await run("sdk-put", where, String(mb));
        best.sdkPut = Math.min(best.sdkPut, sdkPut.putSecs!);
        cpu.sdkPut = Math.min(cpu.sdkPut, sdkPut.cpu);
        // Each put of tsflow writes a new key (the store skips a blob it already has).
        const put = await run("put", `${where}/try${i}`, String(mb));
        best.put = Math.min(best.put, put.putSecs!);
        cpu.put = Math.min(cpu.put, put.cpu);
        const sdkGet = await run("sdk-get", where);
        best.sdkGet = Math.min(best.sdkGet, sdkGet.getSecs!);
        cpu.sdkGet = Math.min(cpu.sdkGet, sdkGet.cpu);
        const get = await run("get", `${where}/try${i}`, JSON.stringify(put.ref));
        best.get = Math.min(best.get, get.getSecs!);
        cpu.get = Math.min(cpu.get, get.cpu);
        best.rss = Math.max(best.rss, put.rss, get.rss);
      }
      const note = `load ${load.toFixed(1)}`;
      rows.push({ name: `s3rver artifact put ${mb} MB (hashed, multipart)`, value: mb / best.put, unit: "MB/s", reference: note });
      rows.push({ name: `s3rver SDK Upload ${mb} MB (lib-storage)`, value: mb / best.sdkPut, unit: "MB/s" });
      rows.push({ name: `s3rver artifact put ${mb} MB vs SDK Upload`, value: (100 * best.sdkPut) / best.put, unit: "%", target: "≥ 80 %" });
      rows.push({ name: `s3rver artifact get ${mb} MB (verified)`, value: mb / best.get, unit: "MB/s", reference: note });
      rows.push({ name: `s3rver SDK ranged GetObject ${mb} MB`, value: mb / best.sdkGet, unit: "MB/s" });
      rows.push({ name: `s3rver artifact get ${mb} MB vs SDK GetObject`, value: (100 * best.sdkGet) / best.get, unit: "%", target: "≥ 80 %" });
      rows.push({ name: `client CPU ${mb} MB put: tsflow (hash included) / SDK Upload`, value: cpu.put / cpu.sdkPut, unit: "×", reference: `${cpu.put.toFixed(2)} s / ${cpu.sdkPut.toFixed(2)} s` });
      rows.push({ name: `client CPU ${mb} MB get: tsflow (verified) / SDK GetObject`, value: cpu.get / cpu.sdkGet, unit: "×", reference: `${cpu.get.toFixed(2)} s / ${cpu.sdkGet.toFixed(2)} s` });
      rows.push({ name: `s3rver artifact ${mb} MB peak RSS (put, get)`, value: best.rss, unit: "MB", target: mb >= 1024 ? "≤ 1536 MB" : undefined });
    }
  } finally {
    await s3.close();
  }
  return rows;
}
