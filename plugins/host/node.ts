/**
 * The host for Node, and for Bun and Deno through their `node:` compatibility: hashing with
 * node:crypto (streaming, hardware SHA-256), files, user and CPU count.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { readFile } from "node:fs/promises";
import { gunzipSync, gzipSync } from "node:zlib";
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
    blake3() {
      const native = loadBlake3();
      if (!native) return undefined;
      const h = new native.Blake3Hasher();
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
    // Level 1 is zlib's Z_BEST_SPEED (named here rather than read from node:zlib's `constants`,
    // so the bundle loads zlib only when it first compresses: build.mjs LAZY_BUILTINS).
    gzip: (chunks) => chunks.filter((c) => c.byteLength > 0).map((c) => gzipSync(c, { level: 1 })),
    gunzip: (data, maxOutput) => gunzipSync(data, maxOutput === undefined ? {} : { maxOutputLength: Math.max(1, maxOutput) }),
  };
}

type Blake3Module = { Blake3Hasher: new () => { update(data: Uint8Array): unknown; digest(format: "hex"): string } };
let blake3Module: Blake3Module | null | undefined;

/**
 * The native BLAKE3 of @napi-rs/blake-hash, loaded on first use (a run that stores no artifact
 * never pays for it); `null` where it cannot load (no prebuilt binary for this platform, a
 * compiled binary without node_modules): artifacts are then addressed by SHA-256 as before.
 */
function loadBlake3(): Blake3Module | null {
  if (blake3Module !== undefined) return blake3Module;
  if (process.env.TSFLOW_HASH === "sha256") return (blake3Module = null);
  try {
    blake3Module = createRequire(import.meta.url)("@napi-rs/blake-hash") as Blake3Module;
  } catch {
    blake3Module = null;
  }
  return blake3Module;
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
