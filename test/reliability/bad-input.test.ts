/**
 * Bad input: broken flow files, hostile parameter values, odd artifact names, pathspecs that
 * try to leave the datastore, a bucket that does not exist, unknown decorators. Each gets a
 * clear one-paragraph error (no stack trace) and a non-zero exit, or well-defined behaviour.
 */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { isTsflowError } from "../../core/errors.ts";
import { runFlow } from "../../mod.ts";
import { cli, cliRun, fixture, STACK_LINE, tempStore } from "../_helpers.ts";
import { startS3rver } from "../_s3rver.ts";
import HostileFlow from "./fixtures/hostile.ts";
import { endArtifacts, rfixture, runDirs, walk } from "./_util.ts";

const has = (cmd: string) => existsSync(new URL(`../../cli/commands/${cmd}.ts`, import.meta.url));

describe("malformed flow files", () => {
  const cases: [string, RegExp][] = [
    ["syntax-error", /cannot load flow file '.*syntax-error\.ts': .*syntax-error\.ts:\d+:\d+: Expected/],
    ["no-default", /flow file '.*no-default\.ts' exports several flows \(A, B\); pick one with --flow Name/],
    ["not-flowspec", /default export of '.*not-flowspec\.ts' is not a class extending FlowSpec/],
    ["step-arity", /step 'join' \[step-arity\]: step 'join' takes 2 parameters/],
    ["decorated-field", /@step can only decorate methods: 'start' is a field/],
    ["decorator-without-step", /method 'helper' has @retry but no @step/],
  ];
  const root = tempStore();
  it.each(cases)("%s: a clear error, exit 1, no run stored", async (name, message) => {
    const r = await cliRun(fixture(`broken/${name}.ts`), root);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(walk(root).filter((f) => f.endsWith("run.json"))).toEqual([]);
  });
});

describe("hostile parameter values", () => {
  it("a 1 MB string parameter is stored and read back intact", async () => {
    const root = tempStore();
    const text = "x".repeat(1 << 20);
    const result = await runFlow(HostileFlow, { datastore: root, executor: "inline", params: { text } });
    expect(result.successful).toBe(true);
    const run = runDirs(root, "HostileFlow")[0]!;
    expect((await endArtifacts(root, "HostileFlow", run)).textLength).toBe(1 << 20);
  });

  it("{\"__proto__\":{\"polluted\":1}} pollutes nothing: not in the CLI process, not in a task", async () => {
    const root = tempStore();
    const cfg = '{"__proto__":{"polluted":1},"a":{"__proto__":{"polluted":2},"constructor":{"prototype":{"polluted":3}}}}';
    const r = await cliRun(rfixture("hostile.ts"), root, "--cfg", cfg);
    expect(r.code, r.stderr).toBe(0);
    const end = await endArtifacts(root, "HostileFlow", runDirs(root, "HostileFlow")[0]!);
    expect(end.polluted).toBeUndefined();
    expect(Object.getPrototypeOf(end.cfg)).toBe(Object.prototype);
    // Parsed in this process too (the way runFlow parses a string value).
    const inline = tempStore();
    expect((await runFlow(HostileFlow, { datastore: inline, executor: "inline", params: { cfg } })).successful).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await endArtifacts(inline, "HostileFlow", runDirs(inline, "HostileFlow")[0]!)).polluted).toBeUndefined();
  });

  it("a deeply nested JSON bomb: nesting 1,000 deep runs; 5,000 deep is refused naming the option", async () => {
    const root = tempStore();
    const ok = await cliRun(rfixture("hostile.ts"), root, "--cfg", `${"[".repeat(1000)}${"]".repeat(1000)}`);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await endArtifacts(root, "HostileFlow", runDirs(root, "HostileFlow")[0]!)).depth).toBe(999);
    const bomb = await cliRun(rfixture("hostile.ts"), root, "--cfg", `${"[".repeat(5000)}${"]".repeat(5000)}`);
    expect(bomb.code).toBe(1);
    expect(bomb.stderr).toMatch(/option --cfg must be JSON/);
    expect(bomb.stderr).not.toMatch(STACK_LINE);
  });

  it("an object nested 100,000 deep given from code is stored (the serializer does not recurse) and read back", async () => {
    const root = tempStore();
    let deep: unknown[] = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const outcome = await runFlow(HostileFlow, { datastore: root, executor: "inline", params: { cfg: deep } }).then(
      (r) => ({ ok: r.successful, error: r.error?.message }),
      (e) => ({ ok: false, error: (e as Error).message, tsflow: isTsflowError(e) }),
    );
    expect(outcome).toEqual({ ok: true, error: undefined });
    expect((await endArtifacts(root, "HostileFlow", runDirs(root, "HostileFlow")[0]!)).depth).toBe(100_000);
  });
});

describe("artifact names that are not identifiers", () => {
  it("are stored and readable under their exact name (names are JSON keys, never datastore keys)", async () => {
    const root = tempStore();
    const r = await cliRun(rfixture("odd-names.ts"), root);
    expect(r.code, r.stderr).toBe(0);
    const end = await endArtifacts(root, "OddNamesFlow", runDirs(root, "OddNamesFlow")[0]!);
    expect(end).toMatchObject({ "a b": 1, "x/../../y": 2, ünï: 3, "0": 4, sum: 10 });
    expect(walk(root).some((f) => f.includes("/y") || f.includes("a b"))).toBe(false);
  });
});

describe("pathspecs that try to leave the datastore", () => {
  for (const cmd of ["logs", "dump"]) {
    it.skipIf(!has(cmd))(`${cmd} refuses '..' and absolute paths`, async () => {
      const root = tempStore();
      for (const spec of ["LinearFlow/../../../etc/passwd", "/etc/passwd", "../x/y/z", "LinearFlow/1/../../..", "LinearFlow/..%2f..%2fetc/start"]) {
        const r = await cli([cmd, spec, "--datastore", root]);
        expect(r.code, `${cmd} ${spec}`).not.toBe(0);
        expect(r.stdout).not.toMatch(/root:/);
        expect(r.stderr).not.toMatch(STACK_LINE);
      }
    });
  }
});

describe("an S3 bucket that does not exist", () => {
  it("fails at once naming the bucket, exit 1", async () => {
    const s3 = await startS3rver({ buckets: ["exists"] });
    try {
      const r = await cli(["run", fixture("linear.ts"), "--datastore", "s3://nope/x"], {
        env: { TSFLOW_S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" },
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/\[s3\] cannot \w+ '[^']+' in s3:\/\/nope\/x: the bucket 'nope' does not exist/);
      expect(r.stderr).not.toMatch(STACK_LINE);
    } finally {
      await s3.close();
    }
  });
});

describe("unknown --with decorators", () => {
  it("are refused before anything runs, naming the decorator, exit 2", async () => {
    const root = tempStore();
    for (const w of ["retri", "batch:memory", "__proto__", "constructor"]) {
      const r = await cliRun(fixture("linear.ts"), root, "--with", w);
      expect(r.code, `--with ${w}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/unknown decorator|must be attribute=value/);
    }
    expect(walk(root).filter((f) => f.endsWith("run.json"))).toEqual([]);
  });
});
