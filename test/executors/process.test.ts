import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import processExecutor from "../../plugins/executors/process.ts";
import { selfCommand } from "../../plugins/host/self.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { runFlow } from "../../mod.ts";
import { executorSuite } from "../../testing/executors.ts";
import { stepArtifacts } from "../_helpers.ts";
import GrowFlow from "./fixtures/grow.ts";
import SlowStartFlow from "./fixtures/slow-start.ts";

executorSuite("process", async () => ({ executor: processExecutor() }));
executorSuite("process (fresh workers)", async () => ({ executor: processExecutor({ fresh: true }) }));

describe("process executor: worker memory", () => {
  const file = new URL("./fixtures/grow.ts", import.meta.url).pathname;
  const pidsOf = async (mb: number) => {
    const dir = await mkdtemp(join(tmpdir(), "tsflow-grow-"));
    const executor = processExecutor({ maxRssMb: 300 });
    try {
      const store = fsDatastore({ root: dir });
      const run = await runFlow(GrowFlow, { file, executor, datastore: store, maxWorkers: 1, params: { mb } });
      expect(run.error).toBeUndefined();
      const [joined] = await stepArtifacts(dir, "GrowFlow", run.runId, "join");
      const pids = joined!.pids as number[];
      expect(pids).toHaveLength(4);
      return pids;
    } finally {
      await executor.close?.();
      await rm(dir, { recursive: true, force: true });
    }
  };

  it("a worker that grew past maxRssMb after a task is retired: the next task runs in a new one", async () => {
    // Each task keeps 400 MB alive in its worker: every worker ends its one task above 300 MB.
    expect(new Set(await pidsOf(400)).size).toBe(4);
  });

  it("workers that stay small run task after task", async () => {
    expect(new Set(await pidsOf(0)).size).toBe(1);
  });
});

describe("process executor: starting workers", () => {
  it("a task sent while every worker is still starting goes to the first one ready, not the newest", async () => {
    // Two workers warm up (--max-workers 2); the second one is held back until `start` ran. The
    // task used to be tied to the newest worker, and waited for it while the other one idled.
    const dir = await mkdtemp(join(tmpdir(), "tsflow-slowstart-"));
    const wrapper = new URL("./fixtures/slow-start.mjs", import.meta.url).pathname;
    const executor = processExecutor({ command: [process.execPath, wrapper, ...selfCommand()], env: { TSFLOW_TEST_DIR: dir } });
    try {
      const file = new URL("./fixtures/slow-start.ts", import.meta.url).pathname;
      const run = await runFlow(SlowStartFlow, { file, executor, datastore: fsDatastore({ root: join(dir, "store") }), maxWorkers: 2 });
      expect(run.error).toBeUndefined();
      const [start] = await stepArtifacts(join(dir, "store"), "SlowStartFlow", run.runId, "start");
      expect(start!.slow).toBe(false);
    } finally {
      await executor.close?.();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
