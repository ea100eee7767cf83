/**
 * The user's private cache directory, in plain JS: bin/tsflow.mjs uses it before the CLI bundle
 * is loaded (plugins/host/extra-ca.mjs), and the bundle uses the same code (trust.ts re-exports
 * it). Why it must be private: plugins/host/trust.ts.
 */
import { lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";

/**
 * A per-user cache directory (`$XDG_CACHE_HOME/tsflow/<name>`, `~/.cache/tsflow/<name>`, or
 * `<tmp>/tsflow-<uid>/<name>` when there is no home), created 0700 and checked to be the
 * user's own and private: a directory another user created first is refused, not used.
 * @param {string} name
 * @returns {string}
 */
export function userCacheDir(name) {
  const home = (() => {
    try {
      return homedir();
    } catch {
      return "";
    }
  })();
  const base = process.env.XDG_CACHE_HOME || (home ? join(home, ".cache") : "");
  const candidates = [...(base ? [join(base, "tsflow")] : []), join(tmpdir(), `tsflow-${process.getuid?.() ?? "user"}`)];
  let lastWhy = "";
  for (const root of candidates) {
    try {
      mkdirSync(root, { recursive: true, mode: 0o700 });
    } catch {
      continue;
    }
    const why = privateDir(root);
    if (why) {
      lastWhy = `${root}: ${why}`;
      continue;
    }
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }
  throw new Error(`no private cache directory for tsflow (${lastWhy || "none could be created"}); set XDG_CACHE_HOME to a directory of yours`);
}

/**
 * Why `dir` is not a private directory of this user, or `undefined` when it is.
 * @param {string} dir
 * @returns {string | undefined}
 */
export function privateDir(dir) {
  const me = process.getuid?.();
  if (me === undefined) return undefined;
  const st = lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) return "it is not a directory";
  if (st.uid !== me) return `it belongs to another user (uid ${st.uid})`;
  if (st.mode & 0o077) return `others may use it (mode ${(st.mode & 0o777).toString(8)})`;
  return undefined;
}

/**
 * Tidies a cache directory: keeps the newest `keep` files ending in `suffix` besides `current`
 * (a file name in `dir`), and drops temporary files (`.tmp`) an hour old, left by processes that
 * died writing. Never throws: a failure leaves a few files more.
 * @param {string} dir
 * @param {string} current
 * @param {number} keep
 * @param {string} suffix
 */
export function pruneCache(dir, current, keep, suffix) {
  try {
    const entries = readdirSync(dir)
      .filter((name) => name !== current)
      .map((name) => ({ name, mtime: statSync(join(dir, name), { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
      .sort((a, b) => b.mtime - a.mtime);
    const stale = Date.now() - 3_600_000;
    let kept = 0;
    for (const e of entries) {
      const drop = e.name.endsWith(".tmp") ? e.mtime < stale : e.name.endsWith(suffix) && ++kept > keep;
      if (drop) rmSync(join(dir, e.name), { force: true });
    }
  } catch {
    // Tidying only.
  }
}

/**
 * Writes `data` as the cache file `file`, readable by this user only, through a temporary file
 * renamed into place (a reader finds the whole file or none), then tidies its directory as
 * {@link pruneCache} does; whether it was written. Never throws.
 * @param {string} file
 * @param {string | Uint8Array} data
 * @param {number} keep
 * @param {string} suffix
 * @returns {boolean}
 */
export function writeCacheFile(file, data, keep, suffix) {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
    return false;
  }
  pruneCache(dirname(file), basename(file), keep, suffix);
  return true;
}

/**
 * A short hash (FNV-1a, 32 bits) for cache file names: of a path or a set of flags, beside the
 * other fields that name a cache file, not a content hash.
 * @param {string} s
 * @returns {string}
 */
export function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16);
}
