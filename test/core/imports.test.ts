/**
 * The import map of ARCHITECTURE.md holds: `cli/` → `runner/` → `plugins/` → `core/`, and no
 * module imports itself back through others (static or lazy imports alike).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { expect, it } from "vitest";
import { ROOT } from "../_helpers.ts";

/**
 * Known exceptions, each to be removed by its owner: the step-functions task entry lives in
 * plugins/ but is a runner entry (it loads flows and runs tasks); core/cards.ts and
 * core/flow.ts import each other.
 */
const KNOWN = new Set(["plugins/step-functions/task.ts → runner/load.ts", "plugins/step-functions/task.ts → runner/task.ts", "core/cards.ts → core/flow.ts → core/cards.ts"]);

function graph(): Map<string, string[]> {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith(".ts")) files.push(p);
    }
  };
  for (const d of ["core", "runner", "cli", "plugins", "viewer", "cards"]) if (existsSync(join(ROOT, d))) walk(join(ROOT, d));
  files.push(join(ROOT, "mod.ts"));
  const out = new Map<string, string[]>();
  for (const f of files) {
    const src = readFileSync(f, "utf8");
    const deps = [
      ...[...src.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+["'](\.{1,2}\/[^"']+)["']/gm)].map((m) => m[1]!),
      ...[...src.matchAll(/import\(["'](\.{1,2}\/[^"']+)["']\)/g)].map((m) => m[1]!),
    ].map((d) => resolve(dirname(f), d));
    out.set(relative(ROOT, f), [...new Set(deps.filter((d) => files.includes(d)).map((d) => relative(ROOT, d)))]);
  }
  return out;
}

it("layers import one way: core ← plugins ← runner ← cli", () => {
  const below: Record<string, string[]> = { core: ["core"], plugins: ["core", "plugins"], runner: ["core", "plugins", "runner"], viewer: ["core", "plugins", "viewer", "cards"] };
  const bad: string[] = [];
  for (const [file, deps] of graph()) {
    const allowed = below[file.split("/")[0]!];
    if (!allowed) continue;
    for (const d of deps) if (!allowed.includes(d.split("/")[0]!) && !KNOWN.has(`${file} → ${d}`)) bad.push(`${file} → ${d}`);
  }
  expect(bad).toEqual([]);
});

it("no module imports itself back", () => {
  const g = graph();
  const cycles = new Set<string>();
  const stack: string[] = [];
  const on = new Set<string>();
  const seen = new Set<string>();
  const dfs = (n: string) => {
    stack.push(n);
    on.add(n);
    for (const d of g.get(n) ?? []) {
      if (on.has(d)) cycles.add([...stack.slice(stack.indexOf(d)), d].join(" → "));
      else if (!seen.has(d)) dfs(d);
    }
    stack.pop();
    on.delete(n);
    seen.add(n);
  };
  for (const f of [...g.keys()].sort()) if (!seen.has(f)) dfs(f);
  expect([...cycles].filter((c) => !KNOWN.has(c))).toEqual([]);
});
