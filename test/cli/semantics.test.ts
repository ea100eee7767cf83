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
