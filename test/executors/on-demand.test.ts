/**
 * Workers start on demand (issue #19 item 12): `--max-workers 40` on a 3-step linear flow
 * starts no more worker processes than there are CPUs, through the real `tsflow run`.
 */
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { CLI, fixture, tempStore, workersOf } from "../_helpers.ts";

describe("process executor", () => {
  it("starts workers on demand, not --max-workers of them up front", async () => {
    const child = spawn(process.execPath, [CLI, "run", fixture("linear.ts"), "--max-workers", "40", "--datastore", tempStore()], { env: { ...process.env, NO_COLOR: "1" } });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    child.stdout.resume();
    const seen = new Set<number>();
    const sample = setInterval(() => {
      for (const pid of workersOf(child.pid!)) seen.add(pid);
    }, 25);
    const code = await new Promise<number | null>((r) => child.on("close", r));
    clearInterval(sample);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(seen.size).toBeGreaterThan(0);
    expect(seen.size).toBeLessThanOrEqual(availableParallelism());
  });
});
