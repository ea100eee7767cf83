/**
 * Fetching a task's `@secrets` at its start, in the task's own process, and setting them (with
 * `@environment`'s variables) as that task's environment only. Sources load lazily: a run
 * without secrets never loads the AWS SDK.
 *
 * Values live in this process's environment while the task runs and nowhere else: not in the
 * task spec (which holds the sources' names), so not in the datastore, a job definition or the
 * orchestrator. The task's output and error have every value masked, in case a step prints one.
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { TsflowError } from "../core/errors.ts";
import type { SecretSource } from "../core/flow.ts";
import type { SecretsProvider, SecretsProviderFactory, TaskSpec } from "../core/types.ts";
import { detectRuntime } from "../plugins/host/node.ts";
import { buildFlowModule } from "./load.ts";

const BUILTIN: Record<string, () => Promise<{ default: SecretsProviderFactory<any> }>> = {
  "aws-secrets-manager": () => import("../plugins/secrets/aws-secrets-manager.ts"),
  env: () => import("../plugins/secrets/env.ts"),
  file: () => import("../plugins/secrets/file.ts"),
};

/** What masked values are replaced with. */
export const MASK = "****";
/** Shorter values are not masked: they would hide ordinary words, and the output's own structure. */
const MIN_MASKED = 6;

const providers = new Map<string, Promise<SecretsProvider>>();

async function loadProvider(type: string, cwd: string): Promise<SecretsProvider> {
  let mod: { default?: unknown };
  if (Object.hasOwn(BUILTIN, type)) mod = await BUILTIN[type]!();
  else if (/[./\\]/.test(type)) {
    const file = isAbsolute(type) ? type : resolve(cwd, type);
    try {
      const module = /\.[cm]?tsx?$/.test(file) && detectRuntime() === "node" ? await buildFlowModule(file) : file;
      mod = await import(pathToFileURL(module).href);
    } catch (e) {
      throw new TsflowError("BadOption", `cannot load secrets source plugin '${type}': ${(e as Error).message.split("\n")[0]}`);
    }
  } else {
    throw new TsflowError("BadOption", `unknown secrets source type '${type}' (built in: ${Object.keys(BUILTIN).join(", ")}; or the path of a plugin file)`);
  }
  if (typeof mod.default !== "function") throw new TsflowError("BadOption", `secrets source plugin '${type}' must default-export a factory () => SecretsProvider`);
  const provider = (mod.default as SecretsProviderFactory)();
  if (!provider || typeof provider.get !== "function") throw new TsflowError("BadOption", `secrets source plugin '${type}' returned something without a get() method`);
  return provider;
}

/** `"aws-secrets-manager:prod/db"` → type and id; objects as given. */
export function parseSource(source: SecretSource): { type: string; id: string; envVarName?: string; options?: Record<string, unknown>; label: string } {
  if (typeof source !== "string") return { ...source, label: `${source.type}:${source.id}` };
  const colon = source.indexOf(":");
  return { type: source.slice(0, colon), id: source.slice(colon + 1), label: source };
}

/** The variables of every source, in order; two sources setting one variable is an error. */
export async function fetchSecrets(sources: readonly SecretSource[], cwd = process.cwd()): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const from: Record<string, string> = {};
  for (const source of sources) {
    const s = parseSource(source);
    let p = providers.get(s.type);
    if (!p) {
      p = loadProvider(s.type, cwd);
      providers.set(s.type, p);
      p.catch(() => providers.delete(s.type));
    }
    let vars: Record<string, string>;
    try {
      vars = await (await p).get(s.id, { envVarName: s.envVarName, options: s.options });
    } catch (e) {
      if (e instanceof TsflowError) throw e;
      throw new TsflowError("Secrets", `@secrets source '${s.label}' failed: ${(e as Error).message}`);
    }
    for (const [k, v] of Object.entries(vars)) {
      if (Object.hasOwn(out, k)) throw new TsflowError("Secrets", `@secrets sources '${from[k]}' and '${s.label}' both set ${k}; keep one (or give one an envVarName)`);
      out[k] = v;
      from[k] = s.label;
    }
  }
  return out;
}

/** The environment of one task: set while it runs, then put back as it was. */
export interface TaskEnvironmentScope {
  /** Replaces every secret value in `text` by {@link MASK}. */
  redact(text: string): string;
  /** Masks the secrets in everything this process writes to stdout/stderr until restored. */
  maskOutput(): void;
  restore(): void;
}

/**
 * Sets the task's `@environment` variables and fetched `@secrets` in `process.env`. Fetching
 * happens here, at task start; a failure throws naming the source.
 */
export async function enterTaskEnvironment(spec: TaskSpec): Promise<TaskEnvironmentScope> {
  const sources = spec.decorators.secrets?.sources as SecretSource[] | undefined;
  const secretVars = sources?.length ? await fetchSecrets(sources) : {};
  const vars = { ...spec.env, ...secretVars };
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  // Longest first, so a value containing another is masked whole.
  const values = [...new Set(Object.values(secretVars))].filter((v) => v.length >= MIN_MASKED).sort((a, b) => b.length - a.length);
  const redact = (text: string) => (values.length === 0 ? text : values.reduce((t, v) => t.split(v).join(MASK), text));
  const undo: Array<() => void> = [];
  return {
    redact,
    maskOutput() {
      if (values.length === 0) return;
      for (const stream of [process.stdout, process.stderr]) {
        const write = stream.write;
        stream.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
          const text = typeof chunk === "string" ? chunk : chunk instanceof Uint8Array ? new TextDecoder().decode(chunk) : chunk;
          return (write as (...a: unknown[]) => boolean).call(stream, typeof text === "string" ? redact(text) : text, ...rest);
        } as typeof stream.write;
        undo.push(() => {
          stream.write = write;
        });
      }
    },
    restore() {
      for (const u of undo.splice(0).reverse()) u();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    },
  };
}
