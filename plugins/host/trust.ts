/**
 * Which local files tsflow may trust (issue #19 item 5), after git's `safe.directory`: on a
 * shared machine (a dev server, a CI runner) another user can plant `tsflow.config.mjs` or a
 * `.tsflow` directory in a common ancestor (`/tmp`, `/home`), or pre-create a cache directory
 * in the OS temp directory. A config file is code tsflow imports, a datastore receives the
 * user's runs, a cache holds modules tsflow imports: each must belong to the user running
 * tsflow and be writable by nobody else.
 */
import { lstatSync, realpathSync } from "node:fs";

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

// The private cache directory is plain JS: bin/tsflow.mjs needs it before the bundle loads.
export { userCacheDir } from "./cache-dir.mjs";
