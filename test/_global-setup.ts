// CLI tests run the real bundle, so build it once before the suite.
import { execFileSync } from "node:child_process";

export default function setup() {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
  execFileSync(process.execPath, ["build.mjs"], { stdio: "inherit" });
}
