/**
 * Big artifacts on S3: put+get of a 100 MB and a 1 GB artifact through s3rver on 127.0.0.1,
 * each side in its own process so its peak memory is its own. s3rver writes to local disk, so
 * the raw copy throughput of the same disk is the limit to compare with (see the `big` group).
 */
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
  try {
    for (const mb of [100, 1024]) {
      const where = `s3://bench/mb${mb}`;
      const put = await measure(process.execPath, ["--import", "tsx", script, "put", where, String(mb)], { env });
      const { ref, putSecs } = JSON.parse(put.out.trim().split("\n").pop()!) as { ref: unknown; putSecs: number };
      const get = await measure(process.execPath, ["--import", "tsx", script, "get", where, JSON.stringify(ref)], { env });
      const { getSecs } = JSON.parse(get.out.trim().split("\n").pop()!) as { getSecs: number };
      rows.push({ name: `s3rver artifact put ${mb} MB (multipart)`, value: mb / putSecs, unit: "MB/s" });
      rows.push({ name: `s3rver artifact get ${mb} MB (verified)`, value: mb / getSecs, unit: "MB/s" });
      rows.push({ name: `s3rver artifact ${mb} MB peak RSS`, value: Math.max(put.peakOneMb, get.peakOneMb), unit: "MB", target: mb >= 1024 ? "≤ 1536 MB" : undefined });
    }
  } finally {
    await s3.close();
  }
  return rows;
}
