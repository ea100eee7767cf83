/**
 * Load: a wide foreach completes within time and memory bounds. The orchestrator's resident
 * memory is sampled from /proc/<pid>/status while it runs.
 */
import { describe, expect, it } from "vitest";
import { fixture, spawnCli, tempStore } from "../_helpers.ts";
import { countDone, rssKb, SOAK } from "./_util.ts";

const WIDTH = SOAK ? 10_000 : 2_000;

describe("a wide foreach", () => {
  it(`${WIDTH}-way foreach completes in ≤ 60 s with orchestrator RSS ≤ 500 MB`, async () => {
    const root = tempStore();
    const t0 = Date.now();
    const run = spawnCli(["run", fixture("foreach-many.ts"), "--datastore", root, "--n", String(WIDTH), "--max-num-splits", "10000"]);
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(run.child.pid!))), 100);
    const { code } = await run.exited;
    clearInterval(sampler);
    const secs = (Date.now() - t0) / 1000;
    console.log(`[reliability] ${WIDTH}-way foreach: ${secs.toFixed(1)} s, orchestrator peak RSS ${(peak / 1024).toFixed(0)} MB`);
    expect(code, run.stderr().slice(-2000)).toBe(0);
    expect(run.stdout()).toMatch(new RegExp(`foreach of ${WIDTH} tasks`));
    expect(countDone(root)).toBe(WIDTH + 3);
    expect(secs).toBeLessThanOrEqual(60);
    expect(peak).toBeLessThanOrEqual(500 * 1024);
  }, 180_000);
});
