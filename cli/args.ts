/**
 * Arguments of `run` and `resume`. Unknown `--flags` are the flow's parameters; defaults from
 * `TSFLOW_*` and the config file are the runner's business (runner/options.ts).
 */
import { TsflowError } from "../core/errors.ts";
import { positiveInt } from "../runner/options.ts";

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
