/**
 * `tsflow view --export` through the real CLI: every link of the copy has its file (timeline
 * bars point at attempt pages; issue #11), gzipped artifacts are written as readable blobs
 * (#19 item 14), and the export never overwrites, follows a planted symlink or writes into a
 * file (#19 item 18).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { putJson } from "../../core/_datastore.ts";
import { attemptKey, doneKey } from "../../core/_layout.ts";
import { storeArtifact } from "../../core/artifacts.ts";
import { deserialize } from "../../core/serialize.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { cli, tempStore } from "../_helpers.ts";
import { F, R, writeRun } from "./_run.ts";

let base: string;
let root: string;
const text = "tsflow ".repeat(100_000);

beforeAll(async () => {
  base = tempStore();
  root = join(base, "store");
  const store = fsDatastore({ root });
  const zipped = await storeArtifact({ ...store, compress: true }, nodeHost(), "zipped", text);
  expect(zipped.gzipped).toBeGreaterThan(0);
  await writeRun(store, { small: { a: 1 } }, { refs: { zipped } });
  // start/1 was retried: attempt 0 failed, attempt 1 succeeded.
  await putJson(store, attemptKey(F, R, "start", "1", 0, "result.json"), { ok: false, attempt: 0, startedAt: 1_790_000_000_100, finishedAt: 1_790_000_000_200, error: { type: "Error", message: "flaky" } });
  await putJson(store, attemptKey(F, R, "start", "1", 1, "start.json"), { attempt: 1, mode: "run", startedAt: 1_790_000_000_300, executor: "process" });
  await putJson(store, doneKey(F, R, "start", "1"), { ok: true, attempt: 1, artifacts: {}, next: ["end"], startedAt: 1_790_000_000_300, finishedAt: 1_790_000_000_400 });
});

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe("tsflow view --export", () => {
  it("writes every page and file its links point at, and gzipped artifacts as serialized bytes", async () => {
    const out = join(base, "export");
    const r = await cli(["view", "--export", out, `${F}/${R}`, "--datastore", root]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const pages = files(out).filter((f) => f.endsWith(".html"));
    expect(pages.map((p) => relative(out, p)).sort()).toEqual(["index.html", "task-end-2.html", "task-start-1-a0.html", "task-start-1-a1.html", "task-start-1.html"]);
    let links = 0;
    for (const page of pages) {
      const html = readFileSync(page, "utf8");
      for (const m of html.matchAll(/(?:href|src|data-href)="([^"]*)"/g)) {
        const target = m[1]!.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)));
        expect(target, `${relative(out, page)} links to ${target}`).not.toMatch(/^(\/|[a-z]+:)/);
        const file = resolve(dirname(page), target.split("#")[0]!);
        expect(existsSync(file) && statSync(file).isFile(), `${relative(out, page)} links to ${target}, which was not written`).toBe(true);
        links++;
      }
    }
    expect(links).toBeGreaterThan(15);
    const end = readFileSync(join(out, "task-end-2.html"), "utf8");
    const blob = /href="(data\/[0-9a-f]+\.tsf)" download="zipped\.tsf"/.exec(end)![1]!;
    expect(deserialize(readFileSync(join(out, blob)))).toBe(text);
  });

  it("never overwrites, writes through a symlink, or into a file", async () => {
    const full = join(base, "full");
    mkdirSync(full);
    writeFileSync(join(full, "index.html"), "mine");
    const r1 = await cli(["view", "--export", full, `${F}/${R}`, "--datastore", root]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/--export target '.*full' is not empty: give a new or empty directory/);
    expect(readFileSync(join(full, "index.html"), "utf8")).toBe("mine");

    const file = join(base, "a-file");
    writeFileSync(file, "x");
    const r2 = await cli(["view", "--export", file, `${F}/${R}`, "--datastore", root]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/--export target '.*a-file' is a file, not a directory/);
    expect(r2.stderr).not.toMatch(/^\s{4}at /m);

    const victim = join(base, "victim");
    mkdirSync(victim);
    const link = join(base, "link");
    symlinkSync(victim, link);
    const r3 = await cli(["view", "--export", link, `${F}/${R}`, "--datastore", root]);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/is a symbolic link/);
    expect(readdirSync(victim)).toEqual([]);
  });
});
