/** The real CLI (`node bin/tsflow.mjs`): runs, the DAG, one-paragraph errors, Ctrl-C. */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { alive, CLI, cli, cliRun, fixture, latestRun, ROOT, STACK_LINE, tempStore, waitFor, workersOf } from "../_helpers.ts";

const ds = tempStore();

describe("tsflow run / show", () => {
  it("runs examples/pets.ts", async () => {
    const r = await cliRun("examples/pets.ts", ds);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Good pets \(a\) are dogs, cats, budgies/);
    expect(r.stdout).toMatch(/Bad pets \(b\) are lions, wolves, elephants/);
    expect(r.stdout).toMatch(/total of 6 pets/);
    expect(latestRun(ds, "PetsFlow").status).toBe("succeeded");
  });

  it("shows the DAG of examples/pets.ts without running it", async () => {
    const r = await cli(["show", "examples/pets.ts"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/start → a \| b \(parallel\)/);
    expect(r.stdout).toMatch(/a → join/);
    expect(r.stdout).toMatch(/b → join/);
    expect(r.stdout).toMatch(/join \[join\] → end/);
    expect(r.stdout).toMatch(/--limit <number>/);
    expect(r.stdout).not.toMatch(/Good pets/);
  });
});

describe("errors are one paragraph with a non-zero exit", () => {
  const cases: [string, string[], RegExp][] = [
    ["a bad parameter value", ["run", "examples/pets.ts", "--limit", "abc"], /--limit must be a number, got 'abc'/],
    ["a missing flow file", ["run", "test/fixtures/does-not-exist.ts"], /flow file 'test\/fixtures\/does-not-exist.ts' does not exist/],
    ["a syntax error", ["run", "test/fixtures/broken/syntax-error.ts"], /syntax-error\.ts:4:\d+: Expected/],
    ["no default export", ["run", "test/fixtures/broken/no-default-export.ts"], /has no default export/],
    ["several flows and no default", ["run", "test/fixtures/broken/no-default.ts"], /exports several flows \(A, B\); pick one with --flow/],
    ["not a FlowSpec", ["run", "test/fixtures/broken/not-flowspec.ts"], /is not a class extending FlowSpec/],
    ["a decorated field", ["run", "test/fixtures/broken/decorated-field.ts"], /@step can only decorate methods: 'start' is a field/],
    ["an unknown --with decorator", ["run", "examples/pets.ts", "--with", "nosuch"], /unknown decorator 'nosuch'/],
    ["a broken graph", ["run", "test/fixtures/broken/cycle.ts"], /step '\w+' \[cycle\]/],
  ];
  it.each(cases)("%s", async (_what, args, message) => {
    const r = await cli([...args, "--datastore", ds]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.stderr.trim().split("\n").length).toBeLessThanOrEqual(4);
  });
});

describe("Ctrl-C", () => {
  it("stops every task, marks the run failed and leaves no worker behind", async () => {
    const store = tempStore();
    const pidfile = join(store, "victim.pid");
    const child = spawn(process.execPath, [CLI, "run", fixture("crash.ts"), "--datastore", store, "--pidfile", pidfile], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.stdout.resume();
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    const deadline = Date.now() + 20_000;
    while (!existsSync(pidfile) || readFileSync(pidfile, "utf8") === "") {
      if (Date.now() > deadline) throw new Error(`the victim step never started: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const victim = Number(readFileSync(pidfile, "utf8"));
    const workers = workersOf(child.pid!);
    expect(workers).toContain(victim);

    const t0 = Date.now();
    child.kill("SIGINT");
    const code = await Promise.race([exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), 10_000))]);
    if (code === "hung") child.kill("SIGKILL");
    expect(code).not.toBe("hung");
    expect(code).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(8_000);
    expect(latestRun(store, "CrashFlow").status).toBe("failed");
    await waitFor(() => workers.every((p) => !alive(p)), 2_000);
    expect(workers.filter(alive)).toEqual([]);
  });
});
