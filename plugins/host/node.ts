/**
 * The host for Node, and for Bun and Deno through their `node:` compatibility: hashing with
 * node:crypto (streaming, hardware SHA-256), files, user and CPU count.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { availableParallelism, userInfo } from "node:os";
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
        return userInfo().username;
      } catch {
        return "unknown";
      }
    },
    cpus: () => availableParallelism(),
  };
}
