// Builds the single-file CLI (dist/tsflow.mjs) and the library entry (dist/index.mjs).
// Dependencies stay external: npm installs them, and tsx must load its own hook files.
import { build } from "esbuild";

const t0 = Date.now();
const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "linked",
  logLevel: "warning",
  outExtension: { ".js": ".mjs" },
};
await Promise.all([
  build({ ...common, entryPoints: { tsflow: "cli/main.ts" }, outdir: "dist" }),
  build({ ...common, entryPoints: { index: "mod.ts" }, outdir: "dist" }),
]);
console.log(`built dist/ in ${Date.now() - t0} ms`);
