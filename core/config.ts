/**
 * `Config`: configuration read before a run starts, and `config`, the way decorator arguments
 * and parameter defaults refer to it.
 *
 * Decorators run when the class is defined, long before anyone says which config file a run
 * uses. So `config.train.memory` does not read anything: it is a reference (a path into the
 * configs) and `config((c) => c.train.memory * 2)` an expression, both kept as they are in the
 * decorator's options. When a run starts, its configs are read and checked, and
 * {@link applyConfig} swaps every reference for its value in a copy of the flow's graph — the
 * class itself never changes, so one process can run the same flow with different configs.
 *
 * A config is stored with the run like a parameter (a content-addressed artifact named after
 * its field), so every step reads it as `this.train`, `resume` and `spin` reuse the origin's,
 * and `@cached` keys cover it.
 */
import { TsflowError } from "./errors.ts";
import { containsConfigRef, DECORATORS, describeParam, inferType, isConfigRef, type ParameterSpec } from "./flow.ts";
import type { FlowInfo, GraphNode } from "./graph.ts";
import type { Host } from "./types.ts";

const CONFIG_REF = Symbol.for("tsflow.configRef");

/** An issue found by a validator: what is wrong and where (a path into the config). */
export interface ConfigIssue {
  message: string;
  path?: ReadonlyArray<PropertyKey | { key: PropertyKey }>;
}

/**
 * The Standard Schema interface (https://standardschema.dev), implemented by zod ≥ 3.24,
 * valibot, arktype…: `schema` accepts any of them without tsflow depending on one.
 */
export interface StandardSchemaV1<Output = unknown> {
  readonly "~standard": {
    readonly version: 1;
    readonly vendor: string;
    validate(value: unknown): StandardResult<Output> | Promise<StandardResult<Output>>;
    readonly types?: { readonly input: unknown; readonly output: Output };
  };
}
type StandardResult<Output> = { readonly value: Output; readonly issues?: undefined } | { readonly issues: ReadonlyArray<ConfigIssue> };

/** What a validator returns: nothing when the value is fine. */
// biome-ignore lint/suspicious/noConfusingVoidType: a validator with no return statement (void) passes the value
export type ValidateResult = string | readonly ConfigIssue[] | undefined | void;

/** Options of {@link Config}. */
export interface ConfigOptions<T> {
  /** File read when the run gives none: a path relative to the working directory. */
  default?: string;
  /** The value when neither `--config` nor `default` gives one. */
  defaultValue?: T;
  /** Turns the file's text into the value (YAML, TOML…). Default: `JSON.parse`. */
  parser?: (text: string) => unknown;
  /** Checks (and may transform) the parsed value: any Standard Schema (zod, valibot, arktype). */
  schema?: StandardSchemaV1<T>;
  /**
   * Checks the parsed value: return nothing when it is fine, else a message or issues with the
   * path of the field at fault (`[{ path: ["optimizer", "lr"], message: "must be > 0" }]`).
   */
  validate?: (value: T) => ValidateResult;
  /** Fail when no value is given and there is no default. Default: false (the config is `undefined`). */
  required?: boolean;
  help?: string;
}

/** What a `Config()` descriptor carries for the runtime (see {@link ParameterSpec.config}). */
export interface ConfigSource {
  default?: string;
  defaultValue?: unknown;
  parser?: (text: string) => unknown;
  schema?: StandardSchemaV1<unknown>;
  validate?: (value: any) => ValidateResult;
}

/**
 * A configuration of the flow, read and validated before the run starts:
 * `tsflow run flow.ts --config train=prod.json` (or inline JSON: `--config 'train={"lr":0.1}'`),
 * `runFlow(F, { config: { train: "prod.json" } })`. Typed from `schema`, or given: `Config<Train>(…)`.
 * In every step it is a read-only artifact (`this.train.lr`); in decorator arguments and
 * parameter defaults use {@link config} (`@resources({ memory: config.train.memory })`).
 */
export function Config<S extends StandardSchemaV1<any>>(
  name: string,
  options: ConfigOptions<NonNullable<S["~standard"]["types"]>["output"]> & { schema: S },
): Readonly<NonNullable<S["~standard"]["types"]>["output"]>;
export function Config<T = any>(name: string, options?: ConfigOptions<T>): Readonly<T>;
export function Config(name: string, options: ConfigOptions<unknown> = {}): unknown {
  return describeParam(name, {
    kind: "config",
    type: "json",
    help: options.help,
    required: options.required ?? false,
    default: options.default,
    config: { default: options.default, defaultValue: options.defaultValue, parser: options.parser, schema: options.schema, validate: options.validate },
  });
}

type RefInfo = { path: string[] } | { expr: (configs: any) => unknown };

function makeRef(info: RefInfo): any {
  // A function target so that the root, `config`, can also be called with an expression.
  return new Proxy(() => {}, {
    get(_target, key) {
      if (key === CONFIG_REF) return info;
      // Not a thenable, not a primitive: a reference only means something once resolved.
      if (typeof key === "symbol" || key === "then" || !("path" in info)) return undefined;
      return makeRef({ path: [...info.path, key] });
    },
    apply(_target, _this, args) {
      if ("path" in info && info.path.length === 0 && typeof args[0] === "function") return makeRef({ expr: args[0] as (c: unknown) => unknown });
      throw new TsflowError("BadFlow", `config${"path" in info ? info.path.map((p) => `.${p}`).join("") : "(…)"} is a reference to a config value, not a function; for an expression write config((c) => …)`);
    },
  });
}

/** What `config` looks like to TypeScript: any config path, or `config((c) => expression)`. */
export interface ConfigAccess {
  <T>(expression: (configs: any) => T): T;
  readonly [name: string]: any;
}

/**
 * Config values where only the class definition is known (decorator arguments, parameter
 * defaults): `config.train.memory` refers to field `memory` of config `train`;
 * `config((c) => c.train.memory * 2)` computes from the configs. Both are resolved when the run
 * starts, before anything is created; a missing config or field stops the run, naming it.
 */
export const config: ConfigAccess = makeRef({ path: [] });

/** Config values by config name, read from a flow's parameter values (which include them). */
export function configValues(info: FlowInfo, values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of Object.values(info.parameters)) if (spec.kind === "config") out[spec.name] = values[spec.name];
  return out;
}

function resolveRef(ref: unknown, configs: Record<string, unknown>, where: string): unknown {
  const info = (ref as Record<symbol, RefInfo>)[CONFIG_REF]!;
  if ("expr" in info) {
    try {
      return info.expr(Object.freeze({ ...configs }));
    } catch (e) {
      throw new TsflowError("BadConfig", `${where}: config((c) => …) failed: ${(e as Error).message}`);
    }
  }
  const [name, ...fields] = info.path;
  if (name === undefined) throw new TsflowError("BadConfig", `${where}: 'config' alone names no config; write config.<name>.<field>`);
  if (!Object.hasOwn(configs, name)) {
    const known = Object.keys(configs);
    throw new TsflowError("BadConfig", `${where}: config.${info.path.join(".")} names config '${name}', which the flow does not declare${known.length ? ` (it has ${known.join(", ")})` : ""}`);
  }
  let value = configs[name];
  const seen: string[] = [name];
  for (const field of fields) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, field)) {
      throw new TsflowError("BadConfig", `${where}: config '${name}' has no field '${[...seen.slice(1), field].join(".")}' (config.${info.path.join(".")})`);
    }
    value = (value as Record<string, unknown>)[field];
    seen.push(field);
  }
  return value;
}

/** `value` with every config reference inside (plain objects and arrays) replaced by its value. */
export function substituteConfig(value: unknown, configs: Record<string, unknown>, where: string): unknown {
  if (isConfigRef(value)) return resolveRef(value, configs, where);
  if (!containsConfigRef(value)) return value;
  if (Array.isArray(value)) return value.map((v) => substituteConfig(v, configs, where));
  return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, substituteConfig(v, configs, where)]));
}

/**
 * The flow's info with every config reference resolved: decorator options (a built-in's
 * defaults filled in after) and parameter defaults. Returns `info` itself when nothing refers
 * to a config; never changes `info`, which is cached per class.
 */
export function applyConfig(info: FlowInfo, configs: Record<string, unknown>): FlowInfo {
  const nodes: Record<string, GraphNode> = {};
  let changed = false;
  for (const [name, node] of Object.entries(info.graph.nodes)) {
    if (!Object.values(node.decorators).some((d) => containsConfigRef(d))) {
      nodes[name] = node;
      continue;
    }
    changed = true;
    const decorators: Record<string, Record<string, unknown>> = {};
    for (const [d, opts] of Object.entries(node.decorators)) {
      if (!containsConfigRef(opts)) {
        decorators[d] = opts;
        continue;
      }
      const where = `decorator @${d} of step '${name}'`;
      const value = substituteConfig(opts, configs, where);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new TsflowError("BadConfig", `${where}: its options come from a config and must be an object, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`);
      }
      decorators[d] = Object.hasOwn(DECORATORS, d) ? DECORATORS[d]!(value as Record<string, unknown>) : (value as Record<string, unknown>);
    }
    nodes[name] = { ...node, decorators };
  }
  const parameters: Record<string, ParameterSpec> = {};
  for (const [field, spec] of Object.entries(info.parameters)) {
    if (spec.kind === "config" || !containsConfigRef(spec.default)) {
      parameters[field] = spec;
      continue;
    }
    changed = true;
    const value = substituteConfig(spec.default, configs, `default of parameter '${spec.name}'`);
    const { typeFromDefault, name, ...rest } = spec;
    parameters[field] = describeParam(name, { ...rest, default: value, ...(typeFromDefault ? { type: inferType(value) } : {}) });
  }
  if (!changed) return info;
  return { ...info, graph: { ...info.graph, nodes }, parameters };
}

/** True when some decorator or parameter default of the flow refers to a config. */
export function usesConfig(info: FlowInfo): boolean {
  return Object.values(info.graph.nodes).some((n) => containsConfigRef(n.decorators)) || Object.values(info.parameters).some((p) => containsConfigRef(p.default));
}

/**
 * Reads one config: `given` is a file path, inline JSON (text starting with `{` or `[`), or a
 * value (from code); else the declared default file, else `defaultValue`. Parses and
 * validates it; every failure names the config, the file and the field.
 */
export async function readConfig(spec: ParameterSpec, given: unknown, host: Host): Promise<unknown> {
  const source = spec.config ?? {};
  const name = spec.name;
  let value: unknown;
  let origin: string;
  if (given !== undefined && typeof given !== "string") {
    value = given;
    origin = "the value given";
  } else {
    let text: string | undefined;
    const raw = typeof given === "string" ? given : source.default;
    if (raw === undefined) {
      if (source.defaultValue !== undefined) return validate(spec, source.defaultValue, "its defaultValue");
      if (spec.required) throw new TsflowError("BadConfig", `config '${name}' is required: give it with --config ${name}=FILE (or inline JSON)${spec.help ? ` (${spec.help})` : ""}`);
      return undefined;
    }
    if (typeof given === "string" && /^\s*[[{]/.test(given)) {
      text = given;
      origin = "the inline value";
    } else {
      origin = `file '${raw}'`;
      try {
        text = new TextDecoder().decode(await host.readFile(raw));
      } catch (e) {
        throw new TsflowError("BadConfig", `config '${name}': cannot read ${origin} (${(e as Error).message})`);
      }
    }
    try {
      value = source.parser ? await source.parser(text) : JSON.parse(text, (k, v) => (k === "__proto__" ? undefined : v));
    } catch (e) {
      throw new TsflowError("BadConfig", `config '${name}': cannot parse ${origin}: ${describeParseError(e as Error, text)}`);
    }
  }
  return validate(spec, value, origin);
}

async function validate(spec: ParameterSpec, value: unknown, origin: string): Promise<unknown> {
  const source = spec.config ?? {};
  let issues: readonly ConfigIssue[] = [];
  try {
    if (source.schema) {
      const result = await source.schema["~standard"].validate(value);
      if (result.issues) issues = result.issues;
      else value = result.value;
    }
    if (issues.length === 0 && source.validate) {
      const r = source.validate(value);
      if (typeof r === "string") issues = [{ message: r }];
      else if (Array.isArray(r)) issues = r;
    }
  } catch (e) {
    issues = [{ message: (e as Error).message ?? String(e) }];
  }
  if (issues.length === 0) return value;
  const lines = issues.map((i) => (i.path?.length ? `field '${i.path.map((p) => String(typeof p === "object" ? p.key : p)).join(".")}': ${i.message}` : i.message));
  throw new TsflowError("BadConfig", `config '${spec.name}' from ${origin} is invalid: ${lines[0]}`, lines.slice(1));
}

/** Node 20 says "at position N" only: add the line and column, which a person can find. */
function describeParseError(e: Error, text: string): string {
  const m = /at position (\d+)/.exec(e.message);
  if (!m || /line \d+/.test(e.message)) return e.message;
  const pos = Number(m[1]);
  const before = text.slice(0, pos).split("\n");
  return `${e.message} (line ${before.length}, column ${before.at(-1)!.length + 1})`;
}
