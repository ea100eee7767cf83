/**
 * A big finished run on S3 (#17.4): a 10,000-task foreach run on s3rver, read whole by the client
 * (every task of every step) and by the viewer (the run page's task rows), with the run index and
 * without it (as a datastore written before indexes holds it): requests counted at s3rver, and
 * wall time. The index is read at N = 1,000 too, to show its request count does not grow with N.
 *
 * The run's records are written straight into s3rver's directory in its own file layout (the
 * object, its md5), with the index built by the runtime's own `RunIndexWriter`: 30,000 PUTs
 * through s3rver would take minutes here and measure nothing this bench is about.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { putJson } from "../core/_datastore.ts";
import { attemptKey, doneKey, runKey, taskKey } from "../core/_layout.ts";
import { RunIndexWriter } from "../core/_tasks.ts";
import { createClient } from "../core/client.ts";
import type { Datastore } from "../core/types.ts";
import s3Datastore from "../plugins/datastores/s3.ts";
import nodeHost from "../plugins/host/node.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../test/_s3rver.ts";
import { getRun, getTasks } from "../viewer/data.ts";
import type { Row } from "./_measure.ts";

const BUCKET = "bench";
const PREFIX = "bigrun";
const FLOW = "BigRunFlow";

/** Writes keys as s3rver stores them on disk (`<key>._S3rver_object` and its md5). */
function seedStore(dir: string): Datastore {
  const put = async (key: string, data: Uint8Array | readonly Uint8Array[]) => {
    const bytes = data instanceof Uint8Array ? data : Buffer.concat(data as Uint8Array[]);
    const path = join(dir, BUCKET, PREFIX, `${key}._S3rver_object`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bytes);
    writeFileSync(`${path}.md5`, createHash("md5").update(bytes).digest("hex"));
  };
  const none = async () => {
    throw new Error("seed store: write-only");
  };
  return { name: "seed", url: dir, put, get: none, has: none, list: none, delete: none };
}

/** A finished foreach run of `n` items: start → work × n → join → end, every task done on its first attempt. */
async function seedRun(dir: string, runId: string, n: number): Promise<void> {
  const store = seedStore(dir);
  const index = new RunIndexWriter(store, FLOW, runId, (e) => {
    throw e;
  });
  const t0 = 1_790_000_000_000;
  const art = (i: number) => ({ items: { hash: "a".repeat(64), size: 8 * n, type: "number[]" }, x: { hash: createHash("sha256").update(String(i)).digest("hex"), size: 12, type: "number" } });
  const task = async (step: string, id: string, parents: string[], foreach: unknown[], extra: Record<string, unknown> = {}) => {
    const s = t0 + Number(id) * 10;
    const doc = { step, taskId: id, parents, foreach: foreach as never[], createdAt: s };
    await putJson(store, taskKey(FLOW, runId, step, id), doc);
    index.begin(doc);
    await putJson(store, attemptKey(FLOW, runId, step, id, 0, "start.json"), { attempt: 0, mode: "run", startedAt: s, executor: "process" });
    const done = { ok: true, artifacts: art(Number(id)), next: [], startedAt: s, finishedAt: s + 7, attempt: 0, ...extra };
    await putJson(store, doneKey(FLOW, runId, step, id), done);
    index.done(step, id, done);
  };
  await task("start", "1", [], [], { foreachCount: n, next: ["work"] });
  for (let i = 0; i < n; i++) await task("work", String(i + 2), [`${runId}/start/1`], [{ step: "start", task: "1", index: i, count: n }], { next: ["join"] });
  await task("join", String(n + 2), Array.from({ length: n }, (_, i) => `${runId}/work/${i + 2}`), [], { next: ["end"] });
  await task("end", String(n + 3), [`${runId}/join/${n + 2}`], []);
  const finishedAt = t0 + (n + 4) * 10;
  if (!(await index.finish({ status: "succeeded", finishedAt }))) throw new Error("bench: the index was not written");
  await putJson(store, runKey(FLOW, runId), {
    flow: FLOW,
    runId,
    status: "succeeded",
    createdAt: t0,
    finishedAt,
    tags: [],
    systemTags: ["user:bench"],
    parameterValues: { n },
    graph: {
      order: ["start", "work", "join", "end"],
      steps: {
        start: { type: "foreach", next: ["work"], foreach: "items" },
        work: { type: "linear", next: ["join"] },
        join: { type: "join", next: ["end"], isJoin: true },
        end: { type: "end", next: [] },
      },
    },
  });
}

export async function benchBigRun(): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), "tsflow-bench-bigrun-"));
  const runs = { 1000: "1790000000000-k001", 10000: "1790000000001-k010" } as const;
  for (const [n, id] of Object.entries(runs)) await seedRun(dir, id, Number(n));
  const s3 = await startS3rver({ buckets: [BUCKET], dir });
  const host = nodeHost();
  try {
    // A fresh store (and client) per read: nothing cached from the read before.
    const open = () => s3Datastore({ url: `s3://${BUCKET}/${PREFIX}`, endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
    const counted = async (fn: () => Promise<number>) => {
      await new Promise((r) => setTimeout(r, 300)); // s3rver reports requests over a pipe: let the last ones arrive
      const before = s3.requests.length;
      const t = performance.now();
      const tasks = await fn();
      const ms = performance.now() - t;
      await new Promise((r) => setTimeout(r, 300));
      return { ms, requests: s3.requests.length - before, tasks };
    };
    const clientRead = (id: string) =>
      counted(async () => {
        const client = createClient(open(), host);
        client.namespace(null);
        const run = await client.Flow.get(FLOW).run(id);
        let n = 0;
        for (const step of await run.steps()) for await (const t of step.tasks()) if (t.successful) n++;
        return n;
      });
    const viewerRead = (id: string) =>
      counted(async () => {
        const store = open();
        const info = await getRun(store, FLOW, id);
        return (await getTasks(store, info!)).filter((t) => t.state === "succeeded").length;
      });
    const check = (r: { tasks: number }, n: number) => {
      if (r.tasks !== n + 3) throw new Error(`bench: read ${r.tasks} tasks of a ${n + 3}-task run`);
    };
    const best = async (read: (id: string) => Promise<{ ms: number; requests: number; tasks: number }>, id: string, n: number) => {
      const xs = [await read(id), await read(id), await read(id)];
      for (const x of xs) check(x, n);
      return { ms: Math.min(...xs.map((x) => x.ms)), requests: xs[0]!.requests };
    };
    const c1k = await best(clientRead, runs[1000], 1000);
    const c10k = await best(clientRead, runs[10000], 10000);
    const v1k = await best(viewerRead, runs[1000], 1000);
    const v10k = await best(viewerRead, runs[10000], 10000);
    rows.push({ name: "S3 big run: client reads a 1,000-task run (index), requests", value: c1k.requests, unit: "req" });
    rows.push({ name: "S3 big run: client reads a 10,000-task run (index), requests", value: c10k.requests, unit: "req", target: "constant in N" });
    rows.push({ name: "S3 big run: client reads a 10,000-task run (index), best of 3", value: c10k.ms, unit: "ms", target: "≤ 1000 ms" });
    rows.push({ name: "S3 big run: viewer reads a 1,000-task run (index), requests", value: v1k.requests, unit: "req" });
    rows.push({ name: "S3 big run: viewer reads a 10,000-task run (index), requests", value: v10k.requests, unit: "req", target: "constant in N" });
    rows.push({ name: "S3 big run: viewer reads a 10,000-task run (index), best of 3", value: v10k.ms, unit: "ms", target: "≤ 1000 ms" });
    // Without the index: a run as a datastore written before indexes holds it (the 1,000-task
    // run: its 10,000-task twin takes minutes; TSFLOW_BENCH_SCALE_BIG=1 reads that one too).
    for (const n of process.env.TSFLOW_BENCH_SCALE_BIG === "1" ? [1000, 10000] : [1000]) {
      const id = runs[n as 1000 | 10000];
      rmSync(join(dir, BUCKET, PREFIX, "flows", FLOW, "runs", id, "index"), { recursive: true });
      rmSync(join(dir, BUCKET, PREFIX, "flows", FLOW, "runs", id, "index.json._S3rver_object"));
      const c = await clientRead(id);
      check(c, n);
      const v = await viewerRead(id);
      check(v, n);
      const what = `a ${n.toLocaleString("en-US")}-task run (no index, as before)`;
      rows.push({ name: `S3 big run: client reads ${what}, requests`, value: c.requests, unit: "req" });
      rows.push({ name: `S3 big run: client reads ${what}`, value: c.ms, unit: "ms" });
      rows.push({ name: `S3 big run: viewer reads ${what}, requests`, value: v.requests, unit: "req" });
      rows.push({ name: `S3 big run: viewer reads ${what}`, value: v.ms, unit: "ms" });
    }
  } finally {
    await s3.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

// `npx tsx bench/bigrun.ts` prints the rows on their own.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const r of await benchBigRun()) console.log(`${r.name}: ${r.value.toFixed(r.unit === "s" ? 3 : 1)} ${r.unit}${r.target ? ` (target ${r.target})` : ""}`);
}
