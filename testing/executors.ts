/**
 * The conformance suite every executor passes, ours and third parties' (the datastore suite's
 * twin). An executor's own test file calls `executorSuite` with a factory and adds what only
 * that executor can be asked (`additionalTests`).
 *
 * Each test runs a small flow from `fixtures/suite.ts` end to end through `runFlow`, so what is
 * checked is what users see: the run's status, the failing task's error, and the logs.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLog } from "../core/_logs.ts";
import type { FinishedRun } from "../runner/run.ts";
import type { Datastore, Executor } from "../core/types.ts";
import { runFlow } from "../mod.ts";
import fsDatastore from "../plugins/datastores/fs.ts";
import { CrashFlow, FailFlow, LargeFlow, LogsFlow, OkFlow, RetryFlow, SleepFlow, TimeoutFlow } from "./fixtures/suite.ts";

const flows = { OkFlow, FailFlow, CrashFlow, TimeoutFlow, SleepFlow, LogsFlow, RetryFlow, LargeFlow };

export const FIXTURES = new URL("./fixtures/suite.ts", import.meta.url).pathname;

export interface SuiteExecutor {
  executor: Executor;
  /** The datastore flows run against. Default: a fresh local directory. */
  datastore?: Datastore;
  /** Runs after the executor is closed: stop servers, remove directories. */
  cleanup?: () => Promise<void>;
}

export interface SuiteOptions {
  /** Tests this executor cannot pass, by title, each group with the reason shown in the report. */
  skip?: { reason: string; tests: string[] }[];
  /** Executor-specific tests, registered inside the suite's `describe`. */
  additionalTests?: (get: () => SuiteExecutor & { datastore: Datastore }) => void;
  /** Skip the whole suite (e.g. no docker daemon answers), with the reason. */
  skipAll?: string;
}

/** Titles of the suite's tests, the names `skip` accepts. */
export const TESTS = {
  success: "a flow runs green and its artifacts travel between tasks",
  failure: "a step that throws fails the run with the step's error",
  crash: "a task whose process dies fails cleanly as a crash",
  timeout: "@timeout stops a busy task",
  cancel: "aborting the run stops a running task promptly",
  logs: "stdout and stderr reach the reporter and the datastore",
  retries: "@retry runs new attempts until one succeeds",
  large: "a 50 MB artifact travels from one task to the next",
} as const;

/** Runs one fixture flow through the executor under test. */
export function runFixture(s: SuiteExecutor & { datastore: Datastore }, flow: keyof typeof flows, extra: Parameters<typeof runFlow>[1] = {}): Promise<FinishedRun> {
  return runFlow<unknown>(flows[flow], { file: FIXTURES, exportName: flow, executor: s.executor, datastore: s.datastore, ...extra });
}

export function executorSuite(name: string, make: () => Promise<SuiteExecutor>, options: SuiteOptions = {}) {
  const skipped = new Map<string, string>();
  for (const group of options.skip ?? []) for (const t of group.tests) skipped.set(t, group.reason);
  const test = (title: string, fn: () => Promise<void>, timeoutMs = 120_000) => {
    const reason = skipped.get(title);
    if (reason) it.skip(`${title} (skipped: ${reason})`, fn);
    else it(title, fn, timeoutMs);
  };

  (options.skipAll ? describe.skip : describe)(`executor: ${name}${options.skipAll ? ` (skipped: ${options.skipAll})` : ""}`, () => {
    let s: SuiteExecutor & { datastore: Datastore };
    let dir: string | undefined;
    beforeAll(async () => {
      const made = await make();
      if (!made.datastore) dir = await mkdtemp(join(tmpdir(), `tsflow-executor-${name.replace(/[^\w-]+/g, "_")}-`));
      s = { ...made, datastore: made.datastore ?? fsDatastore({ root: dir! }) };
    }, 180_000);
    afterAll(async () => {
      await s?.executor.close?.();
      await s?.cleanup?.();
      if (dir) await rm(dir, { recursive: true, force: true });
    }, 60_000);

    test(TESTS.success, async () => {
      const run = await runFixture(s, "OkFlow");
      expect(run.error).toBeUndefined();
      expect(run.successful).toBe(true);
      expect(run.tasks).toBe(2);
    });

    test(TESTS.failure, async () => {
      const run = await runFixture(s, "FailFlow");
      expect(run.successful).toBe(false);
      expect(run.error?.message).toContain("boom-from-the-step");
      expect(run.error?.pathspec).toMatch(/\/boom\//);
    });

    test(TESTS.crash, async () => {
      const run = await runFixture(s, "CrashFlow");
      expect(run.successful).toBe(false);
      expect(run.error?.pathspec).toMatch(/\/die\//);
      expect(`${run.error?.type} ${run.error?.message}`).toMatch(/crash|exit|code 3/i);
    });

    test(TESTS.timeout, async () => {
      const t0 = Date.now();
      const run = await runFixture(s, "TimeoutFlow");
      expect(run.successful).toBe(false);
      expect(run.error?.type).toBe("Timeout");
      expect(Date.now() - t0).toBeLessThan(60_000);
    });

    test(TESTS.cancel, async () => {
      const controller = new AbortController();
      let started = 0;
      const t0 = Date.now();
      const run = await runFixture(s, "SleepFlow", {
        signal: controller.signal,
        reporter: {
          taskOutput(task, _stream, text) {
            if (task.step === "wait" && text.includes("waiting") && !started) {
              started = Date.now();
              setTimeout(() => controller.abort(), 200);
            }
          },
        },
      });
      expect(started).toBeGreaterThan(0);
      expect(run.successful).toBe(false);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(Date.now() - t0).toBeLessThan(100_000);
    });

    test(TESTS.logs, async () => {
      const seen = { stdout: "", stderr: "" };
      const run = await runFixture(s, "LogsFlow", { reporter: { taskOutput: (_t, stream, text) => void (seen[stream] += text) } });
      expect(run.successful, JSON.stringify(run.error)).toBe(true);
      expect(seen.stdout).toContain("hello-stdout");
      expect(seen.stdout).toContain("second-line");
      expect(seen.stderr).toContain("hello-stderr");
      const stored = await readLog(s.datastore, { flow: "LogsFlow", run: run.runId, step: "start", task: "1", attempt: 0 }, "stdout");
      expect(new TextDecoder().decode(stored ?? new Uint8Array())).toMatch(/hello-stdout[\s\S]*second-line/);
    });

    test(TESTS.retries, async () => {
      const attempts: number[] = [];
      const run = await runFixture(s, "RetryFlow", { reporter: { taskFinished: (t) => void (t.step === "flaky" && attempts.push(t.attempt)) } });
      expect(run.error).toBeUndefined();
      expect(run.successful).toBe(true);
      expect(attempts).toEqual([0, 1, 2]);
    });

    test(TESTS.large, async () => {
      const run = await runFixture(s, "LargeFlow");
      expect(run.error).toBeUndefined();
      expect(run.successful).toBe(true);
    });

    options.additionalTests?.(() => s);
  });
}
