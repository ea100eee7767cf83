/**
 * Metaflow's core test harness (test/core/metaflow_test/formatter.py) in TypeScript: a test is
 * a set of step bodies, each with a priority and the qualifiers of the graph nodes it may fill;
 * for every graph the first matching body (by priority) fills each node, and the transition of
 * the node is appended. A combination is valid only when every `required` body was used and the
 * graph is not skipped. Each valid combination becomes a tsflow flow class in a generated file;
 * `check` then reads the finished run through the public client, as `check_results` does.
 */
import type { Run, Task } from "tsflow";
import type { GraphNode } from "./graphs.ts";

export interface TestStep {
  prio: number;
  quals: string[];
  required?: boolean;
  /** Decorators in TypeScript, e.g. `@retry({ times: 3 })`. */
  decorators?: string[];
  /** The body: TypeScript using `this`, `inputs` (joins), `current` and the _flowlib helpers. */
  body: string;
}

export interface Checker {
  run: Run;
  /** Step names of the graph. */
  steps: string[];
  graph: Record<string, GraphNode>;
  /** Values of an artifact in every task of a step (throws when a task lacks it). */
  artifacts(step: string, name: string): Promise<unknown[]>;
  /** Every task of the step has the artifact with this value. */
  assertArtifact(step: string, name: string, value: unknown): Promise<void>;
  /** Logs of every task of a step. */
  logs(step: string, stream: "stdout" | "stderr"): Promise<string[]>;
  tasks(step: string): Promise<Task[]>;
  /** False under the inline executor, which captures no task output. */
  logsCaptured: boolean;
}

export interface ConformanceTest {
  /** Metaflow's test file (test/core/tests/NAME.py). */
  name: string;
  priority: number;
  skipGraphs?: string[];
  onlyGraphs?: string[];
  /** Class fields: name → TypeScript initializer (Parameter(...) for parameters). */
  fields?: Record<string, string>;
  params?: Record<string, unknown>;
  steps: TestStep[];
  shouldFail?: boolean;
  /** Resume after the first run fails (from the failed step, or from `resumeStep`). */
  resume?: boolean;
  resumeStep?: string;
  maxNumSplits?: number;
  /**
   * Graphs run with warm worker processes instead of the inline executor: tests that read task
   * logs need them (inline runs steps in the test's own process and captures no output).
   */
  processOn?: string[] | "all";
  /** Only these of the applicable graphs run (slow tests: each extra graph adds seconds); the rest are reported as left out. */
  limitGraphs?: string[];
  /** Files written next to the generated flow before it runs (Metaflow's HEADER does this). */
  files?: Record<string, string>;
  check(c: Checker): Promise<void>;
}

/** Metaflow's SKIP_GRAPHS of every test that is not about switches. */
export const SWITCH_GRAPHS = [
  "simple_switch",
  "nested_switch",
  "branch_in_switch",
  "foreach_in_switch",
  "switch_in_branch",
  "switch_in_foreach",
  "recursive_switch",
  "recursive_switch_inside_foreach",
];

function nodeQuals(name: string, node: GraphNode): Set<string> {
  const q = new Set(["all", ...(node.quals ?? [])]);
  if (name === "start" || name === "end") q.add(name);
  if (node.join) q.add("join");
  if (node.parallel_step) q.add("parallel-step");
  if (node.linear) q.add("linear");
  if (node.switch) q.add("switch-step");
  return q;
}

/** The flow class of `test` on `graph` as TypeScript source, or why the pair is not valid. */
export function formatFlow(test: ConformanceTest, graphName: string, graph: Record<string, GraphNode>, className: string): { source: string } | { invalid: string } {
  if (test.skipGraphs?.includes(graphName)) return { invalid: "skipped by the test" };
  if (test.onlyGraphs && !test.onlyGraphs.includes(graphName)) return { invalid: "not one of the test's graphs" };
  if (Object.values(graph).some((n) => n.num_parallel)) return { invalid: "@parallel (num_parallel) has no tsflow counterpart" };
  if (test.limitGraphs && !test.limitGraphs.includes(graphName)) return { invalid: "left out to keep the suite short" };
  const steps = [...test.steps].map((s, i) => ({ ...s, i })).sort((a, b) => a.prio - b.prio || a.i - b.i);
  const used = new Set<number>();
  const lines: string[] = [`export class ${className} extends FlowSpec {`];
  for (const [field, init] of Object.entries(test.fields ?? {})) lines.push(`  ${field} = ${init};`);
  for (const [name, node] of Object.entries(graph)) {
    const quals = nodeQuals(name, node);
    const s = steps.find((x) => x.quals.some((q) => quals.has(q)));
    if (!s) return { invalid: `no step of the test fits node '${name}'` };
    used.add(s.i);
    for (const d of s.decorators ?? []) lines.push(`  ${d}`);
    lines.push(`  @step async ${name}(${node.join ? "inputs: any" : ""}) {`);
    if (node.foreach) lines.push(`    (this as any).${node.foreach_var} = ${node.foreach_var_default};`);
    // Bodies say `self` as Metaflow's do; `this` in the generated source, so tsflow's graph
    // checks see the artifacts a step assigns (`this.arr = …` before a foreach).
    for (const l of s.body.trim().split("\n")) lines.push(`    ${l.trim().replace(/\bself\b/g, "(this as any)")}`);
    if (node.linear) lines.push(`    this.next(this.${node.linear});`);
    else if (node.branch) lines.push(`    this.next(${node.branch.map((b) => `this.${b}`).join(", ")});`);
    else if (node.switch) lines.push(`    this.next({ ${Object.entries(node.switch).map(([k, v]) => `${JSON.stringify(k)}: this.${v}`).join(", ")} }, { condition: ${JSON.stringify(node.condition)} });`);
    else if (node.foreach) lines.push(`    this.next(this.${node.foreach}, { foreach: ${JSON.stringify(node.foreach_var)} });`);
    lines.push("  }");
  }
  lines.push("}");
  const missing = test.steps.filter((s, i) => s.required && !used.has(i));
  if (missing.length) return { invalid: "a required step of the test has no node in this graph" };
  return { source: lines.join("\n") };
}
