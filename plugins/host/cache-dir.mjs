/**
 * The user's private cache directory, in plain JS: bin/tsflow.mjs uses it before the CLI bundle
 * is loaded (plugins/host/extra-ca.mjs), and the bundle uses the same code (trust.ts re-exports
 * it). Why it must be private: plugins/host/trust.ts.
 */
import { lstatSync, mkdirSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

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
