/**
 * The standalone binaries. Bun's (`npm run compile`), copied into a directory with no
 * node_modules and no Node on PATH, runs a user's TypeScript flow with its workers being the
 * binary itself. Deno's (`npm run compile:deno`) needs the `denort` runtime, which cannot be
 * downloaded here: everything up to that download is tested, and the binary itself when
 * DENORT_BIN points at a real denort. Also: deno.json `exports` agree with package.json's.
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../_helpers.ts";
import { bunBin, denoBin, exec } from "./_runtimes.ts";

const FLOW = `import { FlowSpec, type Inputs, Parameter, step, retry } from "tsflow";

export default class UserFlow extends FlowSpec {
  n = Parameter("n", { default: 3, help: "how many" });
  xs: number[] = [];
  sq = 0;
  total = 0;

  @step start() {
    this.xs = Array.from({ length: this.n }, (_, i) => i + 1);
    this.next(this.square, { foreach: "xs" });
  }

  @retry({ times: 1 })
  @step square() {
    this.sq = (this.input as number) ** 2;
    this.next(this.join);
  }

  @step join(inputs: Inputs<UserFlow>) {
    this.total = [...inputs].reduce((s, i) => s + i.sq, 0);
    this.next(this.end);
  }

  @step end() {
    console.log(\`sum of squares \${this.total}\`);
  }
}
`;

const work = mkdtempSync(join(tmpdir(), "tsflow-compile-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const suffix = `${process.platform}-${process.arch}`;
/** No Node, no Bun, no Deno: only the binary. */
const bare = (dir: string) => ({ PATH: "/nonexistent", HOME: dir, NODE_OPTIONS: undefined, TSFLOW_USER: "tester" });

const bun = bunBin();
describe.skipIf(!bun)(`the Bun binary (dist/tsflow-${suffix})`, () => {
  const dir = join(work, "bun");
  const binary = join(dir, "tsflow");
  beforeAll(() => {
    const built = spawnSync(bun!, ["build", "--compile", "--bytecode", "--format=esm", "--minify-syntax", "cli/compile.ts", "--outfile", join(work, "tsflow-bun")], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(built.status, built.stderr).toBe(0);
    spawnSync("mkdir", ["-p", dir]);
    copyFileSync(join(work, "tsflow-bun"), binary);
    spawnSync("chmod", ["+x", binary]);
    writeFileSync(join(dir, "flow.ts"), FLOW);
  }, 180_000);

  it("runs a user's TypeScript flow, decorators included, with no Node and no node_modules", async () => {
    expect(existsSync(join(dir, "node_modules"))).toBe(false);
    const r = await exec([binary, "run", "flow.ts", "--n", "4"], { cwd: dir, env: bare(dir) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain("sum of squares 30");
    expect(r.stdout + r.stderr).toMatch(/Run UserFlow\/\S+ succeeded/);
    expect(existsSync(join(dir, ".tsflow"))).toBe(true);
  });

  it("resumes a run from a step, if `resume` exists", async (ctx) => {
    const help = await exec([binary, "--help"], { cwd: dir, env: bare(dir) });
    if (!/\bresume\b/.test(help.stdout)) return ctx.skip();
    const first = await exec([binary, "run", "flow.ts", "--n", "2"], { cwd: dir, env: bare(dir) });
    expect(first.code, first.stderr).toBe(0);
    const id = /Run UserFlow\/(\S+) succeeded/.exec(first.stdout + first.stderr)![1]!;
    const r = await exec([binary, "resume", "flow.ts", "join", "--origin-run-id", id], { cwd: dir, env: bare(dir) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain("sum of squares 5");
    expect(r.stdout + r.stderr).toMatch(/Cloned \d+ tasks/);
  });

  it("draws a card's chart offline with the vega bundles embedded in the binary", async () => {
    writeFileSync(
      join(dir, "carded.ts"),
      `import { card, Chart, current, FlowSpec, step } from "tsflow";
export default class CardedFlow extends FlowSpec {
  @card() @step start() { current.card.append(new Chart({ data: { values: [{ x: 1 }, { x: 2 }] }, mark: "bar", encoding: { x: { field: "x", type: "quantitative" } } })); this.next(this.end); }
  @step end() {}
}
`,
    );
    const r = await exec([binary, "run", "carded.ts"], { cwd: dir, env: bare(dir) });
    expect(r.code, r.stderr).toBe(0);
    const id = /Run CardedFlow\/(\S+) succeeded/.exec(r.stdout + r.stderr)![1]!;
    const got = await exec([binary, "card", "get", `CardedFlow/${id}/start`], { cwd: dir, env: bare(dir) });
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toContain('class="tf-chart"');
    expect(got.stdout.length).toBeGreaterThan(800_000); // vega, vega-lite and vega-embed inlined
  });

  it("shows the flow", async () => {
    const r = await exec([binary, "show", "flow.ts"], { cwd: dir, env: bare(dir) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("UserFlow");
    expect(r.stdout).toMatch(/square/);
  });

  it("serves the viewer (hono, loaded lazily) from the binary, if `view` exists", async (ctx) => {
    const help = await exec([binary, "--help"], { cwd: dir, env: bare(dir) });
    if (!/\bview\b/.test(help.stdout)) return ctx.skip();
    const child = spawn(binary, ["view", "--port", "0"], { cwd: dir, env: { ...process.env, ...bare(dir), NODE_OPTIONS: "" } });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = "";
        const timer = setTimeout(() => reject(new Error(`tsflow view printed no URL: ${out}`)), 20_000);
        const onData = (c: Buffer) => {
          out += c.toString();
          const m = /https?:\/\/[\w.:-]+\/?/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[0]);
          }
        };
        child.stdout.on("data", onData);
        child.stderr.on("data", onData);
      });
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/<html|<!doctype/i);
    } finally {
      child.kill();
    }
  });

  it("--help and every command's --help load inside the binary", async () => {
    const help = await exec([binary, "--help"], { cwd: dir, env: bare(dir) });
    expect(help.code).toBe(0);
    const commands = /USAGE\s+tsflow\s+(\S+)/.exec(help.stdout)?.[1]?.split("|") ?? [];
    expect(commands).toContain("run");
    for (const c of commands) {
      const r = await exec([binary, c, "--help"], { cwd: dir, env: bare(dir) });
      expect(r.code, `${c}: ${r.stderr}`).toBe(0);
    }
  });
});

const deno = denoBin();
describe.skipIf(!deno)("the Deno binary (npm run compile:deno)", () => {
  beforeAll(() => {
    const built = spawnSync(process.execPath, ["build.mjs", "--deno"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
    expect(built.status, built.stderr).toBe(0);
  }, 180_000);

  it("the bundle it compiles runs under Deno with `tsflow` mapped to itself", async () => {
    writeFileSync(join(work, "flow.ts"), FLOW);
    const r = await exec([deno!, "run", "-A", "--config", join(ROOT, "dist/deno/deno.json"), join(ROOT, "dist/deno/tsflow.mjs"), "show", "flow.ts"], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("UserFlow");
  });

  it("deno compile embeds only the bundle (not node_modules) and stops only at the denort download", async () => {
    const out = join(work, "tsflow-deno");
    const args = [deno!, "compile", "-A", "--no-check", "--config", "deno.json", "--output", out, "tsflow.mjs"];
    const cwd = join(ROOT, "dist", "deno");
    const real = process.env.DENORT_BIN && existsSync(process.env.DENORT_BIN) ? process.env.DENORT_BIN : undefined;
    if (!real) {
      const offline = await exec(args, { cwd, env: { DENORT_BIN: undefined }, timeoutMs: 120_000 });
      if (offline.code !== 0) expect(offline.stderr).toMatch(/denort|download|dns|lookup/i);
    }
    // A stand-in runtime shows what deno compile would embed.
    const r = await exec(args, { cwd, env: { DENORT_BIN: real ?? "/bin/true" }, timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const embedded = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, "");
    expect(embedded).toMatch(/tsflow\.mjs/);
    expect(embedded).not.toMatch(/node_modules/);
    if (real) {
      const dir = join(work, "deno-bin");
      spawnSync("mkdir", ["-p", dir]);
      copyFileSync(out, join(dir, "tsflow"));
      spawnSync("chmod", ["+x", join(dir, "tsflow")]);
      writeFileSync(join(dir, "flow.ts"), FLOW);
      const run = await exec([join(dir, "tsflow"), "run", "flow.ts"], { cwd: dir, env: bare(dir) });
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout + run.stderr).toContain("sum of squares 14");
    }
  });
});

describe("deno.json and package.json agree", () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const denoJson = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8"));
  const denoExports: Record<string, string> = typeof denoJson.exports === "string" ? { ".": denoJson.exports } : denoJson.exports;

  it("export the same entry points", () => {
    expect(Object.keys(denoExports).sort()).toEqual(Object.keys(pkg.exports).sort());
  });

  it.each(Object.keys(pkg.exports))("%s: the package's types are the declarations of Deno's source", (key) => {
    const source = denoExports[key]!;
    expect(existsSync(join(ROOT, source))).toBe(true);
    expect(pkg.exports[key].types).toBe(`./dist/types/${source.replace(/^\.\//, "").replace(/\.ts$/, ".d.ts")}`);
  });

  it("maps `tsflow` to the library source and uses npm's node_modules", () => {
    expect(denoJson.imports.tsflow).toBe(denoExports["."]);
    expect(denoJson.nodeModulesDir).toBe("manual");
    expect(denoJson.version).toBe(pkg.version);
  });
});
