/**
 * Run options come from three places, strongest first: the command line, `TSFLOW_<FLAG>`
 * environment variables, and a `tsflow.config.json` (or `.js`/`.mjs`/`.ts`) found by walking up
 * from the working directory. Unknown `--flags` of `run` are the flow's parameters.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { TsflowError } from "../core/errors.ts";
import { untrusted, warnIgnored } from "../plugins/host/trust.ts";
import { DECORATORS } from "../core/flow.ts";

export interface RunFlags {
  file?: string;
  flow?: string;
  datastore?: string;
  executor?: string;
  tags: string[];
  with: string[];
  maxWorkers?: number;
  maxNumSplits?: number;
  freshWorkers: boolean;
  /** Flow parameters, raw strings by name. */
  params: Record<string, string>;
  /** Flow parameters given without a value (`--verbose`): only a boolean parameter may be. */
  bare: string[];
  /** Positional arguments after the file (resume's STEP). */
  rest: string[];
  originRunId?: string;
  /** `--no-cache`: run `@cached` steps even when an earlier result matches. */
  noCache: boolean;
  /** `--config name=FILE` (or `name=<inline JSON>`), as given. */
  configs: string[];
  help: boolean;
}

type FlagKind = "string" | "number" | "list" | "boolean";
export const FLAGS: Record<string, { key: keyof RunFlags; kind: FlagKind }> = {
  flow: { key: "flow", kind: "string" },
  datastore: { key: "datastore", kind: "string" },
  executor: { key: "executor", kind: "string" },
  tag: { key: "tags", kind: "list" },
  with: { key: "with", kind: "list" },
  "max-workers": { key: "maxWorkers", kind: "number" },
  "max-num-splits": { key: "maxNumSplits", kind: "number" },
  "fresh-workers": { key: "freshWorkers", kind: "boolean" },
  "origin-run-id": { key: "originRunId", kind: "string" },
  "no-cache": { key: "noCache", kind: "boolean" },
  config: { key: "configs", kind: "list" },
  help: { key: "help", kind: "boolean" },
};

/** Parses `run`/`resume` arguments; anything unknown is kept as a flow parameter. */
export function parseRunArgs(argv: string[]): RunFlags {
  const flags: RunFlags = { tags: [], with: [], freshWorkers: false, params: {}, bare: [], rest: [], noCache: false, help: false, configs: [] };
  const positional: string[] = [];
  const seen = new Set<string>();
  // An option that takes one value given twice is a mistake to point out, not a last-one-wins.
  const once = (name: string) => {
    if (seen.has(name)) throw new TsflowError("BadOption", `option --${name} was given more than once; give it once`);
    seen.add(name);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h") {
      flags.help = true;
      continue;
    }
    if (!arg.startsWith("--") || arg === "--") {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const def = FLAGS[name];
    const takeValue = () => {
      if (inline !== undefined) return inline;
      const v = argv[i + 1];
      if (v === undefined || (v.startsWith("--") && v.length > 2)) throw new TsflowError("BadOption", `option --${name} needs a value`);
      i++;
      return v;
    };
    if (!def) {
      // A flow parameter. A bare `--flag` (or `--no-flag`) is a boolean; checkBareParameters
      // refuses it for any other type once the flow's parameters are known.
      const next = argv[i + 1];
      if (inline !== undefined) {
        once(name);
        flags.params[name] = inline;
      } else if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        const param = name.startsWith("no-") ? name.slice(3) : name;
        once(param);
        flags.params[param] = name.startsWith("no-") ? "false" : "true";
        flags.bare.push(name);
      } else {
        once(name);
        flags.params[name] = next;
        i++;
      }
      continue;
    }
    const target = flags as unknown as Record<string, unknown>;
    if (def.kind !== "list") once(name);
    switch (def.kind) {
      case "boolean":
        target[def.key] = inline === undefined ? true : inline !== "false";
        break;
      case "list":
        (target[def.key] as string[]).push(takeValue());
        break;
      case "number":
        target[def.key] = positiveInt(`--${name}`, takeValue());
        break;
      default:
        target[def.key] = takeValue();
    }
  }
  flags.file = positional[0];
  flags.rest = positional.slice(1);
  return flags;
}

/**
 * A flow parameter given without a value is only a boolean switch: `--genre` at the end of the
 * line (or followed by another option) would otherwise become the string "true".
 */
export function checkBareParameters(flags: RunFlags, parameters: Record<string, { name: string; type: string; kind: string }>): void {
  const byName = new Map(Object.values(parameters).map((p) => [p.name, p]));
  for (const given of flags.bare) {
    const p = byName.get(given) ?? (given.startsWith("no-") ? byName.get(given.slice(3)) : undefined);
    if (!p || (p.type === "boolean" && p.kind !== "file")) continue;
    const what = p.kind === "file" ? "a file path" : `a ${p.type} value`;
    throw new TsflowError("BadOption", `option --${p.name} needs ${what}: --${p.name} <${p.kind === "file" ? "path" : p.type}>`);
  }
}

/** `--config train=prod.json` / `--config 'train={"lr":0.1}'` → `{ train: "prod.json" }`. */
export function parseConfigFlags(specs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    if (eq < 1) throw new TsflowError("BadOption", `--config ${spec}: write NAME=FILE or NAME=<inline JSON>, e.g. --config train=prod.json`);
    const name = spec.slice(0, eq);
    if (Object.hasOwn(out, name)) throw new TsflowError("BadOption", `--config ${name} is given twice`);
    out[name] = spec.slice(eq + 1);
  }
  return out;
}

function positiveInt(option: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new TsflowError("BadOption", `option ${option} must be a whole number of at least 1, got '${value}'`);
  return n;
}

/** Fills flags the user did not give from `TSFLOW_*` variables and the config file. */
export async function applyDefaults(flags: RunFlags, cwd = process.cwd()): Promise<RunFlags> {
  const config = await loadConfig(cwd);
  const env = process.env;
  const pick = (name: string): unknown => env[`TSFLOW_${name.toUpperCase().replace(/-/g, "_")}`] ?? config[camel(name)] ?? config[name];
  flags.datastore ??= pick("datastore") as string | undefined;
  flags.executor ??= pick("executor") as string | undefined;
  const mw = flags.maxWorkers ?? pick("max-workers");
  if (mw !== undefined) flags.maxWorkers = positiveInt("--max-workers", String(mw));
  const ms = flags.maxNumSplits ?? pick("max-num-splits");
  if (ms !== undefined) flags.maxNumSplits = positiveInt("--max-num-splits", String(ms));
  if (!flags.freshWorkers) {
    const fw = pick("fresh-workers");
    flags.freshWorkers = fw === true || fw === "1" || fw === "true";
  }
  if (flags.tags.length === 0) flags.tags = listOf(pick("tag") ?? config.tags);
  if (flags.with.length === 0) flags.with = listOf(pick("with"));
  return flags;
}

function listOf(v: unknown): string[] {
  if (v === undefined || v === null || v === "") return [];
  if (Array.isArray(v)) return v.map(String);
  return String(v)
    .split(/\s+/)
    .filter(Boolean);
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

const CONFIG_NAMES = ["tsflow.config.json", "tsflow.config.mjs", "tsflow.config.js", "tsflow.config.ts"];

/** The nearest `tsflow.config.*`, or `{}`. */
export async function loadConfig(cwd = process.cwd()): Promise<Record<string, unknown>> {
  let dir = resolve(cwd);
  for (;;) {
    for (const name of CONFIG_NAMES) {
      const file = join(dir, name);
      if (!existsSync(file)) continue;
      // A config file is code tsflow runs: another user's, planted in a common ancestor, is not.
      const why = untrusted(file);
      if (why) {
        warnIgnored(file, why, "tsflow reads only config files that are yours and that nobody else may write");
        continue;
      }
      try {
        if (name.endsWith(".json")) {
          const { readFileSync } = await import("node:fs");
          return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
        }
        const mod = (await import(pathToFileURL(file).href)) as { default?: Record<string, unknown> };
        return mod.default ?? {};
      } catch (e) {
        throw new TsflowError("BadOption", `config file '${file}' cannot be read: ${(e as Error).message}`);
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return {};
    dir = parent;
  }
}

/**
 * `--with retry`, `--with timeout:seconds=30`, `--with batch:memory=8192,cpu=2` → decorator
 * options, completed with the same defaults as the decorators in code.
 */
export function parseWith(specs: string[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const spec of specs) {
    const colon = spec.indexOf(":");
    const name = colon === -1 ? spec : spec.slice(0, colon);
    const alias = name === "catchError" ? "catch" : name;
    // Own keys only: `--with __proto__` or `--with constructor` must not find Object.prototype members.
    const normalize = Object.hasOwn(DECORATORS, alias) ? DECORATORS[alias] : undefined;
    if (!normalize) {
      throw new TsflowError("BadOption", `unknown decorator '${name}' in --with ${spec} (known: ${Object.keys(DECORATORS).join(", ")})`);
    }
    if (Object.hasOwn(out, alias)) throw new TsflowError("BadOption", `--with ${name} was given twice; give each decorator once, with all its attributes (--with ${name}:a=1,b=2)`);
    const opts: Record<string, unknown> = {};
    if (colon !== -1) {
      for (const pair of spec.slice(colon + 1).split(",")) {
        if (!pair) continue;
        const eq = pair.indexOf("=");
        if (eq === -1) throw new TsflowError("BadOption", `--with ${spec}: '${pair}' must be attribute=value`);
        const k = pair.slice(0, eq);
        const v = pair.slice(eq + 1);
        opts[k] = v !== "" && !Number.isNaN(Number(v)) ? Number(v) : v === "true" ? true : v === "false" ? false : v;
      }
    }
    try {
      // environment's attributes are the variables themselves: --with environment:A=1,B=2.
      out[alias] = alias === "environment" ? normalize({ vars: Object.fromEntries(Object.entries(opts).map(([k, v]) => [k, String(v)])) }) : normalize(opts);
    } catch (e) {
      if (e instanceof TsflowError) throw new TsflowError("BadOption", `--with ${spec}: ${e.message}`);
      throw e;
    }
  }
  return out;
}
