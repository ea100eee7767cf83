/**
 * The entry of the standalone binaries (`npm run compile`: `bun build --compile`, and
 * `npm run compile:deno`: `deno compile`). It marks the process as compiled, so workers are
 * started as the binary itself (plugins/host/self.ts), and makes a flow's `import "tsflow"`
 * resolve to the binary's own copy of the library: a user's flow directory has no
 * node_modules, and a second copy would have a different FlowSpec. On Bun a virtual module
 * does it; Deno bakes deno.json's import map ("tsflow" → ./mod.ts) into the binary. Then
 * cli/main.ts runs as usual.
 */
import { COMPILED } from "../plugins/host/self.ts";

(globalThis as Record<symbol, unknown>)[COMPILED] = true;
// The binary has no node_modules: card charts take the vega bundles embedded in it (read lazily).
(globalThis as Record<symbol, unknown>)[Symbol.for("tsflow.vegaBundles")] = async () => (await import("../cards/_vega-embedded.ts")).default;

interface BunPlugins {
  plugin(p: { name: string; setup(b: { module(id: string, load: () => { exports: object; loader: "object" }): void }): void }): void;
}

const lib = await import("../mod.ts");
const bun = (globalThis as { Bun?: BunPlugins }).Bun;
bun?.plugin({
  name: "tsflow-self",
  setup(b) {
    b.module("tsflow", () => ({ exports: lib, loader: "object" }));
  },
});
await import("./main.ts");

// The Deno binary is one bundle: a flow's `import "tsflow"` is mapped to it (build.mjs --deno).
export * from "../mod.ts";
