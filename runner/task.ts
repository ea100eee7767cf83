/**
 * One task run where no orchestrator holds a pipe to it (an AWS Batch job): `tsflow __worker`
 * with the spec in `TSFLOW_TASK_SPEC` (JSON) or, when too big for a job's environment, in the
 * datastore at `TSFLOW_TASK_SPEC_KEY` of `TSFLOW_TASK_DATASTORE`; a child of an array job
 * (a foreach on Batch) reads item AWS_BATCH_JOB_ARRAY_INDEX of the chunks at `TSFLOW_TASK_ARRAY_PREFIX`.
 *
 * The task stores its own output in `<attempt>/stdout|stderr` while it runs (echoing it, so
 * the job's own log has it too): that is how the orchestrator streams a remote task's logs.
 * Exit code 0 means the attempt wrote its result (a step error included); anything else is an
 * infrastructure failure that the executor reports from the job's status.
 *
 * Last, once its result and logs are stored, the task puts an empty marker under
 * `TSFLOW_TASK_ENDED_PREFIX`, `<index / 100>/<index>-<stdout chunks>-<stderr chunks>[-failed]`:
 * the batch executor learns which tasks ended (and how many log chunks to read) from a listing
 * of the blocks of 100 it still waits for, instead of asking Batch about each child or listing
 * each one's logs.
 */
import { putJson } from "../core/_datastore.ts";
import { attemptKey } from "../core/_layout.ts";
import { LogWriter } from "../core/_logs.ts";
import { errorInfo, executeTask } from "../core/task.ts";
import type { Datastore, TaskSpec } from "../core/types.ts";
import nodeHost from "../plugins/host/node.ts";
import { openDatastore } from "./stores.ts";
import { loadFlow, packageModule } from "./load.ts";
import { enterTaskEnvironment, type TaskEnvironmentScope } from "./secrets.ts";

const FLUSH_MS = Number(process.env.TSFLOW_LOG_FLUSH_MS ?? 1000);

/**
 * Appends everything written to stdout/stderr to the attempt's log in the datastore, one new
 * chunk per flush (core/_logs.ts): the task is its log's only writer, and its bytes are
 * written once, however long it runs.
 */
function captureOutput(store: Datastore, spec: TaskSpec): (failed: boolean) => Promise<void> {
  const writer = new LogWriter(store, { flow: spec.flowName, run: spec.runId, step: spec.step, task: spec.taskId, attempt: spec.attempt }, { flushMs: FLUSH_MS });
  for (const name of ["stdout", "stderr"] as const) {
    const stream = process[name];
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      writer.add(name, typeof chunk === "string" ? new TextEncoder().encode(chunk) : new Uint8Array(chunk as Uint8Array));
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
  return async (failed) => {
    await writer.close();
    const prefix = process.env.TSFLOW_TASK_ENDED_PREFIX;
    if (!prefix) return;
    const index = Number(process.env.AWS_BATCH_JOB_ARRAY_INDEX ?? 0);
    const name = `${Math.floor(index / 100)}/${index}-${writer.chunks("stdout")}-${writer.chunks("stderr")}${failed ? "-failed" : ""}`;
    // Not fatal: without it the executor learns the end from Batch, only later.
    await store.put(`${prefix}${name}`, new Uint8Array(0)).catch(() => {});
  };
}

export async function taskMain(): Promise<number> {
  let spec: TaskSpec;
  let store: Datastore;
  if (process.env.TSFLOW_TASK_SPEC) {
    spec = JSON.parse(process.env.TSFLOW_TASK_SPEC) as TaskSpec;
    store = await openDatastore(spec.datastore);
  } else if (process.env.TSFLOW_TASK_ARRAY_PREFIX) {
    // A child of an array job: its spec is item `index` of the stored chunks (plugins/executors/batch.ts).
    const index = Number(process.env.AWS_BATCH_JOB_ARRAY_INDEX);
    const size = Number(process.env.TSFLOW_TASK_ARRAY_CHUNK);
    if (!Number.isInteger(index) || index < 0 || !(size > 0)) throw new Error(`array job child without a valid AWS_BATCH_JOB_ARRAY_INDEX (${process.env.AWS_BATCH_JOB_ARRAY_INDEX}) or TSFLOW_TASK_ARRAY_CHUNK`);
    store = await openDatastore(process.env.TSFLOW_TASK_DATASTORE);
    const key = `${process.env.TSFLOW_TASK_ARRAY_PREFIX}${Math.floor(index / size)}.json`;
    const bytes = await store.get(key);
    const item = bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as TaskSpec[])[index % size] : undefined;
    if (!item) throw new Error(`task spec ${index} of array ${key} is missing from ${store.url}`);
    spec = item;
  } else {
    store = await openDatastore(process.env.TSFLOW_TASK_DATASTORE);
    const bytes = await store.get(process.env.TSFLOW_TASK_SPEC_KEY!);
    if (!bytes) throw new Error(`task spec ${process.env.TSFLOW_TASK_SPEC_KEY} is missing from ${store.url}`);
    spec = JSON.parse(new TextDecoder().decode(bytes)) as TaskSpec;
  }
  const stopCapture = captureOutput(store, spec);
  let scope: TaskEnvironmentScope;
  try {
    // @secrets are fetched here, inside the job: their values are in no job definition.
    scope = await enterTaskEnvironment(spec);
  } catch (e) {
    // The attempt ran and failed: a result the orchestrator reports with the source's name.
    const now = Date.now();
    await putJson(store, attemptKey(spec.flowName, spec.runId, spec.step, spec.taskId, spec.attempt, "result.json"), { ok: false, error: errorInfo(e), artifacts: {}, next: [], startedAt: now, finishedAt: now });
    await stopCapture(false);
    await store.close?.();
    return 0;
  }
  scope.maskOutput();
  let code = 1;
  try {
    const module = await packageModule(spec, store);
    const { flowClass } = await loadFlow(spec.flowFile, spec.exportName, { flowName: spec.flowName, module });
    await executeTask(spec, { store, host: nodeHost(), flowClass, redact: scope.redact });
    code = 0;
  } catch (e) {
    const info = errorInfo(e);
    process.stderr.write(`[tsflow] task ${spec.runId}/${spec.step}/${spec.taskId} could not run: ${info.type}: ${info.message}\n`);
  } finally {
    scope.restore();
    await stopCapture(code !== 0);
    await store.close?.();
  }
  return code;
}
