/**
 * Object.prototype names in graphs (issue #19 item 16): a transition to `this.toString`, a step
 * or switch case named `__proto__` are graph errors naming the step, through the real `check`
 * and `run`, never a stack trace or a step that silently vanishes.
 */
import { describe, expect, it } from "vitest";
import { cli, fixture, STACK_LINE, tempStore } from "../_helpers.ts";

const CASES: [file: string, message: RegExp][] = [
  ["tostring.ts", /step 'start' goes to 'toString', which is not a @step of the flow/],
  ["ctor.ts", /step 'start' goes to 'constructor', which is not a @step of the flow/],
  ["protostep.ts", /step '__proto__' uses a name reserved by JavaScript; rename it/],
  ["protocase.ts", /a switch case cannot be named '__proto__'/],
];

describe("Object.prototype names in a graph", () => {
  it.each(CASES)("check and run reject %s with a graph error", async (file, message) => {
    const check = await cli(["check", fixture(`proto/${file}`)]);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toMatch(message);
    expect(check.stderr).not.toMatch(STACK_LINE);
    expect(check.stderr).not.toMatch(/unexpected error/);
    const run = await cli(["run", fixture(`proto/${file}`), "--datastore", tempStore()]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toMatch(STACK_LINE);
  });
});
