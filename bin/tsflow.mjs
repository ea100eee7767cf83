#!/usr/bin/env node
// The published entry: the single-file bundle built by `npm run build` (run by `npm ci`).
import { existsSync } from "node:fs";
import module from "node:module";

// Node ≥ 22.1 keeps V8's compiled code between runs, which shortens every start (workers too).
module.enableCompileCache?.();
const bundle = new URL("../dist/tsflow.mjs", import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write("✖ tsflow is not built: run `npm run build` (npm ci/install does it for you)\n");
  process.exit(1);
}
await import(bundle.href);
