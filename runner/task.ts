/**
 * One task run where no orchestrator holds a pipe to it (an AWS Batch job): `tsflow __worker`
 * with the spec in `TSFLOW_TASK_SPEC` (JSON) or, when too big for a job's environment, in the
 * datastore at `TSFLOW_TASK_SPEC_KEY` of `TSFLOW_TASK_DATASTORE`; a child of an array job
 * (a foreach on Batch) runs its slice of the items stored in chunks at `TSFLOW_TASK_ARRAY_PREFIX`
 * (`arrayItems`), one after the other in this process, each still a task of its own.
 *
 * The task stores its own output in `<attempt>/stdout|stderr` while it runs (echoing it, so
 * the job's own log has it too): that is how the orchestrator streams a remote task's logs.
 * Exit code 0 means the attempt wrote its result (a step error included); anything else is an
 * infrastructure failure that the executor reports from the job's status.
 *
 * Last, once their results and logs are stored, the tasks report their ends under
 * `TSFLOW_TASK_ENDED_PREFIX` (`EndReports`: each task's index in its array, log chunk counts and
 * result, several tasks to a report): the batch executor learns which tasks ended, how they went
 * and how many log chunks to read from a listing of the blocks of 100 it still waits for and a
 * read of each new report, instead of asking Batch about each child, listing each one's logs or
 * reading each one's result.
 */
import { putJson } from "../core/_datastore.ts";
import { attemptKey, blobKey } from "../core/_layout.ts";
import { LogWriter } from "../core/_logs.ts";
import { errorInfo, executeTask } from "../core/task.ts";
import type { Bytes, Datastore, TaskResult, TaskSpec } from "../core/types.ts";
import type { TaskEnd } from "../plugins/executors/batch.ts";
import nodeHost from "../plugins/host/node.ts";
import { openDatastore } from "./stores.ts";
import { loadFlow, packageModule } from "./load.ts";
import { enterTaskEnvironment, type TaskEnvironmentScope } from "./secrets.ts";

const FLUSH_MS = Number(process.env.TSFLOW_LOG_FLUSH_MS ?? 1000);

/**
 * Appends everything written to stdout/stderr to the current item's attempt log in the
 * datastore, one new chunk per flush (core/_logs.ts): each task is its log's only writer, and
 * its bytes are written once, however long it runs. A child running a slice of an array's items
 * switches the target between items (`begin`), so each item keeps a log of its own.
 */
function captureOutput(store: Datastore): { begin(spec: TaskSpec): () => Promise<{ stdout: number; stderr: number }> } {
  let writer: LogWriter | undefined;
  for (const name of ["stdout", "stderr"] as const) {
    const stream = process[name];
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      writer?.add(name, typeof chunk === "string" ? new TextEncoder().encode(chunk) : new Uint8Array(chunk as Uint8Array));
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
  return {
    begin(spec) {
      const own = new LogWriter(store, { flow: spec.flowName, run: spec.runId, step: spec.step, task: spec.taskId, attempt: spec.attempt }, { flushMs: FLUSH_MS });
      writer = own;
      return async () => {
        await own.close();
        if (writer === own) writer = undefined;
        return { stdout: own.chunks("stdout"), stderr: own.chunks("stderr") };
      };
    },
  };
}

/**
 * The ends of this job's tasks, told to the batch executor under `TSFLOW_TASK_ENDED_PREFIX` once
 * each task's result and logs are stored: one report `<block>/r<first>-<last>` (`block`: index /
 * 100) holding the ends, results included, of the tasks that ended since the last report. A
 * slice of quick items is then one write here and one read there, not two requests per item;
 * a report goes out at least every `REPORT_MS` while tasks end, and when the job is done.
 */
class EndReports {
  private ends: TaskEnd[] = [];
  private last = Date.now();
  constructor(
    private readonly store: Datastore,
    private readonly prefix: string | undefined,
  ) {}

  async add(end: TaskEnd, more: boolean): Promise<void> {
    if (!this.prefix) return;
    this.ends.push(end);
    if (more && Date.now() - this.last < REPORT_MS) return;
    await this.flush();
  }

  async flush(): Promise<void> {
    const ends = this.ends;
    this.ends = [];
    this.last = Date.now();
    const blocks = new Map<number, TaskEnd[]>();
    for (const end of ends) {
      const b = Math.floor(end.index / 100);
      blocks.set(b, [...(blocks.get(b) ?? []), end]);
    }
    // Not fatal: without a report the executor learns the ends from Batch, only later.
    await Promise.all([...blocks].map(([b, list]) => this.store.put(`${this.prefix}${b}/r${list[0]!.index}-${list.at(-1)!.index}`, new TextEncoder().encode(JSON.stringify(list))).catch(() => {})));
  }
}
const REPORT_MS = 1000;

/**
 * The items an array child runs: `TSFLOW_TASK_ARRAY_ITEMS` (default 1) consecutive items from
 * `AWS_BATCH_JOB_ARRAY_INDEX × that`, read from the chunks of `TSFLOW_TASK_ARRAY_CHUNK` specs at
 * `TSFLOW_TASK_ARRAY_PREFIX`. A child that Batch runs again (its host was lost) skips the items
 * that have ended markers already: their results were read, and may have been used.
 */
async function arrayItems(store: Datastore): Promise<{ spec: TaskSpec; index: number }[]> {
  const env = process.env;
  const child = Number(env.AWS_BATCH_JOB_ARRAY_INDEX);
  const chunk = Number(env.TSFLOW_TASK_ARRAY_CHUNK);
  const per = Number(env.TSFLOW_TASK_ARRAY_ITEMS ?? 1);
  if (!Number.isInteger(child) || child < 0 || !(chunk > 0) || !Number.isInteger(per) || per < 1) {
    throw new Error(`array job child without a valid AWS_BATCH_JOB_ARRAY_INDEX (${env.AWS_BATCH_JOB_ARRAY_INDEX}), TSFLOW_TASK_ARRAY_CHUNK (${env.TSFLOW_TASK_ARRAY_CHUNK}) or TSFLOW_TASK_ARRAY_ITEMS (${env.TSFLOW_TASK_ARRAY_ITEMS})`);
  }
  const first = child * per;
  const chunks = new Map<number, Promise<TaskSpec[] | undefined>>();
  const read = (n: number) => {
    let p = chunks.get(n);
    if (!p) {
      const key = `${env.TSFLOW_TASK_ARRAY_PREFIX}${n}.json`;
      p = store.get(key).then((bytes) => (bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as TaskSpec[]) : undefined));
      chunks.set(n, p);
    }
    return p;
  };
  const items: { spec: TaskSpec; index: number }[] = [];
  for (let index = first; index < first + per; index++) {
    const list = await read(Math.floor(index / chunk));
    const spec = list?.[index % chunk];
    // The last child's slice may be short; a missing first item is an error.
    if (!spec) {
      if (index === first) throw new Error(`task spec ${index} of array ${env.TSFLOW_TASK_ARRAY_PREFIX} is missing from ${store.url}`);
      break;
    }
    items.push({ spec, index });
  }
  const prefix = env.TSFLOW_TASK_ENDED_PREFIX;
  if (prefix && Number(env.AWS_BATCH_JOB_ATTEMPT ?? 1) > 1 && items.length > 1) {
    const blocks = [...new Set(items.map((it) => Math.floor(it.index / 100)))];
    const ended = new Set<number>();
    for (const b of blocks) {
      for (const name of await store.list(`${prefix}${b}/`)) {
        if (!name.startsWith("r")) continue;
        const bytes = await store.get(`${prefix}${b}/${name}`);
        for (const end of bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as TaskEnd[]) : []) ended.add(end.index);
      }
    }
    return items.filter((it) => !ended.has(it.index));
  }
  return items;
}

/**
 * The store as the tasks of one job see it: small blobs (immutable, content-addressed) are read
 * once per job, not once per use — the items of a slice read the same parents' artifacts (a
 * foreach's list, the parameters), and a join of N inputs may read the same inherited blob N
 * times. Each read gets its own copy, since a step may change the bytes of a value in place; the
 * reader still verifies the hash.
 */
function sharingBlobs(store: Datastore): Datastore {
  const cache = new Map<string, Bytes>();
  let total = 0;
  const shared: Datastore = Object.create(store);
  shared.get = async (key, options) => {
    const hit = cache.get(key);
    if (hit) return hit.slice();
    const bytes = await store.get(key, options);
    if (bytes && key.startsWith(BLOBS) && bytes.byteLength <= BLOB_MAX && total + bytes.byteLength <= CACHE_MAX) {
      cache.set(key, bytes.slice());
      total += bytes.byteLength;
    }
    return bytes;
  };
  return shared;
}
const BLOBS = blobKey("00").slice(0, "blobs/".length);
const BLOB_MAX = 1 << 20;
const CACHE_MAX = 64 << 20;

/** Runs one task of this job to its end: its result (a step error included) and logs stored. */
async function runItem(store: Datastore, spec: TaskSpec, end: () => Promise<{ stdout: number; stderr: number }>): Promise<Omit<TaskEnd, "index">> {
  let scope: TaskEnvironmentScope;
  try {
    // @secrets are fetched here, inside the job: their values are in no job definition.
    scope = await enterTaskEnvironment(spec);
  } catch (e) {
    // The attempt ran and failed: a result the orchestrator reports with the source's name.
    const now = Date.now();
    const result: TaskResult = { ok: false, error: errorInfo(e), artifacts: {}, next: [], startedAt: now, finishedAt: now };
    await putJson(store, attemptKey(spec.flowName, spec.runId, spec.step, spec.taskId, spec.attempt, "result.json"), result);
    return { ...(await end()), result };
  }
  scope.maskOutput();
  let result: TaskResult | undefined;
  try {
    const module = await packageModule(spec, store);
    const { flowClass } = await loadFlow(spec.flowFile, spec.exportName, { flowName: spec.flowName, module });
    result = await executeTask(spec, { store, host: nodeHost(), flowClass, redact: scope.redact });
  } catch (e) {
    const info = errorInfo(e);
    process.stderr.write(`[tsflow] task ${spec.runId}/${spec.step}/${spec.taskId} could not run: ${info.type}: ${info.message}\n`);
  } finally {
    scope.restore();
  }
  return { ...(await end()), ...(result ? { result } : { failed: true }) };
}

export async function taskMain(): Promise<number> {
  let items: { spec: TaskSpec; index: number }[];
  let store: Datastore;
  if (process.env.TSFLOW_TASK_SPEC) {
    const spec = JSON.parse(process.env.TSFLOW_TASK_SPEC) as TaskSpec;
    store = await openDatastore(spec.datastore);
    items = [{ spec, index: 0 }];
  } else if (process.env.TSFLOW_TASK_ARRAY_PREFIX) {
    // A child of an array job: its items are a slice of the stored chunks (plugins/executors/batch.ts).
    store = await openDatastore(process.env.TSFLOW_TASK_DATASTORE);
    items = await arrayItems(store);
  } else {
    store = await openDatastore(process.env.TSFLOW_TASK_DATASTORE);
    const bytes = await store.get(process.env.TSFLOW_TASK_SPEC_KEY!);
    if (!bytes) throw new Error(`task spec ${process.env.TSFLOW_TASK_SPEC_KEY} is missing from ${store.url}`);
    items = [{ spec: JSON.parse(new TextDecoder().decode(bytes)) as TaskSpec, index: 0 }];
  }
  store = sharingBlobs(store);
  const capture = captureOutput(store);
  const reports = new EndReports(store, process.env.TSFLOW_TASK_ENDED_PREFIX);
  // One item after the other; an item that cannot run does not stop the next ones (each is a
  // task of its own), but the job then exits 1 so that Batch counts it failed.
  let code = 0;
  for (const [i, { spec, index }] of items.entries()) {
    const end = await runItem(store, spec, capture.begin(spec));
    if (end.failed) code = 1;
    await reports.add({ index, ...end }, i < items.length - 1);
  }
  await store.close?.();
  return code;
}
