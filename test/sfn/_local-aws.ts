/**
 * Everything a production deployment needs, on 127.0.0.1: s3rver (the datastore), the local
 * Batch API (jobs run as processes), and the local Step Functions + Scheduler + EventBridge API
 * that executes the state machines. The tsflow process under test reaches them through the same
 * environment variables a user sets to point tsflow at stand-ins.
 */
import { type BatchServer, startBatchServer } from "../batch-server/server.ts";
import { type RunningS3rver, S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";
import { type SfnServer, startSfnServer } from "../sfn-server/server.ts";

export interface LocalAws {
  s3: RunningS3rver;
  batch: BatchServer;
  sfn: SfnServer;
  /** The environment that points tsflow (and its jobs) at the servers. */
  env: Record<string, string>;
  datastore: string;
  close(): Promise<void>;
}

export async function startLocalAws(options: { prefix?: string; maxConcurrent?: number } = {}): Promise<LocalAws> {
  const [s3, batch] = await Promise.all([startS3rver({ buckets: ["tsflow"] }), startBatchServer({ executor: "process", maxConcurrent: options.maxConcurrent ?? 4, transitionMs: 10, environment: { TSFLOW_LOG_FLUSH_MS: "200" } })]);
  const sfn = await startSfnServer({ batchEndpoint: batch.url, s3Endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS, timeScale: 0.05, pollMs: 50 });
  const datastore = `s3://tsflow/${options.prefix ?? "prod"}`;
  const env = {
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_REGION: "us-east-1",
    TSFLOW_S3_ENDPOINT: s3.endpoint,
    TSFLOW_BATCH_ENDPOINT: batch.url,
    TSFLOW_SFN_ENDPOINT: sfn.url,
    TSFLOW_SCHEDULER_ENDPOINT: sfn.url,
    TSFLOW_EVENTS_ENDPOINT: sfn.url,
    TSFLOW_BATCH_QUEUE: "default",
    TSFLOW_BATCH_IMAGE: "tsflow-node:20",
    TSFLOW_SFN_ROLE: "arn:aws:iam::123456789012:role/tsflow-sfn",
    TSFLOW_EVENTS_ROLE: "arn:aws:iam::123456789012:role/tsflow-events",
    TSFLOW_LOG_FLUSH_MS: "200",
  };
  // Jobs of the Batch server get this process's credentials and endpoints (their role, their
  // network), nothing else of it. Every server is plain http on 127.0.0.1: extra CA
  // certificates would only cost this process's own clients their loading.
  Object.assign(process.env, env);
  delete process.env.NODE_EXTRA_CA_CERTS;
  return {
    s3,
    batch,
    sfn,
    env,
    datastore,
    async close() {
      await sfn.close();
      await Promise.all([batch.close(), s3.close()]);
    },
  };
}
