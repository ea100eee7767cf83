/**
 * V8's code cache for the CLI bundle (cli/_script-loader.ts): written by the first process, used
 * by the next, never used for a bundle that changed since, and never a reason for a command to
 * fail or print anything. What the cache did is read from the start-up trace
 * (TSFLOW_TRACE_STARTUP: "bundle compiled (code cache hit|miss|rejected|off)"), not from timing.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { exec, ROOT, tempStore } from "../_helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "tsflow-code-cache-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const VERSION = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;

/** `node <bundle> --version` with its own cache directory; its output and what the code cache did. */
async function version(cacheHome: string, bundle = join(ROOT, "dist", "tsflow.mjs")) {
  const trace = join(dir, `trace-${n++}.jsonl`);
  const r = await exec([process.execPath, bundle, "--version"], { env: { XDG_CACHE_HOME: cacheHome, TSFLOW_TRACE_STARTUP: trace, TSFLOW_CODE_CACHE: undefined } });
  const phases = existsSync(trace) ? readFileSync(trace, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l).phase as string) : [];
  const cache = phases.map((p) => /^bundle compiled \(code cache (\w+)\)$/.exec(p)?.[1]).find(Boolean);
  return { ...r, cache };
}

const cacheFiles = (cacheHome: string) => {
  const v8 = join(cacheHome, "tsflow", "v8");
  return existsSync(v8) ? readdirSync(v8).map((f) => join(v8, f)) : [];
};

describe("the CLI bundle's code cache", () => {
  it("is written by the first process, private to the user, and used by the next", async () => {
    const home = join(dir, "first");
    const first = await version(home);
    expect(first).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "", cache: "miss" });
    const files = cacheFiles(home);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/\.bin$/);
    expect(statSync(files[0]!).mode & 0o077).toBe(0);
    const second = await version(home);
    expect(second).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "", cache: "hit" });
  });

  it("is kept per kind of process: a run and its worker each use their own", async () => {
    const home = join(dir, "roles");
    const run = async () => {
      const trace = join(dir, `trace-${n++}.jsonl`);
      const r = await exec([process.execPath, join(ROOT, "bin", "tsflow.mjs"), "run", join(ROOT, "examples", "hello.ts"), "--datastore", tempStore()], {
        env: { XDG_CACHE_HOME: home, TSFLOW_TRACE_STARTUP: trace, TSFLOW_CODE_CACHE: undefined },
      });
      expect(r.code, r.stderr).toBe(0);
      const lines = readFileSync(trace, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { role: string; phase: string });
      const cache = (role: string) => lines.filter((l) => l.role === role).map((l) => /^bundle compiled \(code cache (\w+)\)$/.exec(l.phase)?.[1]).find(Boolean);
      return { cli: cache("cli"), worker: cache("worker") };
    };
    expect(await run()).toEqual({ cli: "miss", worker: "miss" });
    expect(cacheFiles(home).map((f) => f.replace(/^.*-/, "")).sort()).toEqual(["run.bin", "worker.bin"]);
    expect(await run()).toEqual({ cli: "hit", worker: "hit" });
    // Another command does not take (or spoil) the run's cache.
    expect((await version(home)).cache).toBe("miss");
    expect(await run()).toEqual({ cli: "hit", worker: "hit" });
  });

  it("is not used for a bundle changed since, even one of the same length", async () => {
    const home = join(dir, "stale");
    const dist = join(dir, "stale-dist");
    mkdirSync(dist);
    for (const f of ["tsflow.mjs", "tsflow.script.js"]) copyFileSync(join(ROOT, "dist", f), join(dist, f));
    const bundle = join(dist, "tsflow.mjs");
    expect((await version(home, bundle)).cache).toBe("miss");
    expect((await version(home, bundle)).cache).toBe("hit");
    // Same length, other code: V8 itself checks only the length of the source it is given.
    const script = join(dist, "tsflow.script.js");
    const other = VERSION.replace(/\d/g, "9");
    const source = readFileSync(script, "utf8");
    expect(source).toContain(`"${VERSION}"`);
    writeFileSync(script, source.replaceAll(`"${VERSION}"`, `"${other}"`));
    const later = new Date(statSync(script).mtimeMs + 5000);
    utimesSync(script, later, later);
    const changed = await version(home, bundle);
    expect(changed).toMatchObject({ code: 0, stdout: `${other}\n`, stderr: "", cache: "miss" });
    expect((await version(home, bundle)).cache).toBe("hit");
  });

  it("that V8 rejects (a damaged file) is replaced, and the command runs as usual", async () => {
    const home = join(dir, "damaged");
    await version(home);
    const [file] = cacheFiles(home);
    writeFileSync(file!, Buffer.alloc(statSync(file!).size, 7));
    expect(await version(home)).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "", cache: "rejected" });
    expect(await version(home)).toMatchObject({ code: 0, cache: "hit" });
  });

  it("is left alone, silently, where it cannot be read or written", async () => {
    // The cache directory is a file: no cache at all.
    const blocked = join(dir, "blocked");
    mkdirSync(join(blocked, "tsflow"), { recursive: true, mode: 0o700 });
    writeFileSync(join(blocked, "tsflow", "v8"), "not a directory");
    expect(await version(blocked)).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "", cache: "off" });
    // The cache file's name is taken by a directory: nothing can be written, nothing is left behind.
    const taken = join(dir, "taken");
    await version(taken);
    const [file] = cacheFiles(taken);
    rmSync(file!);
    mkdirSync(join(file!, "x"), { recursive: true });
    expect(await version(taken)).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "", cache: "miss" });
    expect(await version(taken)).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "", cache: "miss" });
    expect(cacheFiles(taken)).toEqual([file]);
  });

  it("is written safely by processes that start at once", async () => {
    const home = join(dir, "together");
    const all = await Promise.all(Array.from({ length: 4 }, () => version(home)));
    for (const r of all) expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "" });
    expect(cacheFiles(home).filter((f) => !f.endsWith(".bin"))).toEqual([]);
    expect((await version(home)).cache).toBe("hit");
  });

  it("is off with TSFLOW_CODE_CACHE=0", async () => {
    const home = join(dir, "off");
    const trace = join(dir, "trace-off.jsonl");
    const r = await exec([process.execPath, join(ROOT, "dist", "tsflow.mjs"), "--version"], { env: { XDG_CACHE_HOME: home, TSFLOW_TRACE_STARTUP: trace, TSFLOW_CODE_CACHE: "0" } });
    expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n`, stderr: "" });
    expect(readFileSync(trace, "utf8")).toContain("bundle compiled (code cache off)");
    expect(cacheFiles(home)).toEqual([]);
  });
});
