/**
 * `file:PATH` secrets, for local work: a JSON object of variables, or a dotenv file
 * (`NAME=value` lines, `#` comments, optional quotes). Relative paths are relative to the
 * working directory of the task.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { SecretsProvider } from "../../core/types.ts";

export const NAME = "file";

/** `NAME=value` lines → variables. */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    // The line is not echoed: it may hold a value.
    if (!m) throw new Error(`line ${i + 1} is not NAME=value`);
    const v = m[2]!;
    out[m[1]!] = /^(["']).*\1$/.test(v) ? v.slice(1, -1) : v;
  }
  return out;
}

export default function fileSecrets(): SecretsProvider {
  return {
    name: NAME,
    async get(id, { envVarName }) {
      const path = resolve(id);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (e) {
        throw new Error(`cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      if (envVarName) return { [envVarName]: text.trim() };
      if (/^\s*\{/.test(text)) {
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {
          throw new Error(`${path} starts like JSON but is not valid JSON`);
        }
        return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
      }
      return parseDotenv(text);
    },
  };
}
