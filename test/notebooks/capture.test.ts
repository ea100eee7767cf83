/**
 * Under Node (no kernel): a flow class with no file, built from source text as a kernel would
 * evaluate a cell, runs on real worker processes through the rebuilt module; editing the class
 * runs the new code; client objects print one short line and display as mimebundles.
 */
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { artifactBundle, FlowSpec, Parameter, retry, runFlow, step } from "../../mod.ts";
import { tempStore } from "../_helpers.ts";

const g = globalThis as Record<string, unknown>;
// What a notebook's earlier cells would have defined: a function and a JSON value.
g.nbDouble = function nbDouble(x: number) {
  return x * 2;
};
g.NB_OFFSET = { add: 1 };

/**
 * A flow class from source, decorated as the kernel's transpiled code would be. Its name is
 * spelled apart so that this file never declares it: the class must have no file.
 */
const NAME = ["Nb", "Flow"].join("");
function cellClass(body: string): Function {
  const cls = new Function("FlowSpec", "Parameter", `return class ${NAME} extends FlowSpec {\n  n = Parameter("n", { default: 2 });\n  out = 0;\n  pid = 0;\n${body}\n  end() {}\n};`)(FlowSpec, Parameter) as { prototype: Record<string, unknown> };
  for (const name of ["start", "end"]) {
    const d = Object.getOwnPropertyDescriptor(cls.prototype, name)!;
    (step as any)(cls.prototype, name, d);
    if (name === "start") (retry({ times: 1 }) as any)(cls.prototype, name, d);
  }
  return cls as unknown as Function;
}

describe("a flow class without a file", () => {
  it("runs on worker processes from the rebuilt module, and an edited class runs its new code", { timeout: 180_000 }, async () => {
    const datastore = tempStore();
    const first = await runFlow(cellClass("  start() { this.out = nbDouble(this.n) + NB_OFFSET.add; this.pid = process.pid; this.next(this.end); }"), { datastore, executor: "process", params: { n: 5 } });
    expect(first.successful).toBe(true);
    expect(await first.data("out")).toBe(11);
    expect(await first.data("pid")).not.toBe(process.pid);
    const edited = await runFlow(cellClass("  start() { this.out = nbDouble(this.n) * 100; this.pid = process.pid; this.next(this.end); }"), { datastore, executor: "process", params: { n: 5 } });
    expect(await edited.data("out")).toBe(1000);
  });

  it("is refused, by name, when it uses a value workers cannot rebuild", async () => {
    g.NB_WHEN = new Date(0);
    await expect(runFlow(cellClass("  start() { this.out = NB_WHEN.getTime(); this.next(this.end); }"), { datastore: tempStore(), executor: "process" })).rejects.toThrow(
      /flow NbFlow \(defined without a file, e\.g\. in a notebook cell\) uses 'NB_WHEN' from the notebook, which worker processes cannot rebuild \(a Date\)/,
    );
  });
});

describe("client objects", () => {
  it("print one short line and display as mimebundles with the DAG", { timeout: 180_000 }, async () => {
    const run = await runFlow(cellClass("  start() { this.out = 1; console.log('hello from start'); this.next(this.end); }"), { datastore: tempStore(), executor: "inline" });
    expect(inspect(run)).toMatch(/^Run NbFlow\/\S+ succeeded in [\d.]+ (ms|s) \(n=2\)$/);
    const task = await run.step("start").onlyTask();
    expect(inspect(task)).toMatch(/^Task NbFlow\/\S+\/start\/\d+ succeeded$/);
    expect(inspect([run.step("start")])).toMatch(/\[ Step NbFlow\/\S+\/start \]/);
    expect(inspect(await task.artifact("out"))).toMatch(/^Artifact out \(\w+, \d+ B\) of NbFlow\/\S+\/start\/\d+$/);
    const display = (o: object) => (o as Record<symbol, () => Promise<Record<string, string>>>)[Symbol.for("Jupyter.display")]!();
    const runBundle = await display(run);
    expect(runBundle["text/plain"]).toBe(String(run));
    expect(runBundle["text/html"]).toContain('<svg class="dag"');
    expect(runBundle["text/html"]).toMatch(/data-step="start" data-state="succeeded"/);
    const taskBundle = await display(task);
    expect(taskBundle["text/html"]).toContain("<h4>Artifacts</h4>");
    expect(taskBundle["text/html"]).toMatch(/<td>out<\/td><td>\w+<\/td><td>[\d.]+ B<\/td><td><code>1<\/code>/);
  });

  it("artifacts: records are a table, image bytes an image, other values a tree", () => {
    const table = artifactBundle("rows", [{ a: 1, b: "x" }, { a: 2 }]);
    expect(table["text/html"]).toContain("2 records");
    expect(table["text/html"]).toContain("<th>a</th><th>b</th>");
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
    expect(artifactBundle("img", png)).toEqual({ "image/png": btoa(String.fromCharCode(...png)) });
    const tree = artifactBundle("m", new Map([["k", { deep: [1, 2] }]]))["text/html"] as string;
    expect(tree).toContain("<summary>Map(1)</summary>");
    expect(tree).toContain("Array(2)");
  });
});
