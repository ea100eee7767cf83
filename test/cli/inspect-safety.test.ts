/**
 * `dump`, `logs` and `runs` over hostile stored content (issue #19 items 4, 15, 18): shared
 * sub-objects and deep nesting print in bounded time, terminal escape sequences are shown
 * escaped on a terminal, and a closed pipe ends `logs` quietly. Through the real CLI.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { putJson } from "../../core/_datastore.ts";
import { runKey } from "../../core/_layout.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { CLI, cli, exec, STACK_LINE, tempStore } from "../_helpers.ts";
import { F, R, writeRun } from "../viewer/_run.ts";

const ESC = "\u001b";
const HOSTILE = `${ESC}]0;pwned${ESC}\\${ESC}[2J${ESC}[31mred\u0007`;
let root: string;

beforeAll(async () => {
  root = join(tempStore(), "store");
  const store = fsDatastore({ root });
  let shared: Record<string, unknown> = { v: 1 };
  for (let i = 0; i < 40; i++) shared = { l: shared, r: shared };
  let deep: Record<string, unknown> = { bottom: true };
  for (let i = 0; i < 5000; i++) deep = { d: deep };
  await writeRun(store, { shared, deep, [`name${HOSTILE}`]: `value${HOSTILE}` }, { stdout: `line 1 ${HOSTILE}\n${"filler line\n".repeat(400_000)}` });
  const doc = JSON.parse(new TextDecoder().decode((await store.get(runKey(F, R)))!));
  await putJson(store, runKey(F, R), { ...doc, tags: [`tag${HOSTILE}`] });
});

describe("inspection commands over hostile content", () => {
  it("dump prints shared sub-objects once and any depth, in bounded time", async () => {
    const plain = await cli(["dump", `${F}/${R}/end`, "--datastore", root]);
    expect(plain.stderr).toBe("");
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/shared\s+object\s+[0-9.]+ KB\s+{"l":{"l"/);
    const json = await cli(["dump", `${F}/${R}/end`, "--json", "--include", "shared,deep", "--datastore", root]);
    expect(json.stderr).not.toMatch(STACK_LINE);
    expect(json.code).toBe(0);
    expect(json.stdout.length).toBeLessThan(2_000_000);
    expect(json.stdout).toContain('"[shared: same as $.shared.l]"');
    expect(json.stdout).toContain('"bottom": true');
  });

  it("shows control characters escaped on a terminal, and unchanged in a pipe", async () => {
    const onTty = (args: string[]) => {
      const cmd = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(" ");
      const r = spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 60_000 });
      return r.stdout;
    };
    for (const args of [["logs", `${F}/${R}/end`], ["runs", F, "--all"], ["tag", "list", `${F}/${R}`], ["dump", `${F}/${R}/end`]]) {
      const out = onTty([...args, "--datastore", root]);
      expect(out, args.join(" ")).toContain("\\x1b]0;pwned");
      expect(out, args.join(" ")).not.toContain(ESC);
      expect(out, args.join(" ")).not.toContain("\u0007");
    }
    const piped = await cli(["logs", `${F}/${R}/end`, "--datastore", root]);
    expect(piped.stdout.startsWith(`line 1 ${HOSTILE}\n`)).toBe(true);
  });

  it("logs into a closed pipe ends quietly with exit 0", async () => {
    const r = await exec(["bash", "-c", `set -o pipefail; '${process.execPath}' '${CLI}' logs ${F}/${R}/end --datastore '${root}' | head -c 20 >/dev/null`]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("refuses a planted 30 MB run.json before reading it: runs skips it, dump says so", async () => {
    const store = fsDatastore({ root });
    const huge = "1790000000005-huge";
    await putJson(store, runKey(F, huge), { flow: F, runId: huge, status: "succeeded", createdAt: 1, tags: Array.from({ length: 2_500_000 }, (_, i) => `tag${i}`) });
    const runs = await cli(["runs", F, "--all", "--datastore", root]);
    expect(runs.code).toBe(0);
    expect(runs.stdout).toContain(R);
    expect(runs.stderr).toMatch(new RegExp(`${huge}: damaged, skipped`));
    const dump = await cli(["dump", `${F}/${huge}`, "--datastore", root]);
    expect(dump.code).toBe(1);
    expect(dump.stderr).toMatch(/run\.json' in datastore .* is too large to load here \(\d+ bytes, limit 16777216\)/);
    expect(dump.stderr).not.toMatch(STACK_LINE);
  });
});
