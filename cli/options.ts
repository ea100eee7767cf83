/**
 * Run options come from three places, strongest first: the command line, `TSFLOW_<FLAG>`
 * environment variables, and a `tsflow.config.json` (or `.js`/`.mjs`/`.ts`) found by walking up
 * from the working directory. Unknown `--flags` of `run` are the flow's parameters.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { TsflowError } from "../core/errors.ts";
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
  /** Positional arguments after the file (resume's STEP). */
  rest: string[];
  originRunId?: string;
  /** `--no-cache`: run `@cached` steps even when an earlier result matches. */
  noCache: boolean;
  help: boolean;
}

type FlagKind = "string" | "number" | "list" | "boolean";
const FLAGS: Record<string, { key: keyof RunFlags; kind: FlagKind }> = {
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
  help: { key: "help", kind: "boolean" },
};

/** Parses `run`/`resume` arguments; anything unknown is kept as a flow parameter. */
export function parseRunArgs(argv: string[]): RunFlags {
  const flags: RunFlags = { tags: [], with: [], freshWorkers: false, params: {}, rest: [], noCache: false, help: false };
  const positional: string[] = [];
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
      // A flow parameter. A bare `--flag` (or `--no-flag`) is a boolean.
      const next = argv[i + 1];
      if (inline !== undefined) flags.params[name] = inline;
      else if (next === undefined || next.startsWith("--")) {
        if (name.startsWith("no-")) flags.params[name.slice(3)] = "false";
        else flags.params[name] = "true";
      } else {
        flags.params[name] = next;
        i++;
      }
      continue;
    }
    const target = flags as unknown as Record<string, unknown>;
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
    const opts: Record<string, unknown> = {};
    if (colon !== -1) {
      for (const pair of spec.slice(colon + 1).split(",")) {
        if (!pair) continue;
        const eq = pair.indexOf("=");
        if (eq === -1) throw new TsflowError("BadOption", `--with ${spec}: '${pair}' must be key=value`);
        const k = pair.slice(0, eq);
        const v = pair.slice(eq + 1);
        opts[k] = v !== "" && !Number.isNaN(Number(v)) ? Number(v) : v === "true" ? true : v === "false" ? false : v;
      }
    }
    if (alias === "environment") {
      out[alias] = normalize({ vars: opts });
    } else {
      out[alias] = normalize(opts);
    }
  }
  return out;
}
