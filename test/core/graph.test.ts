/** The graph rules: `tsflow check` rejects each broken flow naming the step and the rule. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, fixture, STACK_LINE } from "../_helpers.ts";

const dir = fixture("broken");
/** Broken-graph fixtures: each starts with `// rule: id[, id…]`. */
const cases = readdirSync(dir)
  .filter((f) => f.endsWith(".ts"))
  .map((f) => ({ file: f, rules: /^\/\/ rule: (.+)$/m.exec(readFileSync(join(dir, f), "utf8").split("\n")[0] ?? "")?.[1]?.split(/,\s*/) }))
  .filter((c): c is { file: string; rules: string[] } => Boolean(c.rules));

describe("tsflow check on broken flows", () => {
  it("has at least 8 broken-graph fixtures", () => {
    expect(cases.length).toBeGreaterThanOrEqual(8);
  });

  it.each(cases)("$file is rejected for $rules", async ({ file, rules }) => {
    const r = await cli(["check", join(dir, file)]);
    expect(r.code, r.stderr).not.toBe(0);
    for (const rule of rules) expect(r.stderr).toMatch(new RegExp(`step '[A-Za-z_]\\w*' \\[${rule}\\]: .*\\S`));
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it("accepts valid flows, including a switch that loops on its own step", async () => {
    for (const f of ["examples/pets.ts", "examples/switch.ts", "test/fixtures/nested-foreach.ts"]) {
      const r = await cli(["check", f]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/the graph is valid/);
    }
  });
});
