/** Compiles test/fixtures/inputs-types.ts: `Inputs<F>` entries must be typed from the flow class. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../_helpers.ts";

describe("Inputs<F> types", () => {
  it("type-checks the expectTypeOf assertions", () => {
    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const r = spawnSync(process.execPath, [tsc, "-p", join(ROOT, "test/fixtures/tsconfig.types.json")], { cwd: ROOT, encoding: "utf8" });
    const errors = `${r.stdout}${r.stderr}`.split("\n").filter((l) => l.includes("error TS"));
    expect(errors).toEqual([]);
    expect(r.status).toBe(0);
  }, 60_000);
});
