/**
 * Runs tasks inside the calling process, one at a time: no isolation and no way to stop a
 * step stuck in a loop, but no process start either. For tests and notebooks that define a
 * flow inline (where no worker could import it), and as the simplest reference executor.
 */
import { errorInfo, executeTask } from "../../core/task.ts";
import type { Datastore, Executor, Host, TaskExit, TaskSpec } from "../../core/types.ts";

export const NAME = "inline";

export interface InlineOptions {
  flowClass: Function;
  store: Datastore;
  host: Host;
  /**
   * Sets a task's environment (`@environment`, `@secrets`) in this process for the attempt and
   * masks its secrets; the runner passes runner/secrets.ts. Without it, neither applies.
   */
  environment?: (spec: TaskSpec) => Promise<{ redact(text: string): string; maskOutput(): void; restore(): void }>;
}

export default function inlineExecutor(options: InlineOptions): Executor {
  // Steps share the process-wide task context (`current`, `this.next`), so tasks take turns —
  // and a step that timed out keeps its turn until it really ends (it cannot be killed), so it
  // never runs beside the next task.
  let chain: Promise<unknown> = Promise.resolve();
  return {
    name: NAME,
    inProcess: true,
    run(spec, context) {
      let settled: Promise<unknown> = Promise.resolve();
      const attempt = async (): Promise<TaskExit> => {
        if (context.signal.aborted) return { completed: false, error: { type: "Cancelled", message: "the run was stopped" } };
        let scope: Awaited<ReturnType<NonNullable<InlineOptions["environment"]>>> | undefined;
        try {
          scope = await options.environment?.(spec);
        } catch (e) {
          return { completed: false, error: errorInfo(e) };
        }
        scope?.maskOutput();
        const work = executeTask(spec, { ...options, redact: scope?.redact })
          .then((result): TaskExit => ({ completed: true, result }))
          .finally(() => scope?.restore());
        settled = work.catch(() => {});
        if (!spec.timeoutSeconds) return work;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<TaskExit>((resolve) => {
          timer = setTimeout(() => resolve({ completed: false, error: { type: "Timeout", message: `step '${spec.step}' timed out after ${spec.timeoutSeconds} s (@timeout); the inline executor cannot stop it, so it runs on until it ends` } }), spec.timeoutSeconds! * 1000);
        });
        try {
          return await Promise.race([work, timeout]);
        } finally {
          clearTimeout(timer);
        }
      };
      const next = chain.then(attempt, attempt);
      chain = next.then(() => settled, () => settled);
      return next;
    },
  };
}
