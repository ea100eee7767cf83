/**
 * Fuzzing the graph checker: random flow classes (random step names, arities, decorators and
 * `this.next(...)` calls, built from source with `new Function` so acorn reads real code) must
 * never make `inspectFlow` throw anything but a TsflowError, and every issue it reports must
 * name a method of the class (or the missing `start`/`end`).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isTsflowError } from "../../core/errors.ts";
import { FlowSpec, retry, step } from "../../core/flow.ts";
import { inspectFlow } from "../../core/graph.ts";
import { SOAK } from "./_util.ts";

const NAMES = ["start", "end", "a", "b", "c", "d", "join", "j2", "loop", "_private", "$odd", "next", "input", "mergeArtifacts"];
const ARTIFACTS = ["items", "route", "x", "missing"];

const target = fc.constantFrom(...NAMES, "nosuch");
const transition = fc.oneof(
  fc.constant(""),
  fc.array(target, { minLength: 1, maxLength: 3 }).map((ts) => `this.next(${ts.map((t) => `this.${t}`).join(", ")});`),
  fc.tuple(target, fc.constantFrom(...ARTIFACTS)).map(([t, v]) => `this.next(this.${t}, { foreach: "${v}" });`),
  fc
    .tuple(fc.dictionary(fc.constantFrom("high", "low", "mid"), target, { minKeys: 1, maxKeys: 3 }), fc.constantFrom(...ARTIFACTS))
    .map(([cases, v]) => `this.next({ ${Object.entries(cases).map(([k, t]) => `${k}: this.${t}`).join(", ")} }, { condition: "${v}" });`),
  fc.constant("this.next();"),
  fc.constant("if (this.x) this.next(this.a); else this.next(this.b);"),
  fc.constant("this.next(...[this.a]);"),
  fc.constant("const f = this.next; f(this.end);"),
);
const method = fc.record({
  name: fc.constantFrom(...NAMES),
  params: fc.integer({ min: 0, max: 2 }),
  isStep: fc.boolean(),
  retry: fc.boolean(),
  isAsync: fc.boolean(),
  assigns: fc.subarray(ARTIFACTS),
  body: transition,
});
const flowShape = fc.record({
  methods: fc.array(method, { minLength: 0, maxLength: 8 }),
  fields: fc.subarray(ARTIFACTS),
});

type Shape = typeof flowShape extends fc.Arbitrary<infer T> ? T : never;

function build(shape: Shape): Function {
  const seen = new Set<string>();
  const methods = shape.methods.filter((m) => !seen.has(m.name) && seen.add(m.name));
  const src = [
    "return class Fuzzed extends FlowSpec {",
    ...shape.fields.map((f) => `  ${f} = [];`),
    ...methods.map((m) => {
      const params = ["inputs", "extra"].slice(0, m.params).join(", ");
      const body = [...m.assigns.map((a) => `this.${a} = [1];`), m.body].join(" ");
      return `  ${m.isAsync ? "async " : ""}${m.name}(${params}) { ${body} }`;
    }),
    "};",
  ].join("\n");
  const cls = new Function("FlowSpec", src)(FlowSpec) as { prototype: Record<string, unknown> };
  for (const m of methods) {
    const desc = Object.getOwnPropertyDescriptor(cls.prototype, m.name)!;
    // experimentalDecorators order: the decorator nearest the method applies first.
    if (m.isStep) (step as any)(cls.prototype, m.name, desc);
    if (m.retry) (retry() as any)(cls.prototype, m.name, desc);
  }
  return cls as unknown as Function;
}

describe("inspectFlow under random class shapes", () => {
  it("throws only TsflowError and names existing steps in every issue", () => {
    fc.assert(
      fc.property(flowShape, (shape) => {
        const cls = build(shape);
        let info: ReturnType<typeof inspectFlow>;
        try {
          info = inspectFlow(cls);
        } catch (e) {
          if (!isTsflowError(e)) throw new Error(`inspectFlow threw a non-TsflowError: ${(e as Error).stack}`);
          return;
        }
        const methods = new Set(Object.getOwnPropertyNames((cls as any).prototype));
        for (const issue of info.issues) {
          expect(typeof issue.message).toBe("string");
          expect(issue.message.length).toBeGreaterThan(0);
          expect(methods.has(issue.step) || issue.step === "start" || issue.step === "end", `issue ${JSON.stringify(issue)}`).toBe(true);
        }
        if (info.issues.length === 0) {
          // A clean graph is walkable: every successor is a node, start and end exist.
          expect(info.graph.nodes.start).toBeDefined();
          expect(info.graph.nodes.end).toBeDefined();
          for (const node of Object.values(info.graph.nodes)) for (const n of node.next) expect(info.graph.nodes[n], `${node.name} → ${n}`).toBeDefined();
        }
      }),
      SOAK ? { numRuns: 5_000 } : { numRuns: 500, seed: 42 },
    );
  }, 300_000);
});
