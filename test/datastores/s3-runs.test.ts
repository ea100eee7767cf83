/**
 * Listing runs on S3 (issue 17.1): the newest runs cost the same number of requests with twice
 * the runs in the bucket, and never a listing of every run (one request per 1,000 runs): they
 * come from the flow's time index (core/_status.ts), through the real s3 datastore and s3rver.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { mapLimit, putJson } from "../../core/_datastore.ts";
import { runKey } from "../../core/_layout.ts";
import { indexRun } from "../../core/_status.ts";
import { createClient } from "../../core/client.ts";
import type { Datastore } from "../../core/types.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import nodeHost from "../../plugins/host/node.ts";
import { type RunningS3rver, S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";

const host = nodeHost();
const FLOW = "ManyRunsFlow";
const HOUR = 3_600_000;

describe("run listings on s3 (s3rver)", () => {
  let s3: RunningS3rver;
  let store: Datastore;

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ["runs"] });
    store = s3Datastore({ url: "s3://runs/team", endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
  });
  afterAll(async () => {
    await store?.close?.();
    await s3?.close();
  });

  /** Runs `from`..`to`-1, an hour apart (many periods of the index); the newest 3 failed. */
  const write = (from: number, to: number, newest: number) =>
    mapLimit(
      Array.from({ length: to - from }, (_, i) => from + i),
      16,
      async (i) => {
        const at = 1_790_000_000_000 + i * HOUR;
        const id = `${at}-r${String(i).padStart(4, "0")}`;
        await indexRun(store, FLOW, id, at);
        await putJson(store, runKey(FLOW, id), { flow: FLOW, runId: id, status: i >= newest - 3 ? "failed" : "succeeded", createdAt: at, tags: [], systemTags: [`user:${host.username()}`] });
      },
    );

  /**
   * s3rver's log comes over a pipe and may trail the answers when this process is starved: a
   * read of a key of our own marks a point in it, once the log has it.
   */
  let marks = 0;
  const mark = async () => {
    const key = `marks/${++marks}`;
    await store.get(key);
    const isMark = (r: string) => r.startsWith("GET ") && decodeURIComponent(r).includes(`team/${key}`);
    await vi.waitFor(() => expect(s3.requests.some(isMark)).toBe(true), { timeout: 15_000 });
    return s3.requests.findIndex(isMark);
  };
  /** The requests `fn` made, between two marks. */
  const requestsOf = async (fn: () => Promise<unknown>) => {
    const from = await mark();
    await fn();
    const to = await mark();
    return s3.requests.slice(from + 1, to).map((r) => decodeURIComponent(r));
  };

  it("the newest 20 and the latest successful run take as many requests with 240 runs as with 120, and no listing of runs/", async () => {
    const newest20 = async () => {
      const flow = createClient(store, host).Flow.get(FLOW);
      const runs = await flow.runs({ limit: 20 });
      const latest = await flow.latestSuccessfulRun();
      return { ids: runs.map((r) => r.id), latest: latest?.id };
    };
    await write(0, 120, 120);
    let seen: Awaited<ReturnType<typeof newest20>> | undefined;
    const small = await requestsOf(async () => (seen = await newest20()));
    expect(seen!.ids[0]).toMatch(/-r0119$/);
    expect(seen!.latest).toMatch(/-r0116$/);

    await write(120, 240, 240);
    const big = await requestsOf(async () => (seen = await newest20()));
    expect(seen!.ids).toHaveLength(20);
    expect(seen!.ids[0]).toMatch(/-r0239$/);
    expect(seen!.ids[19]).toMatch(/-r0220$/);
    expect(seen!.latest).toMatch(/-r0236$/);
    // One listing more at most: the newest 24 runs may straddle one more period of the index.
    expect(big.length).toBeLessThanOrEqual(small.length + 1);
    expect(big.length).toBeLessThan(150);
    const listsOfRuns = big.filter((r) => r.includes(`prefix=team/flows/${FLOW}/runs/&`) || r.endsWith(`prefix=team/flows/${FLOW}/runs/`));
    expect(listsOfRuns).toEqual([]);
    console.log(`requests: ${small.length} with 120 runs, ${big.length} with 240`);
  });
});
