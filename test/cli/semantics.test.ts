/** Issue #11 behaviour seen through the real CLI: what `tsflow run` and `tsflow check` print. */
import { describe, expect, it } from "vitest";
import { cli, fixture, tempStore } from "../_helpers.ts";

describe("tsflow run", () => {
  it("@catchError without @retry announces no retry: it says the error is stored and the run succeeds", async () => {
    const ds = tempStore();
    const r = await cli(["run", fixture("semantics/catch-end.ts"), "--datastore", ds]);
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    expect(out).not.toMatch(/retry/i);
    expect(out).toContain("✖ Error: end blew up (attempt 1 failed; @catchError stores the error in 'err' and the flow goes on)");
    expect(out).toMatch(/\/end\/\d+\] storing the error \(@catchError\)/);
  });
});

describe("tsflow check", () => {
  it("accepts switch cases that converge, each through a foreach or branches into the same steps", async () => {
    const file = fixture("semantics/switch-converge.ts");
    for (const [name, flow] of [
      ["default", "ConvergeForeachFlow"],
      ["ConvergeBranchFlow", "ConvergeBranchFlow"],
      ["ConvergeInBranchFlow", "ConvergeInBranchFlow"],
    ]) {
      const r = await cli(["check", file, "--flow", name!]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`✔ ${flow}: the graph is valid`);
    }
  });

  it("a switch case into a running parallel branch: names the step, the split and the rule", async () => {
    const r = await cli(["check", fixture("broken/switch-into-branch.ts")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("1 graph error");
    expect(r.stderr).toContain("step 'b' [not-a-join]: step 'b' receives the parallel branches of 'start', which run at the same time, and must be a join");
  });

  it("an if/else around two this.next calls: the conflicting transitions, and no false cycle", async () => {
    const r = await cli(["check", fixture("broken/if-else-next.ts")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("1 graph error");
    expect(r.stderr).toContain("step 'a' [conflicting-next]: step 'a' calls this.next(this.a) and this.next(this.end)");
    expect(r.stderr).not.toMatch(/cycle|unreachable/);
  });
});
