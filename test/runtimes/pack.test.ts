/**
 * `npx tsflow` for real: the packed package, installed into an empty project with no access to
 * the repo, runs a flow that imports "tsflow", and that flow type-checks against the published
 * declarations.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../_helpers.ts";
import { bunBin, denoBin, exec } from "./_runtimes.ts";

const project = mkdtempSync(join(tmpdir(), "tsflow-pack-"));
afterAll(() => rmSync(project, { recursive: true, force: true }));

const FLOW = `import { FlowSpec, type Inputs, Parameter, step } from "tsflow";

export default class PackedFlow extends FlowSpec {
  count = Parameter("count", { default: 3, help: "how many" });
  items: number[] = [];
  item = 0;
  total = 0;

  @step start() {
    this.items = Array.from({ length: this.count }, (_, i) => i + 1);
    this.next(this.double, { foreach: "items" });
  }

  @step double() {
    this.item = (this.input as number) * 2;
    this.next(this.join);
  }

  @step join(inputs: Inputs<PackedFlow>) {
    this.total = [...inputs].reduce((sum, i) => sum + i.item, 0);
    this.next(this.end);
  }

  @step end() {
    const total: number = this.total;
    console.log(\`total \${total}\`);
  }
}
`;

describe("the published package, installed from its tarball", () => {
  beforeAll(() => {
    // dist/ was built by the global setup; rebuilding here would race the other test files.
    const packed = spawnSync("npm", ["pack", "--ignore-scripts", "--pack-destination", project, "--json"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
    expect(packed.status, packed.stderr).toBe(0);
    const tgz = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("[")))[0].filename as string;
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "user-project", private: true, type: "module" }));
    const typescript = JSON.parse(readFileSync(join(ROOT, "node_modules", "typescript", "package.json"), "utf8")).version;
    const installed = spawnSync(
      "npm",
      ["i", join(project, tgz.replace(/^@[^/]+\//, "").replace("/", "-")), `typescript@${typescript}`, "--prefer-offline", "--no-audit", "--no-fund"],
      { cwd: project, encoding: "utf8", timeout: 300_000 },
    );
    expect(installed.status, installed.stderr).toBe(0);
    writeFileSync(join(project, "flow.ts"), FLOW);
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { target: "ES2022", module: "nodenext", moduleResolution: "nodenext", strict: true, noEmit: true, types: [] }, include: ["flow.ts"] }),
    );
  }, 400_000);

  it("ships the bundle and the declarations, not the repo", () => {
    const pkg = join(project, "node_modules", "tsflow");
    expect(existsSync(join(pkg, "dist", "tsflow.mjs"))).toBe(true);
    expect(existsSync(join(pkg, "dist", "types", "mod.d.ts"))).toBe(true);
    expect(existsSync(join(pkg, "test"))).toBe(false);
  });

  it("npx tsflow run flow.ts", async () => {
    const r = await exec(["npx", "--no-install", "tsflow", "run", "flow.ts", "--count", "4"], { cwd: project, timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain("total 20");
    expect(r.stdout + r.stderr).toMatch(/Run PackedFlow\/\S+ succeeded/);
  });

  it.each([
    ["bun", () => (bunBin() ? [bunBin()!, "node_modules/.bin/tsflow"] : null)],
    ["deno", () => (denoBin() ? [denoBin()!, "run", "-A", "node_modules/tsflow/bin/tsflow.mjs"] : null)],
  ] as const)("the installed package runs the flow on %s too", async (name, command) => {
    const cmd = command();
    if (!cmd) return expect.soft(cmd, `${name} is not installed`).not.toBeNull();
    const r = await exec([...cmd, "run", "flow.ts", "--count", "2"], { cwd: project, timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain("total 6");
  });

  it("npx tsflow --help", async () => {
    const r = await exec(["npx", "--no-install", "tsflow", "--help"], { cwd: project });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("USAGE");
  });

  it("tsc --noEmit on the user's flow passes with the published types", async () => {
    const r = await exec(["npx", "--no-install", "tsc", "--noEmit", "-p", "."], { cwd: project, timeoutMs: 120_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it("tsc reports a type error in the user's flow (the types are real, not any)", async () => {
    writeFileSync(join(project, "bad.ts"), `${FLOW.replace("const total: number = this.total", "const total: string = this.total")}`);
    writeFileSync(join(project, "tsconfig.bad.json"), JSON.stringify({ extends: "./tsconfig.json", include: ["bad.ts"] }));
    const r = await exec(["npx", "--no-install", "tsc", "--noEmit", "-p", "tsconfig.bad.json"], { cwd: project, timeoutMs: 120_000 });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/bad\.ts.*Type 'number' is not assignable to type 'string'/);
  });
});
