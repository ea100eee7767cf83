/**
 * The entry of the standalone binary (`npm run compile`: `bun build --compile`). It marks the
 * process as compiled, so workers are started as the binary itself (plugins/host/self.ts), and
 * makes a flow's `import "tsflow"` resolve to the binary's own copy of the library: a user's
 * flow directory has no node_modules, and a second copy would have a different FlowSpec.
 * Then cli/main.ts runs as usual.
 */
import { COMPILED } from "../plugins/host/self.ts";

(globalThis as Record<symbol, unknown>)[COMPILED] = true;

declare const Bun: { plugin(p: { name: string; setup(b: { module(id: string, load: () => { exports: object; loader: "object" }): void }): void }): void };

const lib = await import("../mod.ts");
Bun.plugin({
  name: "tsflow-self",
  setup(b) {
    b.module("tsflow", () => ({ exports: lib, loader: "object" }));
  },
});
await import("./main.ts");
