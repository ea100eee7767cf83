/**
 * A failed task's error is visible without the viewer (issue #11 items 11 and 14): `logs`
 * ends a failed attempt's stderr with its error, prints every task of a step under a header,
 * `dump` of a failed run lists its tasks and the exception, `runs` names the failing step and
 * who started each run, and follows the namespace rule (`--all`).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, cli, exec, fixture, latestRun, STACK_LINE, tempStore } from "../_helpers.ts";

const ds = tempStore();
let run = "";
const as = (user: string) => ({ env: { TSFLOW_USER: user } });

beforeAll(async () => {
  const r = await cli(["run", fixture("failing-foreach.ts"), "--max-workers", "1", "--datastore", ds], as("alice"));
  expect(r.code).toBe(1);
  run = `FailingForeachFlow/${latestRun(ds, "FailingForeachFlow").runId}`;
});

/** The task id of the foreach task with `index`, read from `logs`' headers. */
async function taskOf(index: number): Promise<string> {
  const r = await cli(["logs", `${run}/work`, "--datastore", ds]);
  const m = new RegExp(`(${run}/work/\\d+) \\[index ${index}\\]`).exec(r.stdout);
  expect(m, r.stdout).not.toBeNull();
  return m![1]!;
}

describe("logs", () => {
  it("of a step with several tasks prints each task's output under a header", async () => {
    const r = await cli(["logs", `${run}/work`, "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    for (const i of [0, 1, 2]) {
      const header = lines.findIndex((l) => new RegExp(`^${run}/work/\\d+ \\[index ${i}\\] \\(attempt 0, (succeeded|failed)\\)$`).test(l));
      expect(header, r.stdout).toBeGreaterThanOrEqual(0);
      expect(lines[header + 1]).toBe(`  working on item ${i}`);
    }
  });

  it("--stderr of a failed task ends with the error's type, message and the user's frames", async () => {
    const failed = await taskOf(2);
    const r = await cli(["logs", failed, "--stderr", "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe("warning from item 2");
    expect(lines[1]).toBe("RangeError: item 2 is out of range");
    expect(lines[2]).toMatch(/^ {4}at explode \(.*failing-foreach\.ts:\d+:\d+\)$/);
    expect(r.stdout).not.toMatch(/\/(core|runner|cli)\/\w+\.ts/);
  });

  it("of a failed task's stdout says on stderr that the attempt failed and where the stack is", async () => {
    const failed = await taskOf(2);
    const r = await cli(["logs", failed, "--datastore", ds]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("working on item 2\n");
    expect(r.stderr).toMatch(new RegExp(`${failed} attempt 0 failed: RangeError: item 2 is out of range \\(the stack: tsflow logs ${failed} --stderr\\)`));
  });

  it("of a successful task is unchanged: no error appended", async () => {
    const ok = await taskOf(0);
    const r = await cli(["logs", ok, "--stderr", "--datastore", ds]);
    expect(r.stdout).toBe("warning from item 0\n");
    expect(r.stderr).toBe("");
  });
});

describe("dump of a failed run", () => {
  it("lists its tasks and shows the failed task's exception", async () => {
    const r = await cli(["dump", run, "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Run ${run} failed in ${run}/work/\\d+: RangeError: item 2 is out of range`));
    expect(r.stdout).toMatch(/4 tasks/);
    expect(r.stdout).toMatch(new RegExp(`${run}/start/\\d+ \\(succeeded\\)`));
    expect(r.stdout).toMatch(new RegExp(`${run}/work/\\d+ \\[index 2\\] \\(failed at attempt 0\\)\\n {4}RangeError: item 2 is out of range\\n {8}at explode`));
    expect(r.stdout).toMatch(new RegExp(`${run}/work/\\d+ \\[index 1\\] \\(succeeded\\)`));
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it("--json has the status, the error and every task", async () => {
    const r = await cli(["dump", run, "--json", "--datastore", ds]);
    const doc = JSON.parse(r.stdout);
    expect(doc.status).toBe("failed");
    expect(doc.error.type).toBe("RangeError");
    const failed = Object.values(doc.tasks as Record<string, { successful: boolean; error?: { message: string } }>).filter((t) => !t.successful);
    expect(failed.map((t) => t.error?.message)).toEqual(["item 2 is out of range"]);
  });

  it("of the failed step shows the exception under the task", async () => {
    const r = await cli(["dump", `${run}/work`, "--datastore", ds]);
    expect(r.stdout).toMatch(/\[index 2\] \(failed at attempt 0, 0 artifacts\)\n {2}RangeError: item 2 is out of range/);
    expect(r.stdout).toMatch(/\[index 0\] \(succeeded, 2 artifacts\)/);
  });
});

describe("runs", () => {
  it("shows the failing step and who started the run", async () => {
    const r = await cli(["runs", "--datastore", ds], as("alice"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/RUN\s+STATUS\s+USER\s+STARTED/);
    expect(r.stdout).toMatch(new RegExp(`${run}\\s+failed at work/\\d+\\s+alice\\s`));
  });

  it("shows your runs by default and everyone's with --all", async () => {
    const mine = await cli(["runs", "--datastore", ds], as("bob"));
    expect(mine.code).toBe(0);
    expect(mine.stdout).not.toMatch(run);
    expect(mine.stdout).toMatch(/No runs in namespace user:bob .*--all/);
    const all = await cli(["runs", "--all", "--datastore", ds], as("bob"));
    expect(all.stdout).toMatch(new RegExp(`${run}\\s+failed at work/\\d+\\s+alice`));
  });
});

describe("run into a closed pipe", () => {
  it("finishes the run, prints no stack and exits with the run's own code", async () => {
    const store = tempStore();
    const r = await exec(["bash", "-c", `set -o pipefail; '${process.execPath}' '${CLI}' run '${fixture("failing-foreach.ts")}' --max-workers 1 --datastore '${store}' | true`]);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.stderr).not.toMatch(/EPIPE/);
    // The flow fails on purpose (item 2): the code says so although nobody read the output.
    expect(r.code).toBe(1);
    const runs = await cli(["dump", `FailingForeachFlow/${latestRun(store, "FailingForeachFlow").runId}`, "--json", "--datastore", store]);
    expect(Object.keys(JSON.parse(runs.stdout).tasks)).toHaveLength(4);
  });
});
