/**
 * A flow class defined in a notebook cell (or a REPL) has no file, yet warm workers in other
 * processes must import it. Metaflow's NBRunner writes the cell to a file; a TypeScript kernel
 * gives library code no access to the cell's text, so tsflow rebuilds a module from what the
 * kernel does hold:
 *
 * - the class's own source (`Function.prototype.toString`: the kernel's transpiled JavaScript),
 *   with the transpiler's decorator bookkeeping removed and each step's decorators written back
 *   as the data they recorded (`@step`, `@retry({ times: 2 })`, `@card`, …);
 * - every name the class uses from outside itself, looked up in the kernel's global scope:
 *   tsflow's exports are imported from this very tsflow; functions and classes defined in the
 *   notebook are copied by their source (and what they use, in turn); JSON values are copied as
 *   values. Anything else (an imported package, an object with state) cannot be rebuilt in
 *   another process: the error names it and says what to do.
 *
 * The module is named by the hash of its text, so re-running an edited cell gives a new module
 * and the next run's workers import the new code: nothing stale is reused.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parse } from "acorn";
import { TsflowError } from "../core/errors.ts";
import { getStepMeta } from "../core/flow.ts";
import { userCacheDir } from "../plugins/host/trust.ts";
import { libraryPath } from "./load.ts";

/** A flow class rebuilt as a module file: what workers import. */
export interface NotebookModule {
  file: string;
  exportName: string;
  /** The module's text (also in `file`). */
  source: string;
}

type Node = { type: string; start: number; end: number; [k: string]: unknown };

/** The global object's names when tsflow loaded: the runtime's, not the notebook's. */
const RUNTIME_GLOBALS = new Set(Object.getOwnPropertyNames(globalThis));

/** Writes (once per distinct content) the module that defines `flowClass` and returns it. */
export async function notebookModule(flowClass: Function): Promise<NotebookModule> {
  const lib = libraryPath();
  const libExports = new Set(Object.keys(await import(pathToFileURL(lib).href)));
  const name = flowClass.name;
  const imports = new Set<string>();
  const decls: string[] = [];
  const seen = new Set<string>([name]);
  const what = `flow ${name} (defined without a file, e.g. in a notebook cell)`;

  const capture = (label: string, value: Function, declName: string, own: boolean): void => {
    const { code, free } = cleanSource(value, label);
    for (const id of free) {
      if (seen.has(id)) continue;
      seen.add(id);
      if (libExports.has(id)) {
        imports.add(id);
        continue;
      }
      const found = lookupGlobal(id);
      if (!found.exists) continue; // not defined here either: the same ReferenceError a file would give
      const v = found.value;
      if (found.builtin) continue;
      if (typeof v === "function") {
        capture(`'${id}'`, v, id, false);
      } else if (isJsonValue(v)) {
        decls.push(`const ${id} = ${v === undefined ? "undefined" : JSON.stringify(v)};`);
      } else {
        throw new TsflowError(
          "BadFlow",
          `${what} uses '${id}' from the notebook, which worker processes cannot rebuild (${describe(v)}): import it inside the step that needs it (const { x } = await import("npm:pkg")), define it in the class, or run with { executor: "inline" }`,
        );
      }
    }
    const decl = /^class\b/.test(code) || /^(async\s+)?function\b/.test(code) ? (own || value.name === declName ? code : `const ${declName} = ${code};`) : `const ${declName} = ${code};`;
    decls.push(decl + restoreSteps(value, declName, what));
  };
  capture(what, flowClass, name, true);

  const source = [
    `// Rebuilt by tsflow from the notebook's class ${name}: what worker processes import.`,
    imports.size ? `import { ${[...imports].sort().join(", ")} } from ${JSON.stringify(pathToFileURL(lib).href)};` : "",
    ...decls,
    `export { ${name} };`,
    `export default ${name};`,
    "",
  ].join("\n");
  const dir = userCacheDir("notebooks");
  const file = join(dir, `${name}-${createHash("sha256").update(source).digest("hex").slice(0, 20)}.mjs`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, source);
    renameSync(tmp, file);
  }
  return { file, exportName: name, source };
}

/** Whether this process is a notebook kernel (Deno's), where a class without a file comes from a cell. */
export function inNotebookKernel(): boolean {
  return denoJupyter() !== undefined;
}

/** Deno's `Deno.jupyter`, in its kernel only: elsewhere reading it throws ("only available in `deno jupyter`"). */
export function denoJupyter<T = unknown>(): T | undefined {
  const deno = (globalThis as { Deno?: { jupyter?: T } }).Deno;
  if (!deno) return undefined;
  try {
    return deno.jupyter ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * The source of a function or class without the transpiler's decorator bookkeeping, and the
 * names it uses from outside itself.
 */
function cleanSource(value: Function, label: string): { code: string; free: Set<string> } {
  const text = Function.prototype.toString.call(value);
  if (/\[native code\]\s*\}$/.test(text)) throw new TsflowError("BadFlow", `${label} is a built-in function; tsflow cannot copy it to worker processes`);
  let ast: Node;
  try {
    ast = parse(`(${text}\n)`, { ecmaVersion: "latest", sourceType: "module" }) as unknown as Node;
  } catch (e) {
    throw new TsflowError("BadFlow", `cannot read the source of ${label} to copy it to worker processes (${(e as Error).message}); define it as a class, a function or an arrow function`);
  }
  // Offsets below are in `(${text}\n)`: one character ahead of `text`.
  const edits: { start: number; end: number; text: string }[] = [];
  walk(ast, (node) => {
    // swc (Deno) lowers standard decorators into a static block calling `_apply_decs_…` and
    // `_initProto(this)` calls in the constructor or the first field; the metadata they would
    // set is written back by `restoreSteps`.
    if (node.type === "StaticBlock" && /\b_apply_decs_\w+\(/.test(text.slice(node.start - 1, node.end - 1))) edits.push({ start: node.start - 1, end: node.end - 1, text: "" });
    if (node.type === "CallExpression" && (node.callee as Node).type === "Identifier" && /^_initProto\d*$/.test((node.callee as { name: string }).name)) {
      edits.push({ start: node.start - 1, end: node.end - 1, text: "void 0" });
    }
  });
  let code = text;
  for (const e of edits.sort((a, b) => b.start - a.start)) code = code.slice(0, e.start) + e.text + code.slice(e.end);
  if (edits.length) ast = parse(`(${code}\n)`, { ecmaVersion: "latest", sourceType: "module" }) as unknown as Node;
  return { code, free: freeNames(ast) };
}

/** Names referenced and not declared anywhere inside `root` (shadowing is treated as declared everywhere: a superset is harmless). */
function freeNames(root: Node): Set<string> {
  const declared = new Set<string>(["arguments", "undefined", "this"]);
  const used = new Set<string>();
  const bind = (p: Node | null | undefined): void => {
    if (!p) return;
    if (p.type === "Identifier") declared.add(p.name as string);
    else if (p.type === "ObjectPattern") for (const prop of p.properties as Node[]) bind(prop.type === "RestElement" ? prop : (prop.value as Node));
    else if (p.type === "ArrayPattern") for (const el of p.elements as (Node | null)[]) bind(el);
    else if (p.type === "RestElement") bind(p.argument as Node);
    else if (p.type === "AssignmentPattern") bind(p.left as Node);
  };
  walk(root, (node, parent, key) => {
    switch (node.type) {
      case "VariableDeclarator":
        bind(node.id as Node);
        break;
      case "FunctionDeclaration":
      case "FunctionExpression":
      case "ArrowFunctionExpression":
      case "ClassDeclaration":
      case "ClassExpression":
        if (node.id) bind(node.id as Node);
        for (const p of (node.params as Node[] | undefined) ?? []) bind(p);
        break;
      case "CatchClause":
        bind(node.param as Node);
        break;
      case "Identifier": {
        const p = parent;
        if (!p) break;
        // Property names, member names and labels are not variables.
        if ((p.type === "MemberExpression" && key === "property" && !p.computed) || ((p.type === "Property" || p.type === "MethodDefinition" || p.type === "PropertyDefinition") && key === "key" && !p.computed)) break;
        if (p.type === "LabeledStatement" || p.type === "BreakStatement" || p.type === "ContinueStatement") break;
        used.add(node.name as string);
        break;
      }
    }
  });
  return new Set([...used].filter((n) => !declared.has(n)));
}

function walk(node: Node, visit: (node: Node, parent: Node | undefined, key: string | undefined) => void, parent?: Node, key?: string): void {
  visit(node, parent, key);
  for (const [k, v] of Object.entries(node)) {
    if (Array.isArray(v)) {
      for (const c of v) if (c && typeof c === "object" && typeof (c as Node).type === "string") walk(c as Node, visit, node, k);
    } else if (v && typeof v === "object" && typeof (v as Node).type === "string") walk(v as Node, visit, node, k);
  }
}

/**
 * A name's value in the kernel's global scope: top-level `const`/`let`/`class` of earlier cells
 * live in the global lexical scope, which only global code (an indirect eval) can see.
 */
function lookupGlobal(id: string): { exists: boolean; value?: unknown; builtin?: boolean } {
  if (!/^[A-Za-z_$][\w$]*$/.test(id)) return { exists: false };
  let value: unknown;
  try {
    // An indirect eval (global code) of a checked identifier: the kernel's global scope.
    // biome-ignore lint/security/noGlobalEval: only a name checked above is evaluated
    const globalEval = globalThis.eval;
    value = globalEval(id);
  } catch {
    return { exists: false };
  }
  // Globals every process has (console, Math, fetch, Deno, process): native functions, and the
  // runtime's own globals (there before tsflow loaded); a notebook's `var x` is not one of them.
  const native = typeof value === "function" && /\[native code\]\s*\}$/.test(Function.prototype.toString.call(value));
  return { exists: true, value, builtin: native || (RUNTIME_GLOBALS.has(id) && typeof value !== "function") };
}

function isJsonValue(v: unknown): boolean {
  if (v === undefined || v === null || typeof v === "string" || typeof v === "boolean") return true;
  if (typeof v === "number") return Number.isFinite(v);
  if (Array.isArray(v)) return v.every(isJsonValue);
  if (typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) return Object.values(v as object).every(isJsonValue);
  return false;
}

function describe(v: unknown): string {
  if (v && typeof v === "object") {
    if (Object.prototype.toString.call(v) === "[object Module]") return "an imported module";
    return `a ${(v as object).constructor?.name ?? "object"}`;
  }
  return typeof v;
}

/** Statements that give each step method of `cls` the decorator metadata it had in the kernel. */
function restoreSteps(value: Function, declName: string, what: string): string {
  const proto = (value as { prototype?: object }).prototype;
  if (!proto) return "";
  const out: string[] = [];
  for (const key of Object.getOwnPropertyNames(proto)) {
    const meta = getStepMeta(Object.getOwnPropertyDescriptor(proto, key)?.value);
    if (!meta) continue;
    const data = { step: meta.step, decorators: meta.decorators };
    const json = JSON.stringify(data);
    if (json === undefined || JSON.stringify(JSON.parse(json)) !== json || !sameJson(data, JSON.parse(json))) {
      throw new TsflowError("BadFlow", `${what}: the decorators of step '${key}' hold values other than plain data (config references, functions); worker processes cannot rebuild them from a notebook: put the flow in a file, or run with { executor: "inline" }`);
    }
    out.push(`\nObject.defineProperty(${declName}.prototype[${JSON.stringify(key)}], Symbol.for("tsflow.stepMeta"), { value: ${json} });`);
  }
  return out.join("");
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || !a || !b) return false;
  if (Object.getOwnPropertySymbols(a).length) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
