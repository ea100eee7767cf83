/**
 * Run options and decorators as a Metaflow user writes them (issue #11 items 7–9): values that
 * are missing or given twice, `--with` attributes, decorator arguments checked when the flow
 * loads, and decorators used without their call.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, latestRun, STACK_LINE, tempStore } from "../_helpers.ts";

const ds = tempStore();

/** A flow file in a fresh directory; `legacy` adds a tsconfig.json with experimentalDecorators. */
function flowFile(source: string, legacy = false): string {
  const dir = mkdtempSync(join(tmpdir(), "tsflow-options-"));
  if (legacy) writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { experimentalDecorators: true } }));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "flow.ts");
  writeFileSync(file, source);
  return file;
}

const oneError = (r: { code: number | null; stderr: string }, message: RegExp) => {
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(STACK_LINE);
};

describe("option values (item 7)", () => {
  const cases: [string, string[], RegExp][] = [
    ["a string parameter at the end of the line", ["--mode"], /option --mode needs a string value/],
    ["a string parameter followed by another option", ["--mode", "--alpha", "0.3"], /option --mode needs a string value/],
    ["a number parameter without its value", ["--alpha"], /option --alpha needs a number value/],
    ["an IncludeFile without its path", ["--notes"], /option --notes needs a file path/],
    ["a parameter given twice", ["--mode", "fast", "--mode", "careful"], /option --mode was given more than once/],
    ["a parameter given twice, once with =", ["--alpha=1", "--alpha", "2"], /option --alpha was given more than once/],
    ["a run option given twice", ["--max-workers", "2", "--max-workers", "3"], /option --max-workers was given more than once/],
  ];
  it.each(cases)("%s is an error naming the option", async (_what, args, message) => {
    oneError(await cli(["run", "examples/parameters.ts", "--datastore", ds, ...args]), message);
  });

  it("a boolean parameter may stand alone, and list options repeat", async () => {
    const r = await cli(["run", "examples/parameters.ts", "--datastore", ds, "--verbose", "--tag", "a", "--tag", "b"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/model: \{"layers":\[8,4\]\}/);
    expect(latestRun(ds, "ParametersFlow").tags).toEqual(["a", "b"]);
  });
});

describe("--with attributes (item 8)", () => {
  const cases: [string, RegExp][] = [
    ["retry:tims=2", /--with retry:tims=2: @retry has no attribute 'tims' \(valid: times, minutesBetweenRetries\)/],
    ["timeout:seconds=abc", /--with timeout:seconds=abc: @timeout: attribute 'seconds' must be a number/],
    ["timeout", /--with timeout: @timeout needs a duration above 0: seconds, minutes or hours/],
    ["retry:times=1.5", /attribute 'times' must be a whole number/],
    ["resources:disk=10", /@resources has no attribute 'disk' \(valid: cpu, memory, gpu\)/],
    ["catch:var=not-a-name", /@catchError: attribute 'var' must be a field name/],
    ["batch:queue", /'queue' must be attribute=value/],
    ["cached:x=1", /@cached has no attribute 'x' \(it takes none\)/],
  ];
  it.each(cases)("--with %s is refused with the valid attributes", async (spec, message) => {
    const r = await cli(["run", "examples/pets.ts", "--datastore", ds, "--with", spec]);
    oneError(r, message);
  });

  it("Metaflow's spellings are accepted: catch, minutes_between_retries, print_exception", async () => {
    const r = await cli(["run", "examples/pets.ts", "--datastore", ds, "--with", "retry:times=1,minutes_between_retries=0", "--with", "catch:var=oops,print_exception=false"]);
    expect(r.code, r.stderr).toBe(0);
    const runDoc = latestRun(ds, "PetsFlow");
    expect(runDoc.status).toBe("succeeded");
  });

  it("decorator arguments in code are checked when the flow loads, naming the attribute", async () => {
    const file = flowFile(`import { FlowSpec, step, retry } from "tsflow";
export default class TyposFlow extends FlowSpec {
  @retry({ tims: 2 } as never) @step start() { this.next(this.end); }
  @step end() {}
}
`);
    for (const cmd of ["run", "show", "check"]) {
      const r = await cli([cmd, file, ...(cmd === "run" ? ["--datastore", ds] : [])]);
      oneError(r, /cannot load flow file .*: @retry has no attribute 'tims' \(valid: times, minutesBetweenRetries\)/);
    }
    const snake = flowFile(`import { FlowSpec, step, retry } from "tsflow";
export default class SnakeFlow extends FlowSpec {
  @retry({ minutes_between_retries: 0, times: 1 } as never) @step start() { this.next(this.end); }
  @step end() {}
}
`);
    const r = await cli(["show", snake]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/start → end\s+@retry/);
  });
});

describe("a decorator used without its call (item 9)", () => {
  const source = (deco: string) => `import { FlowSpec, step, retry, catchError, timeout, cached } from "tsflow";
let failures = 0;
export default class BareFlow extends FlowSpec {
  ${deco} @step start() {
    if (failures++ === 0) throw new Error("first attempt fails");
    this.next(this.end);
  }
  @step() end() { console.log("end ran"); }
}
`;
  for (const legacy of [false, true]) {
    const mode = legacy ? "experimentalDecorators" : "standard decorators";
    it(`@retry works like @retry() (${mode})`, async () => {
      const file = flowFile(source("@retry"), legacy);
      const shown = await cli(["show", file]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toMatch(/start → end\s+@retry/);
      const r = await cli(["run", file, "--datastore", ds]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/end ran/);
    });
    it(`@timeout without its call says so (${mode})`, async () => {
      const r = await cli(["show", flowFile(source("@timeout"), legacy)]);
      oneError(r, /@timeout on 'start' is used without its call: write @timeout\(\{ seconds \| minutes \| hours \}\)/);
      expect(r.stderr).not.toMatch(/no 'start' step/);
    });
  }
});

describe("parameter names", () => {
  it("a parameter named like one of run's own options is refused by check and run, naming both", async () => {
    const file = flowFile(`import { FlowSpec, Parameter, step } from "tsflow";
export default class ReservedFlow extends FlowSpec {
  config = Parameter("config", { type: "json", default: { a: 1 } });
  @step start() { this.next(this.end); }
  @step end() {}
}
`);
    for (const args of [["check", file], ["run", file, "--datastore", ds]]) {
      oneError(await cli(args), /parameter 'config' has the name of tsflow run's own --config option; rename it/);
    }
  });

  it("the reserved names are exactly the options run parses", async () => {
    const { FLAGS } = await import("../../cli/args.ts");
    const { RUN_OPTION_NAMES } = await import("../../core/graph.ts");
    expect([...RUN_OPTION_NAMES].sort()).toEqual(Object.keys(FLAGS).sort());
  });
});
