/**
 * A smaller NODE_EXTRA_CA_CERTS for tsflow's own workers, same trust.
 *
 * Why: on Node 20, a process started with NODE_EXTRA_CA_CERTS parses, before any JavaScript
 * runs, Node's ~140 bundled root certificates and every certificate of that file. A system
 * bundle (/etc/ssl/certs/ca-certificates.crt, ~140 certificates, most of them Node's own roots)
 * costs each worker ~20 ms of start-up, on the critical path of every `tsflow run`.
 *
 * What: Node's root store is its bundled roots plus the file's certificates, and a duplicate
 * adds nothing to it; so a copy of the file without the certificates that are byte-identical
 * (DER) to one of `tls.rootCertificates` gives a worker exactly the same trust. The copy lives
 * in the user's private cache directory (cache-dir.mjs: a CA file is a trust store, so only a
 * directory nobody else may write will do), named after the original's path, device, inode,
 * size, mtime and ctime and the Node version and arch (the bundled set changes with Node):
 * a changed original, or another Node, names another copy.
 *
 * Costs: finding the copy is two stats ({@link workerCaEnv}, on the critical path: bin/tsflow.mjs
 * before its first worker, the process executor per worker); making it parses every
 * certificate (~25 ms of CPU, {@link reduceExtraCaCerts}), which the process executor does once,
 * after its first task has been sent, for the runs after this one.
 *
 * When not: another runtime (Bun, Deno), Node flags that change the root store
 * (--use-openssl-ca, --use-bundled-ca, --openssl-*), a file that cannot be read or holds
 * anything but well-formed CERTIFICATE blocks (Node's own handling of a bad file stays exactly
 * as it was), no private cache directory, or TSFLOW_EXTRA_CA_CACHE=0.
 *
 * A worker started with the copy puts the user's path back into NODE_EXTRA_CA_CERTS at once
 * ({@link restoreExtraCaCerts}), so steps and the processes they start see what the user set.
 * Plain JS: bin/tsflow.mjs runs it before the CLI bundle is loaded.
 */
import { closeSync, fstatSync, openSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fnv1a, userCacheDir, writeCacheFile } from "./cache-dir.mjs";

/** Carries the user's NODE_EXTRA_CA_CERTS into a worker started with the reduced copy. */
export const ORIGINAL_VAR = "TSFLOW_ORIGINAL_EXTRA_CA_CERTS";
/** Reduced copies kept beside the current one (other files, other Node versions). */
const KEEP = 4;

/**
 * Where the reduced copy of `env`'s NODE_EXTRA_CA_CERTS is (or would be), with the original's
 * stat; `undefined` when no copy may stand in for it.
 * @param {NodeJS.ProcessEnv} env
 */
function plan(env) {
  const original = env.NODE_EXTRA_CA_CERTS;
  if (!original || env.TSFLOW_EXTRA_CA_CACHE === "0") return undefined;
  const v = /** @type {Record<string, string | undefined>} */ (process.versions);
  if (!v.node || v.bun || "Deno" in globalThis) return undefined;
  if (/(^|\s)--(use-openssl-ca|use-bundled-ca|openssl-)/.test(`${process.execArgv.join(" ")} ${env.NODE_OPTIONS ?? ""}`)) return undefined;
  try {
    const abs = resolve(original);
    const st = statSync(abs, { bigint: true });
    if (!st.isFile()) return undefined;
    const name = [fnv1a(abs), st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs, process.version, process.arch].join("-");
    return { original, abs, st, file: join(userCacheDir("ca"), `${name}.pem`) };
  } catch {
    return undefined;
  }
}

/**
 * The environment a tsflow worker spawned with `env` adds to it: NODE_EXTRA_CA_CERTS pointing at
 * the reduced copy, and the user's path in {@link ORIGINAL_VAR}; nothing when there is no copy
 * (yet) or none may be used. Two stats, no parsing; never throws.
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {Record<string, string>}
 */
export function workerCaEnv(env = process.env) {
  const p = plan(env);
  if (!p) return {};
  try {
    const st = statSync(p.file);
    // Written by this user, readable by nobody else (as reduceExtraCaCerts writes it).
    if (!st.isFile() || st.uid !== process.getuid?.() || st.mode & 0o077) return {};
  } catch {
    return {};
  }
  return { NODE_EXTRA_CA_CERTS: p.file, [ORIGINAL_VAR]: p.original };
}

/**
 * Makes the reduced copy of `env`'s NODE_EXTRA_CA_CERTS when there is none yet and one may be
 * made; resolves to its path, or `undefined` (nothing to do, or the original is not to be
 * reduced). ~25 ms of CPU: never on a run's critical path. Never throws.
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {Promise<string | undefined>}
 */
export async function reduceExtraCaCerts(env = process.env) {
  const p = plan(env);
  if (!p) return undefined;
  if (statSync(p.file, { throwIfNoEntry: false })) return p.file;
  let text;
  try {
    const fd = openSync(p.abs, "r");
    try {
      const before = fstatSync(fd, { bigint: true });
      const bytes = readFileSync(fd);
      const after = fstatSync(fd, { bigint: true });
      // The bytes read must be the file the name describes: changed since, or while reading, no.
      for (const st of [before, after]) {
        if (st.ino !== p.st.ino || st.size !== p.st.size || st.mtimeNs !== p.st.mtimeNs || st.ctimeNs !== p.st.ctimeNs) return undefined;
      }
      text = bytes.toString("latin1");
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const kept = await withoutBundled(text);
  if (kept === undefined) return undefined;
  return writeCacheFile(p.file, kept.join(""), KEEP, ".pem") ? p.file : undefined;
}

/**
 * The PEM blocks of `text` whose certificate is not one of Node's bundled roots, each as it was
 * written; `undefined` when `text` holds anything but well-formed CERTIFICATE blocks (and text
 * between them, which OpenSSL skips), or none.
 * @param {string} text
 * @returns {Promise<string[] | undefined>}
 */
export async function withoutBundled(text) {
  const [{ X509Certificate }, { rootCertificates }] = await Promise.all([import("node:crypto"), import("node:tls")]);
  const blocks = text.match(/^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?^-----END CERTIFICATE-----[ \t]*$/gm) ?? [];
  // Every BEGIN/END line must belong to one of those blocks: another kind of block (a key, a
  // TRUSTED CERTIFICATE, headers), or a broken one, leaves the file as it is.
  if (blocks.length === 0 || (text.match(/-----BEGIN /g) ?? []).length !== blocks.length || (text.match(/-----END /g) ?? []).length !== blocks.length) return undefined;
  const bundled = new Set(rootCertificates.map((pem) => pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, "")));
  const kept = [];
  for (const block of blocks) {
    let der;
    try {
      der = new X509Certificate(block).raw;
    } catch {
      return undefined;
    }
    if (!bundled.has(der.toString("base64"))) kept.push(`${block}\n`);
  }
  return kept;
}

/**
 * In a worker: puts the user's NODE_EXTRA_CA_CERTS back (before any flow code runs or anything
 * is spawned) when this process was started with the reduced copy; returns the copy's path then.
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {string | undefined}
 */
export function restoreExtraCaCerts(env = process.env) {
  const original = env[ORIGINAL_VAR];
  if (original === undefined) return undefined;
  const reduced = env.NODE_EXTRA_CA_CERTS;
  env.NODE_EXTRA_CA_CERTS = original;
  delete env[ORIGINAL_VAR];
  return reduced;
}
