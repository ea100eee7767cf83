/**
 * Opening a datastore from a location: what `--datastore` takes and what a worker, a container
 * or a Batch job receives to re-open the same store.
 *
 *   a path, file://…        the fs datastore (default: `.tsflow` found upwards, like git's `.git`)
 *   s3://bucket/prefix      the S3 datastore
 *   ./my-store.ts[:OPTIONS] a datastore plugin: a file default-exporting `(options) => Datastore`;
 *                           OPTIONS is JSON (`{"dir":"/data"}`) or `key=value,key=value`
 *
 * Every store is wrapped once by the core (`wrapDatastore`: key checks, fallbacks, errors that
 * name the store), so a plugin implements the raw operations only.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { wrapDatastore } from "../core/_datastore.ts";
import { TsflowError } from "../core/errors.ts";
import type { Datastore, DatastoreFactory } from "../core/types.ts";
import fsDatastore from "../plugins/datastores/fs.ts";
import { detectRuntime } from "../plugins/host/node.ts";
import { untrusted, warnIgnored } from "../plugins/host/trust.ts";
import { buildFlowModule } from "./load.ts";

const opened = new Map<string, Promise<Datastore>>();

/** The default local datastore root for `cwd`. */
function findLocalRoot(cwd = process.cwd()): string {
  let dir = resolve(cwd);
  for (;;) {
    const candidate = join(dir, ".tsflow");
    if (existsSync(candidate) && statSync(candidate).isDirectory()) {
      // Another user's `.tsflow` in a common ancestor must not capture this user's runs.
      const why = untrusted(candidate);
      if (!why) return candidate;
      warnIgnored(candidate, why, `pass --datastore ${candidate} to use it anyway`);
    }
    const parent = dirname(dir);
    if (parent === dir) return join(resolve(cwd), ".tsflow");
    dir = parent;
  }
}

/** Opens (once per location) the datastore named by `location`, `TSFLOW_DATASTORE`, or the default. */
export function openDatastore(location?: string, cwd = process.cwd()): Promise<Datastore> {
  const where = location || process.env.TSFLOW_DATASTORE || findLocalRoot(cwd);
  let p = opened.get(where);
  if (!p) {
    p = open(where, cwd);
    opened.set(where, p);
    // A location that failed to open may work later (a plugin file being fixed, a server starting).
    p.catch(() => opened.delete(where));
  }
  return p;
}

/**
 * Closes every datastore opened by {@link openDatastore} (a worker about to leave): what they
 * still do in the background (removing a discarded staged file) is over when this resolves.
 * A store that fails to close is left as it is: the process is ending anyway.
 */
export async function closeDatastores(): Promise<void> {
  const stores = [...opened.values()];
  opened.clear();
  await Promise.all(stores.map((p) => p.then((store) => store.close?.()).catch(() => {})));
}

/** A datastore plugin location: `file.ts` or `file.ts:OPTIONS`. */
const PLUGIN = /^(.+?\.(?:[cm]?[jt]s|tsx))(?::(.*))?$/s;

async function open(where: string, cwd: string): Promise<Datastore> {
  if (where.startsWith("s3://")) {
    const { default: s3Datastore } = await import("../plugins/datastores/s3.ts");
    return wrapDatastore(s3Datastore({ url: where }), where.replace(/\/+$/, ""));
  }
  const plugin = !where.startsWith("file://") ? PLUGIN.exec(where) : null;
  if (plugin) return openPlugin(plugin[1]!, plugin[2], cwd);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(where) && !where.startsWith("file://")) {
    throw new TsflowError("BadOption", `datastore '${where}' is not supported: use a local path, s3://bucket/prefix or the file of a datastore plugin (./my-store.ts)`);
  }
  const path = where.startsWith("file://") ? new URL(where).pathname : resolve(cwd, where);
  return wrapDatastore(fsDatastore({ root: path }), path);
}

async function openPlugin(fileArg: string, optionsArg: string | undefined, cwd: string): Promise<Datastore> {
  const file = isAbsolute(fileArg) ? fileArg : resolve(cwd, fileArg);
  const what = `datastore plugin '${fileArg}'`;
  if (!existsSync(file)) throw new TsflowError("BadOption", `${what} does not exist (looked for ${file})`);
  const options = parsePluginOptions(optionsArg, what);
  let mod: { default?: unknown };
  try {
    // A TypeScript plugin is bundled like a flow (Node 20 cannot import .ts), its `tsflow` import pointed at this tsflow.
    const module = /\.[cm]?tsx?$/.test(file) && detectRuntime() === "node" ? await buildFlowModule(file) : file;
    mod = (await import(pathToFileURL(module).href)) as { default?: unknown };
  } catch (e) {
    throw new TsflowError("BadOption", `cannot load ${what}: ${(e as Error).message.split("\n")[0]}`);
  }
  if (typeof mod.default !== "function") throw new TsflowError("BadOption", `${what} must default-export a factory (options) => Datastore`);
  let raw: Datastore;
  try {
    raw = await (mod.default as DatastoreFactory<Record<string, unknown>>)(options);
  } catch (e) {
    throw new TsflowError("BadOption", `${what} failed to open with options ${JSON.stringify(options)}: ${(e as Error).message}`);
  }
  for (const method of ["get", "put", "has", "list", "delete"] as const) {
    if (typeof raw?.[method] !== "function") throw new TsflowError("BadOption", `${what} returned a datastore without a ${method}() method`);
  }
  if (typeof raw.url !== "string" || typeof raw.name !== "string") throw new TsflowError("BadOption", `${what} returned a datastore without a name and url`);
  // Workers re-open the very same store: an absolute file and the options as JSON.
  return wrapDatastore(raw, `${file}:${JSON.stringify(options)}`);
}

function parsePluginOptions(text: string | undefined, what: string): Record<string, unknown> {
  if (text === undefined || text === "") return {};
  if (text.trimStart().startsWith("{")) {
    try {
      const v = JSON.parse(text, (k, val) => (k === "__proto__" ? undefined : val)) as unknown;
      if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch (e) {
      throw new TsflowError("BadOption", `options of ${what} are not valid JSON: ${(e as Error).message}`);
    }
    throw new TsflowError("BadOption", `options of ${what} must be a JSON object`);
  }
  const out: Record<string, unknown> = {};
  for (const pair of text.split(",")) {
    if (!pair) continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new TsflowError("BadOption", `options of ${what}: '${pair}' must be key=value (or give a JSON object)`);
    const k = pair.slice(0, eq);
    const v = pair.slice(eq + 1);
    if (k === "__proto__") continue;
    out[k] = v !== "" && !Number.isNaN(Number(v)) ? Number(v) : v === "true" ? true : v === "false" ? false : v;
  }
  return out;
}

/** The store as given to `runFlow` (an object or a location), wrapped by the core. */
export async function resolveDatastore(store: Datastore | string | undefined, cwd = process.cwd()): Promise<Datastore> {
  if (store && typeof store === "object") return wrapDatastore(store);
  return openDatastore(store, cwd);
}
