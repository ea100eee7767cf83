import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * In-process tests (scheduler on the inline executor, graph rules, serialization, artifacts,
 * logs' readers): seconds, no build, no child process. `npx vitest run --project unit`.
 */
const UNIT = [
  "test/core/artifacts.test.ts",
  "test/core/compression.test.ts",
  "test/core/flows.test.ts",
  "test/core/parameters.test.ts",
  "test/core/portable.test.ts",
  "test/core/run-listing.test.ts",
  "test/core/join-inputs.test.ts",
  "test/core/serialize.test.ts",
  "test/core/imports.test.ts",
  "test/reliability/graph-fuzz.test.ts",
  "test/sfn-server/asl.test.ts",
  "test/unit/**/*.test.ts",
];

export default defineConfig({
  resolve: { alias: { tsflow: fileURLToPath(new URL("./mod.ts", import.meta.url)) } },
  // Vite's oxc transform does not lower standard decorators; flows imported by tests use the
  // experimentalDecorators form, which tsflow supports too.
  oxc: { decorator: { legacy: true } },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    projects: [
      { extends: true, test: { name: "unit", include: UNIT } },
      // Everything else runs the real bundle, processes, servers and containers: built once first.
      { extends: true, test: { name: "e2e", include: ["test/**/*.test.ts"], exclude: UNIT, globalSetup: ["test/_global-setup.ts"] } },
    ],
  },
});
