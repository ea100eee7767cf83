/** Whether a docker daemon answers and holds the Node image the docker tests run (`.ci/docker.sh all`). */
import { execFileSync } from "node:child_process";

export const NODE_IMAGE = process.env.TSFLOW_NODE_IMAGE ?? "tsflow-node:20";

/** `undefined` when docker can run containers of {@link NODE_IMAGE}, else why not. */
export function dockerUnavailable(): string | undefined {
  try {
    execFileSync("docker", ["image", "inspect", NODE_IMAGE], { stdio: "ignore", timeout: 10_000 });
    return undefined;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") return "no docker CLI on PATH (run .ci/docker.sh all)";
    try {
      execFileSync("docker", ["info"], { stdio: "ignore", timeout: 10_000 });
    } catch {
      return `no docker daemon answers at ${process.env.DOCKER_HOST ?? "the default socket"} (run .ci/docker.sh all and export DOCKER_HOST)`;
    }
    return `image ${NODE_IMAGE} is missing (run .ci/docker.sh image)`;
  }
}
