/**
 * Small things users notice (issue #11): no colour codes off a terminal, tags (system tags
 * apart, replace, removing a missing tag), `--executor batch` with a local datastore refused
 * before a run exists, a json parameter's JSON-text default, plurals and one `(default: x)`.
 */
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, exec, cli, latestRun, STACK_LINE, tempStore } from "../_helpers.ts";

const ds = tempStore();
const ESC = "\x1b[";

describe("colours", () => {
  // exec() sets NO_COLOR and vitest sets TEST (citty then stays plain): here both are unset, and
  // FORCE_COLOR and CI too, with a colour terminal's TERM: what a pipe from a user's shell gets.
  const piped = (args: string[], env: Record<string, string | undefined> = {}) =>
    exec([process.execPath, CLI, ...args], { env: { NO_COLOR: undefined, FORCE_COLOR: undefined, CI: undefined, TEST: undefined, TERM: "xterm-256color", ...env } });
  it.each([[["--help"]], [["run", "--help"]], [["runs", "--help"]], [["run", "examples/parameters.ts", "--help"]]])("tsflow %j writes no escape codes to a pipe", async (args) => {
    const r = await piped(args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/USAGE|Parameters of/);
    expect(r.stdout).not.toContain(ESC);
  });

  it("a run's output has no escape codes on a pipe", async () => {
    const r = await piped(["run", "examples/pets.ts", "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(ESC);
  });
});

describe("tags", () => {
  let run = "";
  beforeAll(async () => {
    const r = await cli(["run", "examples/pets.ts", "--datastore", ds, "--tag", "exp1"]);
    expect(r.code, r.stderr).toBe(0);
    run = `PetsFlow/${latestRun(ds, "PetsFlow").runId}`;
  });
  const tag = (...args: string[]) => cli(["tag", ...args, "--datastore", ds]);
  // A run's user tags: run.json's plus the changes stored beside it (core/_tags.ts).
  const userTags = async () => {
    const r = await tag("list", run);
    return r.stdout
      .split("System tags")[0]!
      .split("\n")
      .slice(1)
      .map((l) => l.trim())
      .filter((l) => l && l !== "(none)");
  };

  it("list shows user tags and system tags apart", async () => {
    const r = await tag("list", run);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^User tags:\n {2}exp1\nSystem tags \(set by tsflow\):\n {2}user:\S+\n {2}runtime:node\n/);
  });

  it("replace swaps one tag for another", async () => {
    const r = await tag("replace", run, "exp1", "exp2");
    expect(r.code, r.stderr).toBe(0);
    expect(await userTags()).toEqual(["exp2"]);
    const bad = await tag("replace", run, "exp2");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/tag replace takes two tags, OLD and NEW/);
  });

  it("removing a tag the run does not have says so and changes nothing", async () => {
    await tag("add", run, "keep");
    const r = await tag("remove", run, "keep", "nosuch");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`run ${run} has no tag 'nosuch' \\(its tags: .*keep\\); nothing was changed`));
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(await userTags()).toContain("keep");
  });

  it("a system tag cannot be removed", async () => {
    const user = latestRun(ds, "PetsFlow").systemTags.find((t: string) => t.startsWith("user:"));
    const r = await tag("remove", run, user);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/is a system tag of .*, set by tsflow: it cannot be removed/);
  });
});

describe("--executor batch with a local datastore", () => {
  it("is refused before a run record is created", async () => {
    const store = tempStore();
    const r = await cli(["run", "examples/pets.ts", "--datastore", store, "--executor", "batch"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\[batch\] AWS Batch jobs cannot reach datastore '.*': run with --datastore s3:\/\/bucket\/prefix/);
    expect(existsSync(join(store, "flows", "PetsFlow", "runs")) ? readdirSync(join(store, "flows", "PetsFlow", "runs")) : []).toEqual([]);
  });
});

describe("a json parameter whose default is JSON text", () => {
  it("gets the parsed value, as the same text on the command line does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsflow-json-default-"));
    const file = join(dir, "flow.ts");
    writeFileSync(
      file,
      `import { FlowSpec, Parameter, step } from "tsflow";
export default class JsonDefaultFlow extends FlowSpec {
  cfg = Parameter("cfg", { type: "json", default: '{"layers":[4,2]}' });
  @step start() { console.log("cfg is", typeof this.cfg, JSON.stringify(this.cfg)); this.next(this.end); }
  @step end() {}
}
`,
    );
    const byDefault = await cli(["run", file, "--datastore", ds]);
    expect(byDefault.code, byDefault.stderr).toBe(0);
    expect(byDefault.stdout).toMatch(/cfg is object \{"layers":\[4,2\]\}/);
    const given = await cli(["run", file, "--datastore", ds, "--cfg", '{"layers":[4,2]}']);
    expect(given.stdout).toMatch(/cfg is object \{"layers":\[4,2\]\}/);
  });
});

describe("wording", () => {
  it("show and run --help print parameters the same way, with (default: x)", async () => {
    const show = await cli(["show", "examples/parameters.ts"]);
    const help = await cli(["run", "examples/parameters.ts", "--help"]);
    const params = (text: string) => text.split("\n").filter((l) => /^ {2}--[\w-]+ </.test(l));
    expect(params(show.stdout).length).toBeGreaterThan(3);
    expect(params(help.stdout)).toEqual(params(show.stdout));
    expect(show.stdout).toContain('--mode <string>  how to train; one of "careful", "fast" (default: "careful")');
    expect(show.stdout + help.stdout).not.toMatch(/\(default [^:]/);
  });

  it("counts of one are singular", async () => {
    const store = tempStore();
    const dir = mkdtempSync(join(tmpdir(), "tsflow-plural-"));
    const file = join(dir, "flow.ts");
    writeFileSync(file, `import { FlowSpec, Parameter, step } from "tsflow";\nexport default class OneFlow extends FlowSpec {\n  n = Parameter("n", { default: 1 });\n  @step start() { this.next(this.end); }\n  @step end() {}\n}\n`);
    const check = await cli(["check", file]);
    expect(check.stdout).toMatch(/\(2 steps, 1 parameter\)/);
    const run = await cli(["run", file, "--datastore", store]);
    expect(run.stdout).toMatch(/succeeded in [\d.]+ s \(2 tasks\)/);
    const gc = await cli(["gc", "--dry-run", "--datastore", store]);
    expect(gc.stdout).toMatch(/^1 run \(0 running\)/m);
  });
});

describe("viewer wording", () => {
  it("one run and one task are singular on the runs and run pages", async () => {
    const store = tempStore();
    const file = join(mkdtempSync(join(tmpdir(), "tsflow-one-")), "flow.ts");
    writeFileSync(file, `import { FlowSpec, step } from "tsflow";\nexport default class LoneFlow extends FlowSpec {\n  @step start() { this.next(this.end); }\n  @step end() {}\n}\n`);
    const r = await cli(["run", file, "--datastore", store]);
    expect(r.code, r.stderr).toBe(0);
    const { createViewerApp } = await import("../../viewer/app.ts");
    const { default: fsDatastore } = await import("../../plugins/datastores/fs.ts");
    const { default: nodeHost } = await import("../../plugins/host/node.ts");
    const app = createViewerApp({ store: fsDatastore({ root: store }), host: nodeHost(), allowedHosts: ["127.0.0.1:8324"] });
    const get = async (path: string) => (await app.request(path, { headers: { host: "127.0.0.1:8324" } })).text();
    const runs = await get("/");
    expect(runs).toMatch(/1 run\b/);
    const run = await get(`/runs/LoneFlow/${latestRun(store, "LoneFlow").runId}`);
    expect(run).toContain("1/1 task");
    expect(runs + run).not.toMatch(/\b1 (runs|tasks)\b|\/1 tasks/);
  });
});
