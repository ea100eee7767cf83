/**
 * The vega, vega-lite and vega-embed browser bundles (~830 KB), inlined into card documents so
 * charts render offline: no CDN, no request. Read from node_modules on first use only; the
 * standalone binary, which has no node_modules, installs a hook with its embedded copies
 * (cli/compile.ts).
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { TsflowError } from "../core/errors.ts";

const HOOK = Symbol.for("tsflow.vegaBundles");
const FILES = [
  ["vega", "vega.min.js"],
  ["vega-lite", "vega-lite.min.js"],
  ["vega-embed", "vega-embed.min.js"],
] as const;

let loaded: Promise<string[]> | undefined;

/** The three bundles' source, in load order. */
export function vegaBundles(): Promise<string[]> {
  loaded ??= (async () => {
    const hook = (globalThis as Record<symbol, (() => Promise<string[]>) | undefined>)[HOOK];
    if (hook) return hook();
    const require = createRequire(import.meta.url);
    return Promise.all(
      FILES.map(async ([pkg, file]) => {
        try {
          // The packages' `exports` hide build/*.min.js: find the package through its main file.
          return await readFile(join(dirname(require.resolve(pkg)), file), "utf8");
        } catch (e) {
          throw new TsflowError("NotFound", `cannot read ${pkg}/build/${file} to draw card charts: ${(e as Error).message} (reinstall tsflow's dependencies)`);
        }
      }),
    );
  })();
  loaded.catch(() => {
    loaded = undefined;
  });
  return loaded;
}

/** `<script>` elements holding the bundles, safe to inline (no `</script` inside). */
export async function vegaScriptTags(): Promise<string> {
  const bundles = await vegaBundles();
  return bundles.map((js) => `<script>${js.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--")}</script>`).join("\n");
}
