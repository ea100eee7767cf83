/**
 * `--executor <a file that is not a plugin>` (issue #19 item 18): a flow file, a factory that
 * throws, a missing file or a directory is one clear error naming the option's value, exit 2,
 * never a stack trace. Through the real CLI.
 */
import { describe, expect, it } from "vitest";
import { cli, fixture, STACK_LINE, tempStore } from "../_helpers.ts";

describe("--executor with something that is not an executor plugin", () => {
  it.each([
    [fixture("linear.ts"), /executor plugin '.*linear\.ts' default-exports a class \(a flow\?\), not a factory/],
    [fixture("plugins/throwing-executor.ts"), /executor plugin '.*throwing-executor\.ts' failed to start with options \{\}: factory boom/],
    [fixture("plugins/nope.ts"), /executor plugin '.*nope\.ts' is not a file/],
    [fixture("plugins"), /executor plugin '.*plugins' is not a file/],
  ])("%s", async (executor, message) => {
    const r = await cli(["run", fixture("linear.ts"), "--executor", executor, "--datastore", tempStore()]);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(r.code).toBe(2);
  });
});
