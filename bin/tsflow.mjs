#!/usr/bin/env node
// The published entry: the single-file bundle built by `npm run build` (run by `npm ci`).
// child_process and crypto: the bundle imports them anyway; here they start the first worker.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import module from "node:module";
import { fileURLToPath } from "node:url";
import { workerCaEnv } from "../plugins/host/extra-ca.mjs";

// When Node got here (its own start-up, and these builtins, done) and the CPU used so far, for
// TSFLOW_TRACE_STARTUP (runner/_trace.ts).
globalThis[Symbol.for("tsflow.binStarted")] = { at: performance.now(), cpu: process.cpuUsage() };
// Node ≥ 22.1 keeps V8's compiled code of ES modules between runs (flow modules, packages); the
// CLI bundle has its own code cache on every Node (cli/_script-loader.ts).
module.enableCompileCache?.();
const bundle = new URL("../dist/tsflow.mjs", import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write("✖ tsflow is not built: run `npm run build` (npm ci/install does it for you)\n");
  process.exit(1);
}
// The AWS SDK's Node 20 warning is silenced for every process, this one's workers included (cli/main.ts).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
// `tsflow run` needs a worker, and starting one takes about as long as loading the CLI: start it
// now so both load at once. The process executor adopts it as its first worker (it is started as
// plugins/host/self.ts would); a run that needs none lets it go, and it leaves when stdin ends.
const [command, ...rest] = process.argv.slice(2);
if (command === "run" && !rest.includes("--help") && !rest.includes("-h") && !process.env.TSFLOW_NO_PREFORK) {
  const nonce = randomBytes(12).toString("hex");
  const startedAt = performance.now();
  const child = spawn(process.execPath, [fileURLToPath(bundle), "__worker"], {
    stdio: ["pipe", "pipe", "pipe"],
    // NODE_EXTRA_CA_CERTS without Node's own roots, when a reduced copy was made by an earlier
    // run: the same trust, parsed faster (plugins/host/extra-ca.mjs).
    env: { ...process.env, ...workerCaEnv(), TSFLOW_WORKER_NONCE: nonce },
  });
  child.on("error", () => {});
  globalThis[Symbol.for("tsflow.preforkedWorker")] = { child, nonce, startedAt };
}
await import(bundle.href);
