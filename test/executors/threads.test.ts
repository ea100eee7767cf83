import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import threadsExecutor from "../../examples/plugins/threads.ts";
import { cli, DIST_CLI } from "../_helpers.ts";
import { executorSuite } from "../../testing/executors.ts";

// The third-party example plugin passes the same suite as the built-in executors.
executorSuite("threads (examples/plugins)", async () => ({ executor: threadsExecutor({ script: DIST_CLI }) }), {
  additionalTests: () => {
    it("runs examples/pets.ts from the CLI with --executor ./examples/plugins/threads.ts", async () => {
      const dir = await mkdtemp(join(tmpdir(), "tsflow-threads-"));
      try {
        const out = await cli(["run", "examples/pets.ts", "--executor", "./examples/plugins/threads.ts", "--datastore", dir], { timeoutMs: 120_000 });
        expect(out.stderr + out.stdout).toContain("total of 6 pets");
        expect(out.code).toBe(0);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  },
});
