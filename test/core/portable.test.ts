/** The core imports nothing runtime-specific: hosts and plugins bring Node, Deno or Bun. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../_helpers.ts";

const FORBIDDEN: [string, RegExp][] = [
  ["node: import", /from\s+["']node:|import\(\s*["']node:|require\(\s*["']node:/],
  ["Deno.", /\bDeno\./],
  ["Bun.", /\bBun\./],
  ["process.", /\bprocess\./],
  ["Buffer", /\bBuffer\b/],
];

/** Source without comments, so a comment may name what the code must not use. */
function code(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

describe("core/ is portable", () => {
  const dir = join(ROOT, "core");
  const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));

  it("has files to check", () => {
    expect(files).toContain("runtime.ts");
  });

  it.each(files)("core/%s uses no runtime-specific API", (file) => {
    const lines = code(readFileSync(join(dir, file), "utf8")).split("\n");
    const found: string[] = [];
    lines.forEach((line, i) => {
      for (const [what, re] of FORBIDDEN) if (re.test(line)) found.push(`core/${file}:${i + 1}: ${what}: ${line.trim()}`);
    });
    expect(found).toEqual([]);
  });
});
