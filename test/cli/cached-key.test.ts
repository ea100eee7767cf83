/**
 * What a `@cached` key covers (issue 19.7): the built module (the flow file and its local
 * imports) and the step's environment, not only the step method's own source.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it, onTestFinished } from "vitest";
import { cliRun, fixture, tempStore } from "../_helpers.ts";

it("@cached re-runs when an imported constant or the step's environment changes, and only then", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tsflow-cached-key-"));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(fixture("cached-import"), dir, { recursive: true });
  const flow = join(dir, "flow.ts");
  const ds = tempStore();
  const run = async (...args: string[]) => {
    const r = await cliRun(flow, ds, ...args);
    expect(r.code, r.stderr).toBe(0);
    return { computed: r.stdout.includes("computing"), result: /result: (.*)/.exec(r.stdout)?.[1] };
  };

  expect(await run()).toEqual({ computed: true, result: "42 -" });
  expect(await run()).toEqual({ computed: false, result: "42 -" });

  // The step's own source is unchanged; a helper it imports is not.
  writeFileSync(join(dir, "helper.ts"), readFileSync(join(dir, "helper.ts"), "utf8").replace("FACTOR = 2", "FACTOR = 3"));
  expect(await run()).toEqual({ computed: true, result: "63 -" });
  expect(await run()).toEqual({ computed: false, result: "63 -" });

  // The step's environment is part of the key.
  expect(await run("--with", "environment:CACHED_KEY_MODE=a")).toEqual({ computed: true, result: "63 a" });
  expect(await run("--with", "environment:CACHED_KEY_MODE=a")).toEqual({ computed: false, result: "63 a" });
  expect(await run("--with", "environment:CACHED_KEY_MODE=b")).toEqual({ computed: true, result: "63 b" });
}, 120_000);
