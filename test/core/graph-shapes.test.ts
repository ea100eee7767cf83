/**
 * The graph checker against random well-formed flows: nested static splits, foreaches, switches
 * whose cases converge (directly, each through its own foreach into one body, or each branching
 * into the same steps) and switch self-loops, composed at random. Every such flow must be
 * accepted (no false "must be a join"), and must run to its end.
 */
import fc from "fast-check";
import { runFlow } from "tsflow";
import { describe, expect, it } from "vitest";
import { FlowSpec, step } from "../../core/flow.ts";
import { inspectFlow } from "../../core/graph.ts";
import { tempStore } from "../_helpers.ts";

type Block =
  | { kind: "step" }
  | { kind: "seq"; items: Block[] }
  | { kind: "split"; branches: Block[] }
  | { kind: "foreach"; body: Block }
  | { kind: "switch"; cases: Block[]; loop: boolean; pick: number }
  | { kind: "switchForeach"; cases: number; body: Block; pick: number }
  | { kind: "switchBranch"; cases: number; branches: Block[]; pick: number };

const { block } = fc.letrec<{ block: Block }>((tie) => ({
  block: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant<Block>({ kind: "step" }),
    fc.record({ kind: fc.constant("seq" as const), items: fc.array(tie("block"), { minLength: 1, maxLength: 3 }) }),
    fc.record({ kind: fc.constant("split" as const), branches: fc.array(tie("block"), { minLength: 2, maxLength: 3 }) }),
    fc.record({ kind: fc.constant("foreach" as const), body: tie("block") }),
    fc.record({ kind: fc.constant("switch" as const), cases: fc.array(tie("block"), { minLength: 1, maxLength: 3 }), loop: fc.boolean(), pick: fc.nat(2) }),
    fc.record({ kind: fc.constant("switchForeach" as const), cases: fc.integer({ min: 2, max: 3 }), body: tie("block"), pick: fc.nat(2) }),
    fc.record({ kind: fc.constant("switchBranch" as const), cases: fc.integer({ min: 2, max: 3 }), branches: fc.array(tie("block"), { minLength: 2, maxLength: 3 }), pick: fc.nat(2) }),
  ),
}));

/** Writes a flow class whose body between `start` and `end` is `root`. */
function build(root: Block): { cls: Function; source: string } {
  const methods: string[] = [];
  let n = 0;
  const fresh = (p: string) => `${p}${n++}`;
  const add = (name: string, body: string, join = false) => methods.push(`  ${name}(${join ? "inputs" : ""}) { ${body} }`);
  const emit = (b: Block, next: string): string => {
    switch (b.kind) {
      case "step": {
        const s = fresh("s");
        add(s, `this.next(this.${next});`);
        return s;
      }
      case "seq":
        return [...b.items].reverse().reduce((entry, item) => emit(item, entry), next);
      case "split": {
        const j = fresh("j");
        add(j, `this.next(this.${next});`, true);
        const entries = b.branches.map((x) => emit(x, j));
        const s = fresh("p");
        add(s, `this.next(${entries.map((e) => `this.${e}`).join(", ")});`);
        return s;
      }
      case "foreach": {
        const j = fresh("j");
        add(j, `this.next(this.${next});`, true);
        const body = emit(b.body, j);
        const s = fresh("f");
        add(s, `this.items_${s} = [1, 2]; this.next(this.${body}, { foreach: "items_${s}" });`);
        return s;
      }
      case "switch": {
        const m = fresh("m");
        add(m, `this.next(this.${next});`);
        const entries = b.cases.map((x) => emit(x, m));
        const s = fresh("w");
        const pick = `c${b.pick % entries.length}`;
        const cases = entries.map((e, i) => `c${i}: this.${e}`);
        if (b.loop) {
          cases.push(`again: this.${s}`);
          add(s, `this.k_${s} = (this.k_${s} ?? 0) + 1; this.r_${s} = this.k_${s} < 3 ? "again" : "${pick}"; this.next({ ${cases.join(", ")} }, { condition: "r_${s}" });`);
        } else {
          add(s, `this.r_${s} = "${pick}"; this.next({ ${cases.join(", ")} }, { condition: "r_${s}" });`);
        }
        return s;
      }
      case "switchForeach": {
        const j = fresh("j");
        add(j, `this.next(this.${next});`, true);
        const body = emit(b.body, j);
        const starts = Array.from({ length: b.cases }, () => {
          const x = fresh("x");
          add(x, `this.items_${x} = [1, 2, 3].slice(0, ${1 + (n % 3)}); this.next(this.${body}, { foreach: "items_${x}" });`);
          return x;
        });
        const s = fresh("w");
        add(s, `this.r_${s} = "c${b.pick % starts.length}"; this.next({ ${starts.map((e, i) => `c${i}: this.${e}`).join(", ")} }, { condition: "r_${s}" });`);
        return s;
      }
      case "switchBranch": {
        const j = fresh("j");
        add(j, `this.next(this.${next});`, true);
        const entries = b.branches.map((x) => emit(x, j));
        const starts = Array.from({ length: b.cases }, () => {
          const x = fresh("x");
          add(x, `this.next(${entries.map((e) => `this.${e}`).join(", ")});`);
          return x;
        });
        const s = fresh("w");
        add(s, `this.r_${s} = "c${b.pick % starts.length}"; this.next({ ${starts.map((e, i) => `c${i}: this.${e}`).join(", ")} }, { condition: "r_${s}" });`);
        return s;
      }
    }
  };
  const entry = emit(root, "end");
  add("start", `this.next(this.${entry});`);
  add("end", "");
  const source = ["return class ShapeFlow extends FlowSpec {", ...methods, "};"].join("\n");
  const cls = new Function("FlowSpec", source)(FlowSpec) as { prototype: Record<string, unknown> };
  for (const name of Object.getOwnPropertyNames(cls.prototype)) {
    if (name === "constructor") continue;
    (step as any)(cls.prototype, name, Object.getOwnPropertyDescriptor(cls.prototype, name)!);
  }
  return { cls: cls as unknown as Function, source };
}

describe("well-formed random flows", () => {
  it("are accepted by the checker", () => {
    fc.assert(
      fc.property(block, (root) => {
        const { cls, source } = build(root);
        const info = inspectFlow(cls);
        expect(info.issues, source).toEqual([]);
      }),
      { numRuns: 200, seed: 11 },
    );
  });

  it("run to their end", async () => {
    const ds = tempStore();
    await fc.assert(
      fc.asyncProperty(block, async (root) => {
        const { cls, source } = build(root);
        const r = await runFlow(cls, { datastore: ds, executor: "inline" });
        expect(r.error, source).toBeUndefined();
        expect(r.successful).toBe(true);
      }),
      { numRuns: 25, seed: 7 },
    );
  }, 120_000);
});
