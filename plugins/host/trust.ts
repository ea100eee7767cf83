/**
 * Which local files tsflow may trust (issue #19 item 5), after git's `safe.directory`: on a
 * shared machine (a dev server, a CI runner) another user can plant `tsflow.config.mjs` or a
 * `.tsflow` directory in a common ancestor (`/tmp`, `/home`), or pre-create a cache directory
 * in the OS temp directory. A config file is code tsflow imports, a datastore receives the
 * user's runs, a cache holds modules tsflow imports: each must belong to the user running
 * tsflow and be writable by nobody else.
 */
import { lstatSync, mkdirSync, realpathSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

const uid = () => process.getuid?.();

/**
 * Why `path` is not to be trusted, or `undefined` when it is: it belongs to the user running
 * tsflow (root may use root's), and neither it nor (for a file) its group or others may write
 * it. Without POSIX owners (Windows) everything is trusted.
 */
export function untrusted(path: string): string | undefined {
  const me = uid();
  if (me === undefined) return undefined;
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return undefined; // missing: nothing to trust or distrust
  }
  if (st.isSymbolicLink()) {
    try {
      // A link is as trustworthy as what it points at and the link itself.
      if (st.uid !== me) return `it is a symbolic link owned by another user (uid ${st.uid})`;
      return untrusted(realpathSync.native(path));
    } catch {
      return "it is a dangling symbolic link";
    }
  }
  if (st.uid !== me) return `it belongs to another user (uid ${st.uid}, you are uid ${me})`;
  if (st.mode & 0o002) return "everybody may write to it";
  return undefined;
}

/** Says on stderr that `path` is skipped and why (once per path and process). */
const warned = new Set<string>();
export function warnIgnored(path: string, why: string, hint: string) {
  if (warned.has(path)) return;
  warned.add(path);
  process.stderr.write(`⚠ tsflow ignores ${path}: ${why}; ${hint}\n`);
}

/**
 * A per-user cache directory (`$XDG_CACHE_HOME/tsflow/<name>`, `~/.cache/tsflow/<name>`, or
 * `<tmp>/tsflow-<uid>/<name>` when there is no home), created 0700 and checked to be the
 * user's own and private: a directory another user created first is refused, not used.
 */
export function userCacheDir(name: string): string {
  const home = (() => {
    try {
      return homedir();
    } catch {
      return "";
    }
  })();
  const base = process.env.XDG_CACHE_HOME || (home ? join(home, ".cache") : "");
  const candidates = [...(base ? [join(base, "tsflow")] : []), join(tmpdir(), `tsflow-${uid() ?? "user"}`)];
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

function privateDir(dir: string): string | undefined {
  const me = uid();
  if (me === undefined) return undefined;
  const st = lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) return "it is not a directory";
  if (st.uid !== me) return `it belongs to another user (uid ${st.uid})`;
  if (st.mode & 0o077) return `others may use it (mode ${(st.mode & 0o777).toString(8)})`;
  return undefined;
}
