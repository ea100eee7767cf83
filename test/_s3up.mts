import { startS3rver } from "./_s3rver.ts";
const s = await startS3rver({ buckets: ["flows"] });
console.log(s.endpoint);
await new Promise(() => {});
