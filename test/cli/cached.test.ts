/** `@cached()` steps through the real CLI: reused when code, inputs and parameters match; --no-cache forces a run. */
import { describe, expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { cli, cliRun, fixture, tempStore } from "../_helpers.ts";

const file = fixture("cached-step.ts");
const computed = (out: string) => out.includes("computing square");

describe("@cached", () => {
  it("reuses a task with the same code, inputs and parameters, and re-runs otherwise", async () => {
    const ds = tempStore();
    const first = await cliRun(file, ds);
    expect(first.code, first.stderr).toBe(0);
    expect(computed(first.stdout)).toBe(true);

    const second = await cliRun(file, ds);
    expect(second.code, second.stderr).toBe(0);
    expect(computed(second.stdout)).toBe(false);
    expect(second.stdout).toMatch(/\/square\/\d+\] cached from \d+-\w+\/square\/\d+/);

    const other = await cliRun(file, ds, "--n", "5");
    expect(computed(other.stdout)).toBe(true);

    const forced = await cliRun(file, ds, "--no-cache");
    expect(forced.code, forced.stderr).toBe(0);
    expect(computed(forced.stdout)).toBe(true);

    const client = createClient(fsDatastore({ root: ds }), nodeHost());
    const runs = await client.Flow.get("CachedStepFlow").runs();
    expect(runs.length).toBe(4);
    const cachedRun = runs[2]!;
    const [sq] = await cachedRun.step("square").tasks();
    expect(sq!.clonedFrom).toMatch(new RegExp(`^${runs[3]!.id}/square/`));
    expect(await cachedRun.data("squared")).toBe(16);
    expect(await runs[1]!.data("squared")).toBe(36);

    // Deleting the run a cache entry points at makes gc drop the entry; the next run computes again.
    await cli(["delete", `CachedStepFlow/${runs[3]!.id}`, "--datastore", ds]);
    const gc = await cli(["gc", "--datastore", ds]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toContain("removed 1 stale @cached entries");
    const after = await cliRun(file, ds);
    expect(computed(after.stdout)).toBe(true);
  });

  it("--with cached caches every step", async () => {
    const ds = tempStore();
    await cliRun(fixture("linear.ts"), ds, "--with", "cached");
    const again = await cliRun(fixture("linear.ts"), ds, "--with", "cached");
    expect(again.code, again.stderr).toBe(0);
    expect((again.stdout.match(/cached from/g) ?? []).length).toBe(3);
  });
});
