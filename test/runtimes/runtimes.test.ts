/**
 * Same behaviour everywhere: the example flows print the same lines (run ids and durations
 * aside) under Node 20, Node 22, Bun and Deno, and `show` prints the same graph. A runtime that
 * cannot be installed is skipped with the reason.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../_helpers.ts";
import { exec, normalize, runtimes } from "./_runtimes.ts";

const all = runtimes();
const available = all.filter((r) => r.cli);
const work = mkdtempSync(join(tmpdir(), "tsflow-runtimes-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const CASES: [string, string[]][] = [
  ["pets", ["examples/pets.ts", "--limit", "2"]],
  ["foreach", ["examples/foreach.ts"]],
  ["switch", ["examples/switch.ts"]],
  ["switch-high", ["examples/switch.ts", "--score", "0.9"]],
  ["parameters", ["examples/parameters.ts", "--alpha", "0.5", "--mode", "fast", "--model", '{"layers":[4,2]}', "--verbose"]],
];

describe("the examples behave the same on every runtime", () => {
  for (const r of all.filter((r) => !r.cli)) it.skip(`${r.name}: ${r.reason}`, () => {});

  it("has Node 20 and at least one other runtime", () => {
    expect(available.map((r) => r.name)).toContain("node20");
    expect(available.length).toBeGreaterThan(1);
  });

  it.each(CASES)("tsflow run %s", async (name, [file, ...args]) => {
    // One runtime at a time: each starts its own warm workers, and the machine has 2 cores.
    const outputs: Record<string, string[]> = {};
    for (const r of available) {
      const ds = join(work, `${name}-${r.name}`);
      const res = await exec([...r.cli!, "run", join(ROOT, file!), "--datastore", ds, ...args], { cwd: work });
      expect(res.code, `${r.name}: ${res.stderr}`).toBe(0);
      outputs[r.name] = normalize(res.stdout + res.stderr);
    }
    for (const r of available) expect(outputs[r.name], r.name).toEqual(outputs.node20);
    expect(outputs.node20!.some((l) => l.includes("succeeded"))).toBe(true);
  });

  it("tsflow show prints the same graph", async () => {
    const shown = await Promise.all(available.map((r) => exec([...r.cli!, "show", join(ROOT, "examples/pets.ts")], { cwd: work })));
    for (const [i, res] of shown.entries()) {
      expect(res.code, `${available[i]!.name}: ${res.stderr}`).toBe(0);
      expect(res.stdout, available[i]!.name).toBe(shown[0]!.stdout);
    }
  });
});

describe("the CLI bundle loads heavy packages only when used", () => {
  it("dist/tsflow.mjs imports statically only node: modules and small packages", () => {
    // dist/tsflow.mjs is the loader (cli/_script-loader.ts); the CLI's code is dist/tsflow.script.js,
    // whose static imports are the `$tsReq(…)` calls at its top and dynamic ones `$tsImp(…)` (build.mjs).
    const loader = readFileSync(join(ROOT, "dist", "tsflow.mjs"), "utf8");
    const bundle = readFileSync(join(ROOT, "dist", "tsflow.script.js"), "utf8");
    const statics = [...loader.matchAll(/^import\s[^;]*?from\s+"([^"]+)"/gm), ...bundle.matchAll(/\$tsReq\("([^"]+)"\)/g)].map((m) => m[1]!);
    expect(statics.length).toBeGreaterThan(0);
    expect(statics.filter((s) => !s.startsWith("node:"))).toEqual([]);
    expect(bundle).toMatch(/\$tsImp\("@aws-sdk\/client-s3"\)/);
  });

  it("loading the bundle leaves node:crypto, node:child_process and node:zlib for their first call", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsflow-builtins-"));
    try {
      const probe = join(dir, "probe.mjs");
      writeFileSync(
        probe,
        `await import(${JSON.stringify(pathToFileURL(join(ROOT, "dist", "tsflow.mjs")).href)});
console.log(JSON.stringify(["crypto", "child_process", "zlib"].filter((m) => process.moduleLoadList.includes("NativeModule " + m))));`,
      );
      const r = await exec([process.execPath, probe], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("core/ imports nothing runtime-specific", () => {
  it("has no node:, Deno. or Bun. in core/*.ts", () => {
    const found: string[] = [];
    for (const f of readdirSync(join(ROOT, "core")).filter((f) => f.endsWith(".ts"))) {
      // Comments may name what the code must not use.
      const src = readFileSync(join(ROOT, "core", f), "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
      for (const [i, line] of src.split("\n").entries()) if (/["']node:|\bDeno\.|\bBun\./.test(line)) found.push(`core/${f}:${i + 1}: ${line.trim()}`);
    }
    expect(found).toEqual([]);
  });
});
