/**
 * The static graph of a flow, known before any step runs.
 *
 * Like Metaflow, which parses the class source, tsflow reads each step's source
 * (`Function.prototype.toString`) with a real JavaScript parser and finds its `this.next(...)`
 * call. Runtimes print method sources differently (esbuild compacts whitespace, Bun and Deno
 * keep it), so nothing here matches text with regular expressions.
 */
import { parse } from "acorn";
import { TsflowError } from "./errors.ts";
import { containsConfigRef, FlowSpec, getStepMeta, installRuntime, isFlowClass, isParameterSpec, type ParameterSpec } from "./flow.ts";

export type NodeType = "start" | "linear" | "split" | "foreach" | "switch" | "join" | "end";

export interface GraphNode {
  name: string;
  type: NodeType;
  /** Target steps, in the order written. For a switch: the case targets in case order. */
  next: string[];
  /** Foreach: the artifact iterated. */
  foreach?: string;
  /** Switch: the artifact whose value picks the case, and case value → step. */
  condition?: string;
  cases?: Record<string, string>;
  /** Steps with an edge into this one. */
  inputs: string[];
  /** The step takes `inputs` (it is a join). */
  isJoin: boolean;
  /** For a join: the split (static or foreach) it closes. */
  joins?: string;
  /** For a split/foreach: the join that closes it. */
  matchingJoin?: string;
  /** Splits enclosing this step, outermost first. */
  splitParents: string[];
  decorators: Record<string, Record<string, unknown>>;
  /** Member names the step's code mentions (artifacts it may read), or `all` when unknowable. */
  reads: string[] | "all";
  /** Artifacts the step assigns with `this.x = …`. */
  assigns: string[];
  /** The step's source, for caching by code (`@cached`). */
  source: string;
}

export interface FlowGraph {
  flowName: string;
  nodes: Record<string, GraphNode>;
  /** Steps in a topological order from start. */
  order: string[];
}

/** A broken graph rule, named so users can look it up. */
export interface GraphIssue {
  step: string;
  rule: string;
  message: string;
}

export interface FlowInfo {
  name: string;
  graph: FlowGraph;
  /** Field name → parameter spec. */
  parameters: Record<string, ParameterSpec>;
  /** Fields with an initial value (class field initializers), not parameters. */
  fields: string[];
  issues: GraphIssue[];
}

const cache = new WeakMap<Function, FlowInfo>();
// `__proto__` too: as a key of a plain object it is the prototype, not a name (#19.16).
const RESERVED = new Set(["next", "mergeArtifacts", "input", "index", "constructor", "__proto__"]);

/** Reads a flow class: its steps, graph, parameters and every graph rule it breaks. */
export function inspectFlow(flowClass: Function): FlowInfo {
  const hit = cache.get(flowClass);
  if (hit) return hit;
  if (!isFlowClass(flowClass)) {
    throw new TsflowError("BadFlow", `'${flowClass.name || "anonymous class"}' does not extend FlowSpec from "tsflow"`);
  }
  const name = flowClass.name;
  const issues: GraphIssue[] = [];
  const methods = collectMethods(flowClass);
  // No prototype: a target named `toString` or `hasOwnProperty` is an unknown step, not a
  // function found on Object.prototype (#19.16).
  const nodes: Record<string, GraphNode> = Object.create(null);
  const helperReads = new Set<string>();
  let helperReadsAll = false;

  for (const [method, fn] of methods) {
    const meta = getStepMeta(fn);
    const src = Function.prototype.toString.call(fn);
    if (!meta?.step) {
      if (meta && Object.keys(meta.decorators).length > 0) {
        issues.push({ step: method, rule: "decorator-without-step", message: `method '${method}' has @${Object.keys(meta.decorators)[0]} but no @step` });
      }
      const a = analyse(src, method, issues, false);
      if (a) {
        for (const r of a.reads) helperReads.add(r);
        helperReadsAll ||= a.readsAll;
      }
      continue;
    }
    if (RESERVED.has(method)) {
      issues.push({ step: method, rule: "reserved-name", message: `step '${method}' uses a name reserved by ${method === "__proto__" ? "JavaScript" : "FlowSpec"}; rename it` });
      continue;
    }
    const a = analyse(src, method, issues, true);
    if (!a) continue;
    nodes[method] = {
      name: method,
      type: "linear",
      next: a.next?.targets ?? [],
      foreach: a.next?.foreach,
      condition: a.next?.condition,
      cases: a.next?.cases,
      inputs: [],
      isJoin: a.params > 0,
      splitParents: [],
      decorators: meta.decorators,
      reads: a.readsAll ? "all" : a.reads,
      assigns: a.assigns,
      source: src,
    };
    if (a.params > 1) {
      issues.push({ step: method, rule: "step-arity", message: `step '${method}' takes ${a.params} parameters; a step takes none, a join takes one (inputs)` });
    }
    if (!a.next && method !== "end") {
      issues.push({ step: method, rule: "missing-next", message: `step '${method}' never calls this.next(...); every step but 'end' must` });
    }
    if (a.next && method === "end") {
      issues.push({ step: "end", rule: "end-has-next", message: "step 'end' calls this.next(...); 'end' is the last step and must not" });
    }
  }
  for (const node of Object.values(nodes)) {
    if (helperReadsAll) node.reads = "all";
    else if (node.reads !== "all") node.reads = [...new Set([...node.reads, ...helperReads])];
  }

  const { parameters, fields } = discoverFields(flowClass, issues);
  // Transitions that conflict leave the graph unknown: rules about its shape (cycles,
  // reachability, joins) would only report consequences of the first transition picked.
  const conflicting = issues.some((i) => i.rule === "conflicting-next");
  const graphIssues: GraphIssue[] = [];
  const graph = buildGraph(name, nodes, graphIssues, new Set([...fields, ...Object.keys(parameters)]));
  if (!conflicting) issues.push(...graphIssues);
  const info: FlowInfo = { name, graph, parameters, fields, issues };
  cache.set(flowClass, info);
  return info;
}

/** Like {@link inspectFlow}, but throws one error listing every broken rule. */
export function loadFlowInfo(flowClass: Function, where?: string): FlowInfo {
  const info = inspectFlow(flowClass);
  if (info.issues.length > 0) {
    const n = info.issues.length;
    throw new TsflowError(
      "BadGraph",
      `flow ${info.name}${where ? ` in ${where}` : ""} has ${n} graph error${n > 1 ? "s" : ""}`,
      info.issues.map((i) => `step '${i.step}' [${i.rule}]: ${i.message}`),
    );
  }
  return info;
}

function collectMethods(flowClass: Function): Map<string, Function> {
  const out = new Map<string, Function>();
  let proto = flowClass.prototype;
  while (proto && proto !== FlowSpec.prototype && proto !== Object.prototype && !Object.hasOwn(proto, Symbol.for("tsflow.FlowSpec"))) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (key === "constructor" || out.has(key)) continue;
      const d = Object.getOwnPropertyDescriptor(proto, key);
      if (d && typeof d.value === "function") out.set(key, d.value);
    }
    proto = Object.getPrototypeOf(proto);
  }
  return out;
}

/** Builds one instance in "constructing" mode to learn the parameters and field initializers. */
function discoverFields(flowClass: Function, issues: GraphIssue[]) {
  const parameters: Record<string, ParameterSpec> = Object.create(null);
  const fields: string[] = [];
  installRuntime({ constructing: true, current: {}, next() {}, merge() {} });
  let instance: Record<string, unknown>;
  try {
    instance = new (flowClass as new () => Record<string, unknown>)();
  } catch (e) {
    issues.push({ step: "constructor", rule: "constructor-throws", message: `creating ${flowClass.name} failed: ${(e as Error).message}` });
    return { parameters, fields };
  } finally {
    installRuntime(undefined);
  }
  const seen = new Set<string>();
  for (const key of Object.keys(instance)) {
    const value = instance[key];
    if (isParameterSpec(value)) {
      if (seen.has(value.name)) issues.push({ step: key, rule: "duplicate-parameter", message: `parameter '${value.name}' is declared twice` });
      if (RUN_OPTION_NAMES.has(value.name)) {
        issues.push({ step: key, rule: "reserved-parameter", message: `parameter '${value.name}' has the name of tsflow run's own --${value.name} option; rename it` });
      }
      seen.add(value.name);
      parameters[key] = value;
    } else if (!key.startsWith("_")) {
      fields.push(key);
    }
  }
  return { parameters, fields };
}

/**
 * Parameters become `--name` options of `tsflow run` beside the run's own options, so a
 * parameter may not take one of their names (Metaflow reserves its option names the same way).
 * cli/args.ts parses exactly these; a unit test keeps the two lists equal.
 */
export const RUN_OPTION_NAMES: ReadonlySet<string> = new Set(["flow", "datastore", "executor", "tag", "with", "max-workers", "max-num-splits", "fresh-workers", "origin-run-id", "no-cache", "config", "help"]);

interface Transition {
  targets: string[];
  foreach?: string;
  condition?: string;
  cases?: Record<string, string>;
}

interface Analysis {
  next?: Transition;
  params: number;
  reads: string[];
  readsAll: boolean;
  assigns: string[];
}

type AstNode = { type: string; start: number; end: number; [k: string]: any };

function parseMethod(src: string): AstNode | undefined {
  const tries = [`(class { ${src}\n})`, `(${src}\n)`];
  for (const text of tries) {
    try {
      const program = parse(text, { ecmaVersion: "latest", checkPrivateFields: false, allowAwaitOutsideFunction: true }) as unknown as AstNode;
      const expr = program.body[0].expression;
      if (expr.type === "ClassExpression") {
        const m = expr.body.body.find((b: AstNode) => b.type === "MethodDefinition");
        if (m) return m.value;
      } else if (expr.type === "FunctionExpression" || expr.type === "ArrowFunctionExpression") {
        return expr;
      }
    } catch {
      // try the next wrapping
    }
  }
  return undefined;
}

function analyse(src: string, method: string, issues: GraphIssue[], isStep: boolean): Analysis | undefined {
  const fn = parseMethod(src);
  if (!fn) {
    if (isStep) issues.push({ step: method, rule: "unparsable", message: `cannot read the source of step '${method}' (${src.slice(0, 60)})` });
    return undefined;
  }
  const reads = new Set<string>();
  const assigns = new Set<string>();
  const calls: AstNode[] = [];
  let readsAll = false;

  const visit = (node: AstNode, parent: AstNode | undefined, key: string) => {
    switch (node.type) {
      case "MemberExpression": {
        const name = node.computed ? (node.property.type === "Literal" ? String(node.property.value) : undefined) : node.property.name;
        if (name !== undefined) reads.add(name);
        else if (node.object.type === "ThisExpression") readsAll = true;
        break;
      }
      case "ThisExpression":
        if (!(parent?.type === "MemberExpression" && key === "object")) readsAll = true;
        break;
      case "Property":
        if (parent?.type === "ObjectPattern" && !node.computed) reads.add(node.key.name ?? String(node.key.value));
        break;
      case "AssignmentExpression":
        if (node.left.type === "MemberExpression" && node.left.object.type === "ThisExpression" && !node.left.computed) assigns.add(node.left.property.name);
        break;
      case "CallExpression":
        if (node.callee.type === "MemberExpression" && node.callee.object.type === "ThisExpression" && !node.callee.computed && node.callee.property.name === "next") {
          calls.push(node);
        }
        break;
    }
    for (const k of Object.keys(node)) {
      const v = node[k];
      if (Array.isArray(v)) {
        for (const c of v) if (c && typeof c.type === "string") visit(c, node, k);
      } else if (v && typeof v === "object" && typeof v.type === "string") {
        visit(v, node, k);
      }
    }
  };
  visit(fn.body, undefined, "");

  let next: Transition | undefined;
  if (isStep) {
    const distinct = new Map<string, Transition>();
    for (const call of calls) {
      const t = readTransition(call, method, issues);
      if (t) distinct.set(JSON.stringify(t), t);
    }
    next = [...distinct.values()][0];
    if (distinct.size > 1) {
      const written = [...distinct.values()].map(describeTransition);
      issues.push({
        step: method,
        rule: "conflicting-next",
        message: `step '${method}' calls ${written.join(" and ")}: a step has one transition, known before the run; to choose at run time, assign an artifact and switch on it (this.next({ a: this.x, b: this.y }, { condition: "route" }))`,
      });
    }
  }
  return { next, params: fn.params.length, reads: [...reads], readsAll, assigns: [...assigns] };
}

/** A transition as the user wrote it, for messages. */
function describeTransition(t: Transition): string {
  if (t.cases) return `this.next({ ${Object.entries(t.cases).map(([k, v]) => `${k}: this.${v}`).join(", ")} }, { condition: "${t.condition}" })`;
  if (t.foreach) return `this.next(this.${t.targets[0]}, { foreach: "${t.foreach}" })`;
  return `this.next(${t.targets.map((x) => `this.${x}`).join(", ")})`;
}

function stepRef(node: AstNode): string | undefined {
  if (node.type === "MemberExpression" && node.object.type === "ThisExpression" && !node.computed) return node.property.name;
  return undefined;
}

function optionValue(obj: AstNode, name: string): { present: boolean; value?: string } {
  const prop = obj.properties.find((p: AstNode) => p.type === "Property" && (p.key.name ?? p.key.value) === name);
  if (!prop) return { present: false };
  if (prop.value.type === "Literal" && typeof prop.value.value === "string") return { present: true, value: prop.value.value };
  return { present: true };
}

function readTransition(call: AstNode, method: string, issues: GraphIssue[]): Transition | undefined {
  const args: AstNode[] = call.arguments;
  const bad = (why: string) => {
    issues.push({ step: method, rule: "bad-next", message: `step '${method}': ${why}` });
    return undefined;
  };
  if (args.length === 0) return bad("this.next() needs at least one target step");
  const last = args[args.length - 1]!;
  if (last.type === "ObjectExpression" && args.length === 2) {
    const foreach = optionValue(last, "foreach");
    const condition = optionValue(last, "condition");
    if (foreach.present) {
      if (!foreach.value) return bad("the foreach option must be a string literal naming an artifact, e.g. { foreach: \"items\" }");
      const target = stepRef(args[0]!);
      if (!target) return bad("a foreach goes to exactly one step, written as this.stepName");
      return { targets: [target], foreach: foreach.value };
    }
    if (condition.present) {
      if (!condition.value) return bad("the condition option must be a string literal naming an artifact, e.g. { condition: \"route\" }");
      if (args[0]!.type !== "ObjectExpression") return bad("a switch takes an object of cases, e.g. this.next({ high: this.h, low: this.l }, { condition: \"route\" })");
      const cases: Record<string, string> = Object.create(null);
      for (const p of args[0]!.properties as AstNode[]) {
        const key = p.type === "Property" ? (p.key.name ?? String(p.key.value)) : undefined;
        const target = p.type === "Property" ? stepRef(p.value) : undefined;
        if (key === undefined || !target) return bad("each switch case must be written as key: this.stepName");
        // In an object literal `__proto__: x` sets the prototype: the case would never be seen.
        if (key === "__proto__") return bad("a switch case cannot be named '__proto__' (in an object literal it sets the prototype); rename the case");
        cases[key] = target;
      }
      if (Object.keys(cases).length === 0) return bad("a switch needs at least one case");
      return { targets: [...new Set(Object.values(cases))], condition: condition.value, cases };
    }
    return bad("the options of this.next must be { foreach: \"name\" } or { condition: \"name\" }");
  }
  const targets: string[] = [];
  for (const a of args) {
    const t = stepRef(a);
    if (!t) return bad("transition targets must be steps written as this.stepName (found an expression)");
    targets.push(t);
  }
  if (new Set(targets).size !== targets.length) return bad("the same step appears twice in this.next(...)");
  return { targets };
}

/**
 * Where a path is: the splits it is inside (`split`: a foreach or static branch, closed by a
 * join) and the switch cases it took (`case`: exclusive with the other cases of that switch).
 */
type Frame = { kind: "split"; step: string; branch: string } | { kind: "case"; step: string; branch: string };
type Context = Frame[];

const MAX_CONTEXTS = 256;
const frameKey = (f: Frame) => `${f.kind === "split" ? ">" : ":"}${f.step}>${f.branch}`;
const contextKey = (c: Context) => c.map(frameKey).join("|");

/**
 * Two paths can run at the same time unless they parted at a switch (different cases of one
 * switch never both run). Paths that parted at a split run together.
 */
function together(a: Context, b: Context): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const fa = a[i]!;
    const fb = b[i]!;
    if (frameKey(fa) === frameKey(fb)) continue;
    return !(fa.kind === "case" && fb.kind === "case" && fa.step === fb.step);
  }
  return true;
}

/**
 * Drops switch frames once every case of the switch has arrived with the same rest: past the
 * point where its cases converge, which case ran no longer matters.
 */
function normalize(contexts: Context[], nodes: Record<string, GraphNode>): Context[] {
  let list = [...new Map(contexts.map((c) => [contextKey(c), c])).values()];
  for (let changed = true; changed; ) {
    changed = false;
    const groups = new Map<string, { rest: Context; step: string; branches: Set<string> }>();
    for (const c of list) {
      c.forEach((f, i) => {
        if (f.kind !== "case") return;
        const rest = [...c.slice(0, i), ...c.slice(i + 1)];
        const key = `${i}\0${f.step}\0${contextKey(rest)}`;
        const g = groups.get(key) ?? { rest, step: f.step, branches: new Set<string>() };
        g.branches.add(f.branch);
        groups.set(key, g);
      });
    }
    for (const [key, g] of groups) {
      const cases = nodes[g.step]!.next.filter((t) => t !== g.step);
      if (!cases.every((t) => g.branches.has(t))) continue;
      const i = Number(key.slice(0, key.indexOf("\0")));
      const restKey = contextKey(g.rest);
      list = list.filter((c) => !(c.length > i && c[i]!.kind === "case" && c[i]!.step === g.step && contextKey([...c.slice(0, i), ...c.slice(i + 1)]) === restKey));
      if (!list.some((c) => contextKey(c) === restKey)) list.push(g.rest);
      changed = true;
      break;
    }
  }
  return list;
}

/**
 * Checks that splits and joins match, reasoning about which paths can run together: each step
 * gets the set of contexts it can be reached in. A step reached in two contexts that can run
 * together must be a join; a join closes, for each set of paths that run together, the innermost
 * split they share, and needs every branch of it. Switch cases that converge (directly, or each
 * through its own foreach or branches into the same steps) are fine: only one of them runs.
 */
function splitContexts(nodes: Record<string, GraphNode>, order: string[], add: (step: string, rule: string, message: string) => void) {
  const contexts = new Map<string, Context[]>();
  const arriving = (from: string, ctx: Context, to: string): Context[] => {
    const p = nodes[from]!;
    if (opensSplit(p)) return [[...ctx, { kind: "split", step: from, branch: to }]];
    if (p.condition !== undefined) return to === from ? [] : [[...ctx, { kind: "case", step: from, branch: to }]];
    return [ctx];
  };
  const splitsOf = (c: Context) => c.filter((f) => f.kind === "split");
  for (const n of order) {
    const node = nodes[n]!;
    const incoming = node.inputs.flatMap((i) => (contexts.get(i) ?? []).flatMap((c) => arriving(i, c, n)));
    let here: Context[] = n === "start" ? [[]] : normalize(incoming, nodes);
    if (node.isJoin && n !== "start") {
      here = closeSplits(n, here, nodes, add);
    } else {
      for (let i = 0; i < here.length; i++) {
        const j = here.findIndex((other, k) => k > i && together(here[i]!, other));
        if (j < 0) continue;
        const a = here[i]!;
        const b = here[j]!;
        // The split where the two paths parted: their first differing frame.
        let k = 0;
        while (k < a.length && k < b.length && frameKey(a[k]!) === frameKey(b[k]!)) k++;
        const parted = a[k] ?? b[k];
        const where = parted ? ` of '${parted.step}'` : "";
        add(n, "not-a-join", `step '${n}' receives the parallel branches${where}, which run at the same time, and must be a join: give it one parameter (inputs)`);
        break;
      }
    }
    if (here.length > MAX_CONTEXTS) {
      add(n, "too-complex", `step '${n}' can be reached in more than ${MAX_CONTEXTS} different ways through switches and splits; simplify the graph`);
      here = here.slice(0, MAX_CONTEXTS);
    }
    contexts.set(n, here);
    node.splitParents = splitsOf(here[0] ?? []).map((f) => f.step);
    if (node.type === "end") {
      const open = here.find((c) => splitsOf(c).length > 0);
      if (open) add(n, "unjoined-branch", `the branches opened at '${splitsOf(open).at(-1)!.step}' reach 'end' without a join`);
    }
  }
}

/** A join: each set of paths that run together must bring every branch of one split. */
function closeSplits(n: string, incoming: Context[], nodes: Record<string, GraphNode>, add: (step: string, rule: string, message: string) => void): Context[] {
  const node = nodes[n]!;
  const topIndex = (c: Context) => c.findLastIndex((f) => f.kind === "split");
  if (incoming.length === 0 || incoming.some((c) => topIndex(c) < 0)) {
    const bare = incoming.find((c) => topIndex(c) < 0)?.at(-1);
    const how = incoming.every((c) => topIndex(c) < 0) ? "no split comes before it" : `a path reaches it without passing a split${bare ? ` (switch '${bare.step}' going to '${bare.branch}')` : ""}`;
    add(n, "join-without-split", `step '${n}' takes inputs but ${how}; remove the parameter or add a split`);
    // Go on as if each path's innermost split (if any) were closed here, to report nothing twice.
    return normalize(
      incoming.map((c) => (topIndex(c) < 0 ? c : c.slice(0, topIndex(c)))),
      nodes,
    );
  }
  // Sets of paths that can run together (connected by `together`).
  const groups: Context[][] = [];
  const seen = new Set<number>();
  for (let i = 0; i < incoming.length; i++) {
    if (seen.has(i)) continue;
    const group: Context[] = [];
    const stack = [i];
    seen.add(i);
    while (stack.length) {
      const k = stack.pop()!;
      group.push(incoming[k]!);
      incoming.forEach((c, m) => {
        if (!seen.has(m) && together(incoming[k]!, c)) {
          seen.add(m);
          stack.push(m);
        }
      });
    }
    groups.push(group);
  }
  const out: Context[] = [];
  for (const group of groups) {
    const tops = group.map((c) => c[topIndex(c)]!);
    const split = tops[0]!.step;
    const rests = new Set(group.map((c) => contextKey(c.slice(0, topIndex(c)))));
    if (tops.some((t) => t.step !== split) || rests.size > 1) {
      add(n, "join-mismatch", `join '${n}' receives branches of different splits (${[...new Set(tops.map((t) => `'${t.step}'`))].join(", ")}) that run at the same time; each join closes one split`);
      continue;
    }
    const splitNode = nodes[split]!;
    const branches = new Set(tops.map((t) => t.branch));
    const missing = splitNode.next.filter((b) => !branches.has(b));
    if (missing.length > 0) {
      add(n, "join-incomplete", `join '${n}' closes the split at '${split}' but branch${missing.length > 1 ? "es" : ""} ${missing.map((m) => `'${m}'`).join(", ")} never reach${missing.length > 1 ? "" : "es"} it`);
    }
    if (splitNode.matchingJoin && splitNode.matchingJoin !== n) {
      add(n, "join-mismatch", `the split at '${split}' is joined twice, by '${splitNode.matchingJoin}' and '${n}'`);
    }
    splitNode.matchingJoin = n;
    node.joins ??= split;
    out.push(group[0]!.slice(0, topIndex(group[0]!)));
  }
  return normalize(out, nodes);
}

function buildGraph(flowName: string, nodes: Record<string, GraphNode>, issues: GraphIssue[], fieldNames: Set<string>): FlowGraph {
  const names = Object.keys(nodes);
  const add = (step: string, rule: string, message: string) => issues.push({ step, rule, message });
  if (!nodes.start) add("start", "start-missing", "the flow has no 'start' step");
  if (!nodes.end) add("end", "end-missing", "the flow has no 'end' step");

  for (const node of Object.values(nodes)) {
    node.next = node.next.filter((t) => {
      if (nodes[t]) return true;
      add(node.name, "unknown-target", `step '${node.name}' goes to '${t}', which is not a @step of the flow`);
      return false;
    });
    for (const t of node.next) if (!(t === node.name && node.condition)) nodes[t]!.inputs.push(node.name);
    if (node.name === "start") node.type = "start";
    else if (node.name === "end") node.type = "end";
    if (node.foreach) node.type = "foreach";
    else if (node.condition) node.type = "switch";
    else if (node.next.length > 1) node.type = "split";
    if (node.isJoin) node.type = "join";
    if (node.next.includes(node.name) && !node.condition) add(node.name, "cycle", `step '${node.name}' goes to itself; only a switch case may loop back to its own step`);
  }
  if (nodes.start?.isJoin) add("start", "join-arity", "step 'start' takes a parameter; only join steps take inputs");
  if (nodes.start && nodes.start.inputs.length > 0) add("start", "start-has-inputs", `step 'start' is a target of ${nodes.start.inputs.map((s) => `'${s}'`).join(", ")}; nothing may go back to start`);

  // Reachability.
  const reached = new Set<string>();
  const stack = nodes.start ? ["start"] : [];
  while (stack.length) {
    const s = stack.pop()!;
    if (reached.has(s)) continue;
    reached.add(s);
    stack.push(...nodes[s]!.next);
  }
  for (const n of names) if (!reached.has(n) && nodes.start) add(n, "unreachable", `step '${n}' cannot be reached from 'start'`);

  // Topological order (self-loops of switches excluded); what is left is a cycle.
  const indegree = new Map(names.map((n) => [n, nodes[n]!.inputs.length]));
  const order: string[] = [];
  const queue = names.filter((n) => indegree.get(n) === 0 && reached.has(n));
  while (queue.length) {
    const n = queue.shift()!;
    order.push(n);
    for (const t of nodes[n]!.next) {
      if (t === n) continue;
      indegree.set(t, indegree.get(t)! - 1);
      if (indegree.get(t) === 0) queue.push(t);
    }
  }
  const inCycle = names.filter((n) => reached.has(n) && !order.includes(n));
  if (inCycle.length > 0) {
    add(inCycle[0]!, "cycle", `steps ${inCycle.map((s) => `'${s}'`).join(", ")} form a cycle; the only loop allowed is a switch case that goes back to its own step`);
  }

  // Split/join structure: every split is closed by exactly one join (see `splitContexts`).
  splitContexts(nodes, order, add);

  // As Metaflow: a foreach or switch that failed has no list or value to go on with.
  for (const n of order) {
    const node = nodes[n]!;
    if (node.decorators.catch && (node.foreach || node.condition)) {
      const kind = node.foreach ? "foreach" : "switch";
      add(n, "catch-on-split", `step '${n}' has @catchError, but a ${kind} step that failed has no ${node.foreach ? "list" : "value"} to go on with; catch the error inside the step, or put @catchError on the steps around it`);
    }
  }

  // foreach/condition artifacts must be assigned before use.
  for (const n of order) {
    const node = nodes[n]!;
    const variable = node.foreach ?? node.condition;
    if (!variable) continue;
    const kind = node.foreach ? "foreach" : "condition";
    if (!ancestorsOf(nodes, n).some((a) => nodes[a]!.assigns.includes(variable)) && !fieldNames.has(variable)) {
      add(n, `${kind}-missing-artifact`, `step '${n}' uses { ${kind}: "${variable}" } but no step before it (or itself) assigns this.${variable}`);
    }
  }
  return { flowName, nodes, order };
}

/** A foreach, or a static branch into several steps (a switch runs only one case). */
export function opensSplit(node: GraphNode): boolean {
  return node.foreach !== undefined || (node.condition === undefined && node.next.length > 1);
}

function ancestorsOf(nodes: Record<string, GraphNode>, step: string): string[] {
  const seen = new Set<string>([step]);
  const stack = [step];
  while (stack.length) {
    for (const p of nodes[stack.pop()!]!.inputs) {
      if (!seen.has(p)) {
        seen.add(p);
        stack.push(p);
      }
    }
  }
  return [...seen];
}

/**
 * One parameter as `show` and `run --help` both print it:
 * `--mode <string>  how to train; one of "careful", "fast" (default: "careful")`.
 */
export function formatParameter(p: ParameterSpec): string {
  if (p.kind === "config") {
    const def = p.default === undefined ? (p.required ? "required" : "no default file") : `default: ${p.default}`;
    return `--config ${p.name}=<file or JSON>  ${p.help ?? ""}${p.help ? " " : ""}(${def})`;
  }
  const def = containsConfigRef(p.default) ? "default: from a config" : p.default === undefined ? (p.required ? "required" : "no default") : `default: ${JSON.stringify(p.default)}`;
  const choices = p.choices ? `one of ${p.choices.map((c) => JSON.stringify(c)).join(", ")}` : "";
  const help = [p.help, choices].filter(Boolean).join("; ");
  return `--${p.name} <${p.kind === "file" ? "path" : p.typeFromDefault ? "value" : p.type}>  ${help}${help ? " " : ""}(${def})`;
}

/** The graph as readable text, for `tsflow show`. */
export function formatGraph(info: FlowInfo): string {
  const lines: string[] = [];
  const { graph } = info;
  const params = Object.entries(info.parameters);
  lines.push(`${info.name}`);
  if (params.length) {
    lines.push("", "Parameters:");
    for (const [field, p] of params) lines.push(`  ${formatParameter(p)}${field !== p.name ? ` → this.${field}` : ""}`);
  }
  lines.push("", "Steps:");
  for (const name of graph.order) {
    const node = graph.nodes[name]!;
    const indent = "  ".repeat(node.splitParents.length + 1);
    const decos = Object.keys(node.decorators).map((d) => `@${d}`).join(" ");
    let arrow: string;
    if (node.type === "end") arrow = "(end)";
    else if (node.foreach) arrow = `→ foreach ${node.foreach}: ${node.next[0]}`;
    else if (node.cases) arrow = `→ switch on ${node.condition}: ${Object.entries(node.cases).map(([k, v]) => `${k} → ${v}`).join(", ")}`;
    else if (node.next.length > 1) arrow = `→ ${node.next.join(" | ")} (parallel)`;
    else arrow = `→ ${node.next[0]}`;
    const kind = node.isJoin ? " [join]" : "";
    lines.push(`${indent}${name}${kind} ${arrow}${decos ? `   ${decos}` : ""}`);
  }
  return lines.join("\n");
}
