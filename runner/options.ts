/**
 * Run options come from three places, strongest first: what the caller gave (the command line,
 * `runFlow`'s options), `TSFLOW_<OPTION>` environment variables, and a `tsflow.config.json` (or
 * `.js`/`.mjs`/`.ts`) found by walking up from the working directory.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { TsflowError } from "../core/errors.ts";
import { untrusted, warnIgnored } from "../plugins/host/trust.ts";
import { DECORATORS } from "../core/flow.ts";

export function positiveInt(option: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new TsflowError("BadOption", `option ${option} must be a whole number of at least 1, got '${value}'`);
  return n;
}

/** The run options that have `TSFLOW_*` and config-file defaults. */
export interface DefaultedOptions {
  datastore?: string;
  executor?: string;
  maxWorkers?: number;
  maxNumSplits?: number;
  freshWorkers?: boolean;
  tags?: string[];
  with?: string[];
}

/** Fills options the caller did not give from `TSFLOW_*` variables and the config file. */
export async function applyDefaults<T extends DefaultedOptions>(flags: T, cwd = process.cwd()): Promise<T> {
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
  if (!flags.tags?.length) flags.tags = listOf(pick("tag") ?? config.tags);
  if (!flags.with?.length) flags.with = listOf(pick("with"));
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
