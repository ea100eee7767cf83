// CLI tests run the real bundle, so build it once before the suite.
import { execFileSync } from "node:child_process";

export default function setup() {
  execFileSync(process.execPath, ["build.mjs"], { stdio: "inherit" });
}
