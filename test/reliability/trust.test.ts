/**
 * Files other users plant are not trusted (issue #19 item 5), through the real CLI: a
 * `tsflow.config.mjs` or `.tsflow` in an ancestor that belongs to someone else (or that anybody
 * may write) is ignored with a warning; the build cache lives in a private per-user directory
 * and a manifest cannot point tsflow at a module outside it or with other content; a cached
 * code package is re-checked against its hash before it is imported.
 */
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { fetchPackage, uploadPackage } from "../../plugins/executors/_package.ts";
import { CLI, exec, fixture, tempStore } from "../_helpers.ts";

const OTHER = 65534; // nobody
const asRoot = process.getuid?.() === 0;

/** base/proj/flow.ts, with `base` as the shared ancestor another user writes into. */
function layout() {
  const base = tempStore();
  const proj = join(base, "proj");
  mkdirSync(proj);
  copyFileSync(fixture("linear.ts"), join(proj, "flow.ts"));
  const cache = join(base, "cache");
  mkdirSync(cache, { mode: 0o700 });
  return { base, proj, cache, marker: join(base, "PWNED") };
}

const run = (cwd: string, cache: string, ...args: string[]) => exec([process.execPath, CLI, "run", "flow.ts", ...args], { cwd, env: { XDG_CACHE_HOME: cache, TSFLOW_DATASTORE: undefined } });

describe.skipIf(!asRoot && !process.getuid)("trusted files", () => {
  it.skipIf(!asRoot)("ignores another user's tsflow.config.mjs and .tsflow in an ancestor", async () => {
    const { base, proj, cache, marker } = layout();
    const config = join(base, "tsflow.config.mjs");
    writeFileSync(config, `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "ran"); export default { tag: ["planted"] };\n`);
    chownSync(config, OTHER, OTHER);
    const planted = join(base, ".tsflow");
    mkdirSync(planted);
    chownSync(planted, OTHER, OTHER);
    const r = await run(proj, cache);
    expect(r.stderr).toMatch(/tsflow ignores .*tsflow\.config\.mjs: it belongs to another user \(uid 65534/);
    expect(r.stderr).toMatch(/tsflow ignores .*\.tsflow: it belongs to another user .*pass --datastore/);
    expect(r.code).toBe(0);
    expect(existsSync(marker)).toBe(false);
    expect(readdirSync(planted)).toEqual([]);
    expect(existsSync(join(proj, ".tsflow", "flows", "LinearFlow"))).toBe(true);
  });

  it("ignores a config file everybody may write, even the user's own", async () => {
    const { base, proj, cache, marker } = layout();
    const config = join(base, "tsflow.config.mjs");
    writeFileSync(config, `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "ran"); export default {};\n`);
    chmodSync(config, 0o666);
    const r = await run(proj, cache, "--datastore", join(base, "ds"));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/ignores .*tsflow\.config\.mjs: everybody may write to it/);
    expect(existsSync(marker)).toBe(false);
  });

  it("never imports a module a planted manifest points at", async () => {
    const { base, proj, cache, marker } = layout();
    const flowFile = join(proj, "flow.ts");
    const evil = join(base, "evil.mjs");
    writeFileSync(evil, `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "ran"); export default class X {}\n`);
    const first = await run(proj, cache, "--datastore", join(base, "ds"));
    expect(first.code).toBe(0);
    // The manifest tsflow wrote for this flow: in the per-user cache (or, before, the shared
    // temp directory every user of the machine could write to).
    const dirs = [join(cache, "tsflow", "modules"), join(tmpdir(), "tsflow-modules")].filter(existsSync);
    const manifest = dirs
      .flatMap((d) => readdirSync(d).filter((f) => f.endsWith(".json")).map((f) => join(d, f)))
      .find((f) => readFileSync(f, "utf8").includes(JSON.stringify(flowFile)))!;
    expect(manifest).toBeDefined();
    onTestFinished(() => rmSync(manifest, { force: true }));
    // No inputs, a module outside the cache.
    writeFileSync(manifest, JSON.stringify({ out: evil, inputs: [] }));
    const r1 = await run(proj, cache, "--datastore", join(base, "ds"));
    expect(r1.code).toBe(0);
    expect(existsSync(marker)).toBe(false);
    // Inside the cache, named like a built module, with the flow as input, but other content.
    const fake = join(dirname(manifest), `${"0".repeat(24)}.mjs`);
    copyFileSync(evil, fake);
    onTestFinished(() => rmSync(fake, { force: true }));
    const st = statSync(flowFile);
    writeFileSync(manifest, JSON.stringify({ out: fake, inputs: [[flowFile, st.mtimeMs, st.size]] }));
    const r2 = await run(proj, cache, "--datastore", join(base, "ds"));
    expect(r2.code).toBe(0);
    expect(existsSync(marker)).toBe(false);
    // The cache directory is private.
    expect(statSync(join(cache, "tsflow")).mode & 0o077).toBe(0);
  });

  it.skipIf(!asRoot)("does not use a node_modules another user planted above the flow as its cache", async () => {
    const { base, proj, cache } = layout();
    const nm = join(base, "node_modules");
    mkdirSync(nm);
    chownSync(nm, OTHER, OTHER);
    const r = await run(proj, cache, "--datastore", join(base, "ds"));
    expect(r.code).toBe(0);
    expect(readdirSync(nm)).toEqual([]);
    expect(readdirSync(join(cache, "tsflow", "modules")).some((f) => f.endsWith(".mjs"))).toBe(true);
  });

  it("re-checks a cached code package against its hash before it is imported", async () => {
    const { base, cache } = layout();
    const store = fsDatastore({ root: join(base, "ds") });
    const { hash } = await uploadPackage(store, fixture("linear.ts"));
    const saved = process.env.XDG_CACHE_HOME;
    const savedPkg = process.env.TSFLOW_PACKAGE_CACHE;
    process.env.XDG_CACHE_HOME = cache;
    delete process.env.TSFLOW_PACKAGE_CACHE;
    try {
      const file = await fetchPackage(store, hash);
      expect(file.startsWith(join(cache, "tsflow", "packages"))).toBe(true);
      const genuine = readFileSync(file, "utf8");
      writeFileSync(file, "export default 'planted';\n");
      // A new process (no memo): import the package again.
      vi.resetModules();
      const { fetchPackage: again } = await import("../../plugins/executors/_package.ts");
      const file2 = await again(store, hash);
      expect(readFileSync(file2, "utf8")).toBe(genuine);
    } finally {
      if (saved === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = saved;
      if (savedPkg !== undefined) process.env.TSFLOW_PACKAGE_CACHE = savedPkg;
    }
  });
});
