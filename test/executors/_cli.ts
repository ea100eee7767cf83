/** Runs the built CLI (dist/tsflow.mjs) the way users do. */
import { execFile } from "node:child_process";

export const CLI = new URL("../../dist/tsflow.mjs", import.meta.url).pathname;
export const ROOT = new URL("../../", import.meta.url).pathname;

export function tsflow(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
