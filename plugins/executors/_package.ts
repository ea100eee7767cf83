/**
 * Code packages for remote executors (docker, batch): the flow file, its local imports and its
 * npm dependencies bundled by esbuild into one ES module, stored content-addressed in the
 * datastore under `packages/<hash>`. A changed flow gets a new package; an unchanged one is found
 * by `has` and not uploaded again. The remote side fetches it into a local cache and imports it.
 *
 * Only `tsflow` stays outside the package: the package refers to it by a placeholder that the
 * fetching side replaces with its own runtime, so the flow's `FlowSpec` is the very class the
 * task runner uses (two copies of the runtime would not recognize each other's flows).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { TsflowError } from "../../core/errors.ts";
import { packageKey } from "../../core/_layout.ts";
import type { Datastore } from "../../core/types.ts";
import { userCacheDir } from "../host/trust.ts";

const PLACEHOLDER = "__tsflow_runtime__";
export const PACKAGE_PREFIX = "package:";

/** The module a package's `import "tsflow"` becomes on this side: this tsflow, bundled or from source. */
function runtimeModule(): string {
  const here = import.meta.url;
  return fileURLToPath(here.endsWith(".ts") ? new URL("../../mod.ts", here) : here);
}

/** Bundles `flowFile` with everything it imports but tsflow; returns the module text and its hash. */
export async function buildPackage(flowFile: string): Promise<{ hash: string; code: Uint8Array }> {
  const esbuild = await import("esbuild");
  let out: Awaited<ReturnType<typeof esbuild.build>>;
  try {
    out = await esbuild.build({
      entryPoints: [flowFile],
      bundle: true,
      write: false,
      format: "esm",
      platform: "node",
      target: "node20",
      sourcemap: "inline",
      sourcesContent: false,
      logLevel: "silent",
      // Bundled CommonJS dependencies call require(); an ES module has none of its own.
      banner: { js: 'import { createRequire as __tsflowRequire } from "node:module"; const require = __tsflowRequire(import.meta.url);' },
      plugins: [{ name: "tsflow-runtime", setup: (b) => b.onResolve({ filter: /^tsflow$/ }, () => ({ path: PLACEHOLDER, external: true })) }],
    });
  } catch (e) {
    const first = (e as { errors?: { text: string }[] }).errors?.[0];
    throw new TsflowError("BadFlow", `cannot build the code package of '${flowFile}': ${first?.text ?? (e as Error).message}`);
  }
  const code = out.outputFiles![0]!.contents;
  return { hash: createHash("sha256").update(code).digest("hex"), code };
}

/**
 * Builds the package of `flowFile` and stores it unless the datastore already has it.
 * Returns the `TaskSpec.flowFile` that names it (`package:<hash>`).
 */
export async function uploadPackage(store: Datastore, flowFile: string): Promise<{ flowFile: string; hash: string; uploaded: boolean }> {
  const { hash, code } = await buildPackage(flowFile);
  const key = packageKey(hash);
  const uploaded = !(await store.has(key));
  if (uploaded) await store.put(key, code, { immutable: true });
  return { flowFile: `${PACKAGE_PREFIX}${hash}`, hash, uploaded };
}

const fetching = new Map<string, Promise<string>>();

/** Fetches package `hash` (verified) into a local cache and returns the module's path. */
export function fetchPackage(store: Datastore, hash: string): Promise<string> {
  let p = fetching.get(hash);
  if (!p) {
    p = fetchOnce(store, hash);
    fetching.set(hash, p);
    p.catch(() => fetching.delete(hash));
  }
  return p;
}

async function fetchOnce(store: Datastore, hash: string): Promise<string> {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new TsflowError("BadFlow", `'${PACKAGE_PREFIX}${hash}' is not a code package name`);
  // A per-user private directory: a shared one in the OS temp directory let another user plant
  // the module a task imports.
  const dir = process.env.TSFLOW_PACKAGE_CACHE ?? userCacheDir("packages");
  // The cached file imports the runtime that fetched it, so each runtime keeps its own copy: a
  // second tsflow on the machine must not run packages against the first one's code.
  const runtime = JSON.stringify(pathToFileURL(runtimeModule()).href);
  const file = join(dir, `${hash}-${createHash("sha256").update(runtime).digest("hex").slice(0, 12)}.mjs`);
  // A cached copy is used only if it still is the package: its text, with the runtime path put
  // back to the placeholder, must hash to the package's name.
  if (existsSync(file)) {
    try {
      const cached = readFileSync(file, "utf8").replaceAll(runtime, JSON.stringify(PLACEHOLDER));
      if (createHash("sha256").update(cached).digest("hex") === hash) return file;
    } catch {}
  }
  const code = await store.get(packageKey(hash));
  if (!code) throw new TsflowError("NotFound", `code package ${hash} is missing from datastore ${store.url} (was it deleted by gc?)`);
  if (createHash("sha256").update(code).digest("hex") !== hash) throw new TsflowError("Executor", `code package ${hash} in ${store.url} does not match its hash`);
  const text = new TextDecoder().decode(code).replaceAll(JSON.stringify(PLACEHOLDER), runtime);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
  return file;
}

/**
 * The tsflow CLI script a container or batch job runs, the Batch job entry beside it
 * (dist/job.mjs, cli/job.ts), and the directories they need mounted (themselves and their
 * `node_modules`), at the same paths as on this machine.
 */
export function runtimeFiles(): { script: string; job: string; mounts: string[] } {
  const here = fileURLToPath(import.meta.url);
  const script = here.endsWith(".ts") ? fileURLToPath(new URL("../../dist/tsflow.mjs", import.meta.url)) : join(dirname(here), "tsflow.mjs");
  if (!existsSync(script)) throw new TsflowError("NotFound", `cannot find the tsflow CLI bundle at ${script} (run \`node build.mjs\`)`);
  const job = join(dirname(script), "job.mjs");
  const nm = script.indexOf("/node_modules/");
  if (nm >= 0) return { script, job, mounts: [script.slice(0, nm + "/node_modules".length)] };
  const root = dirname(dirname(script));
  return { script, job, mounts: [dirname(script), ...(existsSync(join(root, "node_modules")) ? [join(root, "node_modules")] : [])] };
}
