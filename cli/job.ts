/**
 * The entry of a Batch job (`node dist/job.mjs`): one task, given in the job's environment
 * (runner/task.ts), or a slice of an array job's items, in a bundle built for starting fast. A
 * foreach of 1,000 items starts 50 of these (one item each up to 99 items), so what each start
 * costs is paid per slice: this bundle has the AWS SDK and every
 * other package the task path needs inlined (no resolving, reading and lexing of a few hundred
 * CommonJS files per start) and none of the CLI's commands.
 *
 * It is also the library (a code package's `import "tsflow"` resolves to the running bundle,
 * see plugins/executors/_package.ts), so the flow's `FlowSpec` is the runtime's own.
 * Besides cli/main.ts, the one file that calls `process.exit`: a job ends when its task does.
 */
import { workerMain } from "../runner/worker.ts";

export * from "../mod.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const g = globalThis as Record<symbol, unknown>;
if (!g[Symbol.for("tsflow.noAutoMain")] && /job\.(mjs|ts)$/.test(process.argv[1] ?? "")) {
  // Not awaited at the top level: the code package imports this module while the task runs.
  workerMain((code) => process.exit(code)).then(
    (code) => {
      if (process.stdout.writableLength === 0) process.exit(code);
      else process.stdout.once("drain", () => process.exit(code));
    },
    (e) => {
      process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
