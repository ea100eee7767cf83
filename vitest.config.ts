import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { alias: { tsflow: fileURLToPath(new URL("./mod.ts", import.meta.url)) } },
  // Vite's oxc transform does not lower standard decorators; flows imported by tests use the
  // experimentalDecorators form, which tsflow supports too.
  oxc: { decorator: { legacy: true } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    globalSetup: ["test/_global-setup.ts"],
  },
});
