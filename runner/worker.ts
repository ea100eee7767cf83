/**
 * A warm worker (`tsflow __worker`): reads commands on stdin, keeps loaded flows and open
 * datastores between tasks, and reports on stdout/stderr with the protocol of
 * `plugins/executors/_protocol.ts`.
 */
import { createInterface } from "node:readline";
import { inspectFlow } from "../core/graph.ts";
import { executeTask, errorInfo } from "../core/task.ts";
import type { TaskSpec } from "../core/types.ts";
import { encodeControl, type WorkerCommand, type WorkerMessage } from "../plugins/executors/_protocol.ts";
import nodeHost from "../plugins/host/node.ts";
import { closeDatastores, openDatastore } from "./stores.ts";
import { loadFlow, packageModule } from "./load.ts";
import { enterTaskEnvironment, type TaskEnvironmentScope } from "./secrets.ts";
import { trace } from "./_trace.ts";

const RSS_EVERY_MS = 200;

export async function workerMain(exit: (code: number) => never): Promise<number> {
  // A task started by a Step Functions state (a batch job): locate it in its run, then as below.
  if (process.env.TSFLOW_SFN) return (await import("../plugins/step-functions/task.ts")).sfnTaskMain();
  // One task given in the environment (a batch job): run it, storing its own logs, and exit.
  if (process.env.TSFLOW_TASK_SPEC || process.env.TSFLOW_TASK_SPEC_KEY || process.env.TSFLOW_TASK_ARRAY_PREFIX) return (await import("./task.ts")).taskMain();
  const nonce = process.env.TSFLOW_WORKER_NONCE ?? "";
  const host = nodeHost();
  // Ctrl-C reaches the whole process group; the orchestrator decides what stops and when.
  process.on("SIGINT", () => {});
  // Control messages bypass the masking of a task's secrets in its output (runner/secrets.ts).
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  const send = (msg: WorkerMessage) => out(encodeControl(nonce, JSON.stringify(msg)));
  const endStderr = () => new Promise<void>((r) => err(encodeControl(nonce, "end"), () => r()));
  // A write's callback comes once its bytes are in the pipe (or the write failed: nobody reads).
  const flushed = (write: typeof out, text: string) => new Promise<void>((r) => write(text, () => r()));

  // The resident size reported with each result (the executor retires a worker that grew too
  // big) costs a read of /proc/self/stat, ~5% of a tiny task: a run of tiny tasks reuses one
  // reading for up to RSS_EVERY_MS; a task that ran longer always gets a fresh one.
  let rssAt = 0;
  let rss = 0;
  const residentSize = (taskStarted: number) => {
    const now = Date.now();
    if (now - rssAt >= RSS_EVERY_MS || now - taskStarted >= RSS_EVERY_MS / 4) {
      rss = process.memoryUsage.rss();
      rssAt = now;
    }
    return rss;
  };

  const runTask = async (spec: TaskSpec) => {
    const taskStarted = Date.now();
    let msg: WorkerMessage;
    let scope: TaskEnvironmentScope | undefined;
    try {
      // @environment and @secrets: this task's environment only, restored after it.
      scope = await enterTaskEnvironment(spec);
      scope.maskOutput();
      const store = await openDatastore(spec.datastore);
      const module = await packageModule(spec, store);
      const { flowClass } = await loadFlow(spec.flowFile, spec.exportName, { flowName: spec.flowName, module });
      // Only a @timeout needs to know when the step itself starts (one message less per task).
      if (spec.timeoutSeconds) send({ type: "started" });
      const result = await executeTask(spec, { store, host, flowClass, redact: scope.redact });
      msg = { type: "done", result, rss: residentSize(taskStarted) };
    } catch (e) {
      msg = { type: "done", error: errorInfo(e), rss: residentSize(taskStarted) };
    } finally {
      scope?.restore();
    }
    await endStderr();
    send(msg);
  };

  trace("worker ready");
  send({ type: "ready", pid: process.pid });
  // The orchestrator closes stdin only when idle workers should leave. If it closes while a
  // task runs, the orchestrator is gone (killed, crashed): nobody will collect the result, so
  // stop now instead of running a possibly endless step as an orphan. main.ts hands us its exit:
  // returning would not do, since the step still holds the event loop.
  let busy = false;
  process.stdin.once("end", () => {
    if (busy) exit(1);
  });
  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line) as WorkerCommand;
    if (cmd.type === "load") {
      // Load ahead of the first task, and read its graph (cached per class), which the first
      // task needs; a failure is reported when a task needs the flow.
      loadFlow(cmd.flowFile, cmd.exportName, { flowName: cmd.flowName, module: cmd.module })
        .then(({ flowClass }) => inspectFlow(flowClass))
        .catch(() => {});
    } else if (cmd.type === "task") {
      busy = true;
      await runTask(cmd.spec);
      busy = false;
    }
  }
  // The orchestrator is done with this worker. Say so as the very last output on both streams,
  // then leave at once: the executor stops waiting at `bye` instead of at the process's end,
  // since tearing down a big heap (a 100 MB artifact) takes the kernel 10-20 ms and this worker
  // has nothing left to do. Every task has settled its writes before its `done`; what the
  // datastores still do in the background (removing a discarded staged file) ends here, before
  // the bye, since the orchestrator's exit kills a worker still running after it.
  await closeDatastores();
  trace("exit");
  // The CLI bundle's code cache (cli/_script-loader.ts), when this worker found none, is written
  // now: once the orchestrator has the bye it may kill this process. Once per build.
  (globalThis as Record<symbol, { save?: () => void } | undefined>)[Symbol.for("tsflow.scriptLoad")]?.save?.();
  // Nobody reading any more (the orchestrator is gone) is no error now: the worker leaves anyway.
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});
  await Promise.all([flushed(out, encodeControl(nonce, JSON.stringify({ type: "bye" } satisfies WorkerMessage))), flushed(err, encodeControl(nonce, "bye"))]);
  return exit(0);
}
