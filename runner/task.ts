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
 * Last, once its result and logs are stored, each task puts an empty marker under
 * `TSFLOW_TASK_ENDED_PREFIX`, `<index / 100>/<index>-<stdout chunks>-<stderr chunks>[-failed]`
 * (`index`: the item's in its array, 0 for a job alone):
 * the batch executor learns which tasks ended (and how many log chunks to read) from a listing
 * of the blocks of 100 it still waits for, instead of asking Batch about each child or listing
 * each one's logs.
 */
import { putJson } from "../core/_datastore.ts";
import { attemptKey, blobKey } from "../core/_layout.ts";
import { LogWriter } from "../core/_logs.ts";
import { errorInfo, executeTask } from "../core/task.ts";
import type { Bytes, Datastore, TaskSpec } from "../core/types.ts";
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
function captureOutput(store: Datastore): { begin(spec: TaskSpec, index: number): (failed: boolean) => Promise<void> } {
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
    begin(spec, index) {
      const own = new LogWriter(store, { flow: spec.flowName, run: spec.runId, step: spec.step, task: spec.taskId, attempt: spec.attempt }, { flushMs: FLUSH_MS });
      writer = own;
      return async (failed) => {
        await own.close();
        if (writer === own) writer = undefined;
        const prefix = process.env.TSFLOW_TASK_ENDED_PREFIX;
        if (!prefix) return;
        // Not fatal: without it the executor learns the end from Batch, only later.
        await store.put(`${prefix}${markerName(index, own.chunks("stdout"), own.chunks("stderr"), failed)}`, new Uint8Array(0)).catch(() => {});
      };
    },
  };
}

/** An ended marker's name under the submission's prefix (plugins/executors/batch.ts reads it). */
const markerName = (index: number, stdout: number, stderr: number, failed: boolean) => `${Math.floor(index / 100)}/${index}-${stdout}-${stderr}${failed ? "-failed" : ""}`;

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
    const names = (await Promise.all(blocks.map((b) => store.list(`${prefix}${b}/`)))).flat();
    const ended = new Set(names.map((n) => Number.parseInt(n, 10)));
    return items.filter((it) => !ended.has(it.index));
  }
  return items;
}

/**
 * The store as the items of one job see it: small blobs (immutable, content-addressed) are read
 * once per job, not once per item — the items of a slice read the same parents' artifacts (a
 * foreach's list, the parameters). Each read gets its own copy, since a step may change the bytes
 * of a value in place; the reader still verifies the hash.
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
async function runItem(store: Datastore, spec: TaskSpec, end: (failed: boolean) => Promise<void>): Promise<boolean> {
  let scope: TaskEnvironmentScope;
  try {
    // @secrets are fetched here, inside the job: their values are in no job definition.
    scope = await enterTaskEnvironment(spec);
  } catch (e) {
    // The attempt ran and failed: a result the orchestrator reports with the source's name.
    const now = Date.now();
    await putJson(store, attemptKey(spec.flowName, spec.runId, spec.step, spec.taskId, spec.attempt, "result.json"), { ok: false, error: errorInfo(e), artifacts: {}, next: [], startedAt: now, finishedAt: now });
    await end(false);
    return true;
  }
  scope.maskOutput();
  let ok = false;
  try {
    const module = await packageModule(spec, store);
    const { flowClass } = await loadFlow(spec.flowFile, spec.exportName, { flowName: spec.flowName, module });
    await executeTask(spec, { store, host: nodeHost(), flowClass, redact: scope.redact });
    ok = true;
  } catch (e) {
    const info = errorInfo(e);
    process.stderr.write(`[tsflow] task ${spec.runId}/${spec.step}/${spec.taskId} could not run: ${info.type}: ${info.message}\n`);
  } finally {
    scope.restore();
    await end(!ok);
  }
  return ok;
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
  if (items.length > 1) store = sharingBlobs(store);
  const capture = captureOutput(store);
  // One item after the other; an item that cannot run does not stop the next ones (each is a
  // task of its own), but the job then exits 1 so that Batch counts it failed.
  let code = 0;
  for (const { spec, index } of items) {
    if (!(await runItem(store, spec, capture.begin(spec, index)))) code = 1;
  }
  await store.close?.();
  return code;
}
