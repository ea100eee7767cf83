/**
 * A third-party executor in one file: every task attempt runs in a fresh `worker_threads`
 * thread of the orchestrator's own process — cheaper than a process, still stoppable (a thread
 * can be terminated even in a busy loop) and with its own module state and `process.env`.
 *
 *   npx tsflow run examples/pets.ts --executor ./examples/plugins/threads.ts
 *
 * It uses nothing but tsflow's public contract (docs/executors.md): the `Executor` interface,
 * and `tsflow __worker` with `TSFLOW_TASK_SPEC` set, which runs that one task, stores its result,
 * artifacts and logs in the datastore, and exits 0 once the result is stored.
 */
import { resolve } from "node:path";
import { Worker } from "node:worker_threads";
import type { Executor, ExecutorFactory, TaskExit } from "tsflow";

export interface ThreadsOptions {
  /** The tsflow CLI script the threads run. Default: the running CLI (`process.argv[1]`). */
  script?: string;
}

const threadsExecutor: ExecutorFactory<ThreadsOptions> = (options = {}) => {
  const script = resolve(options.script ?? process.env.TSFLOW_THREADS_SCRIPT ?? process.argv[1] ?? "");
  const live = new Set<Worker>();

  return {
    name: "threads",

    run(spec, ctx) {
      return new Promise<TaskExit>((done) => {
        if (ctx.signal.aborted) return done({ completed: false, error: { type: "Cancelled", message: "the run was stopped" } });
        // A thread imports the flow's prebuilt JS module when the spec names one, else builds the flow itself.
        const task = spec.module && /\.m?js$/.test(spec.module) ? spec : { ...spec, module: undefined };
        const thread = new Worker(script, {
          argv: ["__worker"],
          env: { ...process.env, ...spec.env, TSFLOW_TASK_SPEC: JSON.stringify(task) },
          stdout: true,
          stderr: true,
        });
        live.add(thread);
        let stopped: TaskExit["error"];
        const stop = (error: NonNullable<TaskExit["error"]>) => {
          stopped ??= error;
          void thread.terminate();
        };
        thread.stdout.on("data", (chunk: Uint8Array) => ctx.output("stdout", chunk));
        let lastError = "";
        thread.stderr.on("data", (chunk: Uint8Array) => {
          ctx.output("stderr", chunk);
          lastError = new TextDecoder().decode(chunk).trim().split("\n").pop() ?? "";
        });
        const onAbort = () => stop({ type: "Cancelled", message: `task ${spec.runId}/${spec.step}/${spec.taskId} was stopped` });
        ctx.signal.addEventListener("abort", onAbort, { once: true });
        const timer = spec.timeoutSeconds
          ? setTimeout(() => stop({ type: "Timeout", message: `step '${spec.step}' timed out after ${spec.timeoutSeconds} s (@timeout)` }), spec.timeoutSeconds * 1000)
          : undefined;
        let failure: Error | undefined;
        thread.on("error", (e) => (failure = e as Error));
        thread.on("exit", (code) => {
          live.delete(thread);
          clearTimeout(timer);
          ctx.signal.removeEventListener("abort", onAbort);
          // Exit 0: the result is in the datastore, where the orchestrator reads it.
          if (!stopped && code === 0) return done({ completed: true });
          done({
            completed: false,
            error: stopped ?? { type: "WorkerCrashed", message: `the thread running ${spec.runId}/${spec.step}/${spec.taskId} exited with code ${code}: ${failure?.message ?? lastError}` },
          });
        });
      });
    },

    async close() {
      await Promise.all([...live].map((t) => t.terminate()));
    },
  } satisfies Executor;
};

export default threadsExecutor;
