/**
 * The host for Node, and for Bun and Deno through their `node:` compatibility: hashing with
 * node:crypto (streaming, hardware SHA-256), files, user and CPU count.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { constants, gunzipSync, gzipSync } from "node:zlib";
import { availableParallelism, hostname, userInfo } from "node:os";
import type { Host } from "../../core/types.ts";

/** Which JavaScript runtime is executing: `node`, `bun` or `deno`. */
export function detectRuntime(): string {
  const g = globalThis as Record<string, unknown>;
  if (typeof g.Bun !== "undefined") return "bun";
  if (typeof g.Deno !== "undefined") return "deno";
  return "node";
}

export default function nodeHost(): Host {
  return {
    runtime: detectRuntime(),
    sha256() {
      const h = createHash("sha256");
      return {
        update: (data) => void h.update(data),
        digest: () => h.digest("hex"),
      };
    },
    env: (name) => process.env[name],
    readFile: (path) => readFile(path),
    username() {
      const fromEnv = process.env.TSFLOW_USER ?? process.env.USER ?? process.env.USERNAME;
      if (fromEnv) return fromEnv;
      try {
        const name = userInfo().username;
        // Bun answers "unknown" when USER is unset (as in CI); the passwd file knows better.
        if (name && name !== "unknown") return name;
      } catch {}
      return passwdName() ?? "unknown";
    },
    cpus: () => availableParallelism(),
    identity: () => ({ hostname: hostname(), pid: process.pid }),
    processAlive(host, pid) {
      if (host !== hostname()) return undefined;
      try {
        process.kill(pid, 0);
        return true;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === "EPERM";
      }
    },
    // One gzip member per chunk: joining a 1 GB segment to its header would copy it whole.
    gzip: (chunks) => chunks.filter((c) => c.byteLength > 0).map((c) => gzipSync(c, { level: constants.Z_BEST_SPEED })),
    gunzip: (data, maxOutput) => gunzipSync(data, maxOutput === undefined ? {} : { maxOutputLength: Math.max(1, maxOutput) }),
  };
}

/** The current user's name from /etc/passwd (POSIX), or null. */
function passwdName(): string | null {
  const uid = process.getuid?.();
  if (uid === undefined) return null;
  try {
    const line = readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .find((l) => l.split(":")[2] === String(uid));
    return line?.split(":")[0] || null;
  } catch {
    return null;
  }
}
