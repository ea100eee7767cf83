/**
 * A flow built once is not built again while its sources are unchanged — and is rebuilt the
 * moment one of them (a local import included) or the tsconfig.json that picks the decorator
 * mode changes.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli, tempStore } from "../_helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "tsflow-buildcache-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// The build cache is per user (~/.cache/tsflow/modules); this test gets its own.
const env = { XDG_CACHE_HOME: mkdtempSync(join(tmpdir(), "tsflow-cachehome-")) };
afterAll(() => rmSync(env.XDG_CACHE_HOME, { recursive: true, force: true }));

const flow = `import { FlowSpec, step } from "tsflow";
import { word } from "./word.ts";
export default class WordFlow extends FlowSpec {
  @step start() { console.log(\`word=\${word}\`); this.next(this.end); }
  @step end() {}
}
`;

/** The cache manifest of our flow: its path and the signatures it recorded. */
function manifest(): { path: string; mtimeMs: number; inputs: [string, number, number][] } {
  const cache = join(env.XDG_CACHE_HOME, "tsflow", "modules");
  for (const f of readdirSync(cache).filter((n) => n.endsWith(".json"))) {
    const path = join(cache, f);
    const m = JSON.parse(readFileSync(path, "utf8")) as { inputs: [string, number, number][] };
    if (m.inputs.some(([p]) => p === join(dir, "flow.ts"))) return { path, mtimeMs: statSync(path).mtimeMs, inputs: m.inputs };
  }
  throw new Error("no manifest for the flow");
}

describe("the built-flow cache", () => {
  it("reuses an unchanged build and rebuilds after a local import changes", async () => {
    const store = tempStore();
    writeFileSync(join(dir, "flow.ts"), flow);
    writeFileSync(join(dir, "word.ts"), `export const word = "alpha";\n`);
    const first = await cli(["run", join(dir, "flow.ts"), "--datastore", store], { env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("word=alpha");
    const built = manifest();
    const second = await cli(["run", join(dir, "flow.ts"), "--datastore", store], { env });
    expect(second.stdout).toContain("word=alpha");
    expect(manifest().mtimeMs).toBe(built.mtimeMs); // reused, not rebuilt

    // Same size, new content and time: only the signature of the import tells.
    writeFileSync(join(dir, "word.ts"), `export const word = "omega";\n`);
    const later = new Date(Date.now() + 5000);
    utimesSync(join(dir, "word.ts"), later, later);
    const third = await cli(["run", join(dir, "flow.ts"), "--datastore", store], { env });
    expect(third.code, third.stderr).toBe(0);
    expect(third.stdout).toContain("word=omega");
  });

  it("rebuilds when a tsconfig.json appears beside the flow", async () => {
    const store = tempStore();
    const before = (await cli(["show", join(dir, "flow.ts"), "--datastore", store], { env })).code;
    expect(before).toBe(0);
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { experimentalDecorators: true } }));
    const tsconfig = (m: ReturnType<typeof manifest>) => m.inputs.find(([p]) => p === join(dir, "tsconfig.json"))?.[2];
    expect(tsconfig(manifest())).toBe(-1); // recorded as absent
    const after = await cli(["run", join(dir, "flow.ts"), "--datastore", store], { env });
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toContain("word=omega");
    expect(tsconfig(manifest())).toBeGreaterThan(0); // rebuilt with it
  });
});
