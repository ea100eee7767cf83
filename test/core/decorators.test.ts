/** @retry, @catchError and @timeout acting for real, through the process executor. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { runFlow } from "tsflow";
import { describe, expect, it } from "vitest";
import { cliRun, fixture, latestRun, stepArtifacts, tempStore } from "../_helpers.ts";
import RetryFlow, { AlwaysFailsFlow } from "../fixtures/retry.ts";

const ds = tempStore();

describe("step decorators", () => {
  it("@retry({ times: 2 }): a step failing twice then succeeding finishes the run", async () => {
    const r = await runFlow(RetryFlow, { datastore: ds, executor: "process", maxWorkers: 1 });
    expect(r.error).toBeUndefined();
    const [flaky] = await stepArtifacts(ds, "RetryFlow", r.runId, "flaky");
    expect(flaky!.attempts).toBe(3);
  });

  it("@retry gives up after `times` retries and the run fails with the last error", async () => {
    const r = await runFlow(AlwaysFailsFlow, { datastore: ds, executor: "process", exportName: "AlwaysFailsFlow", maxWorkers: 1 });
    expect(r.successful).toBe(false);
    expect(r.error?.message).toBe("still broken on attempt 2");
    const task = join(ds, "flows", "AlwaysFailsFlow", "runs", r.runId, "tasks", "broken");
    const [id] = readdirSync(task);
    expect(readdirSync(join(task, id!)).filter((f) => /^\d+$/.test(f)).sort()).toEqual(["0", "1", "2"]);
    expect(existsSync(join(task, id!, "done.json"))).toBe(false);
  });

  it("@catchError({ var: 'err' }) stores the error and the flow goes on", async () => {
    const res = await cliRun(fixture("catch.ts"), ds);
    expect(res.code, res.stderr).toBe(0);
    const run = latestRun(ds, "CatchFlow");
    expect(run.status).toBe("succeeded");
    const [fails] = await stepArtifacts(ds, "CatchFlow", run.runId, "fails");
    expect(fails!.err).toBeInstanceOf(Error);
    expect((fails!.err as Error).message).toBe("the model exploded");
    const [end] = await stepArtifacts(ds, "CatchFlow", run.runId, "end");
    expect(end!.after).toBe("caught: the model exploded");
  });

  it("@timeout({ seconds: 1 }) kills a step stuck in a loop", async () => {
    const t0 = Date.now();
    const res = await cliRun(fixture("timeout.ts"), ds);
    expect(res.code).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(res.stderr).toMatch(/Timeout: step 'spin' timed out after 1 s/);
    expect(latestRun(ds, "TimeoutFlow").status).toBe("failed");
  });

  it("@timeout counts from the start of the step, not from the worker's start and flow load", async () => {
    const res = await cliRun(fixture("timeout-slow-load.ts"), ds, "--fresh-workers");
    expect(res.code, res.stderr).toBe(0);
  });
});
