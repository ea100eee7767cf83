/**
 * The fs datastore reads only regular files inside its root (issue #19 item 10): a symlink
 * planted in the store, a symlinked directory or a FIFO make `logs`, `runs`, the viewer and
 * `--export` refuse clearly or skip, never show a file outside the store or hang.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { attemptKey, runKey } from "../../core/_layout.ts";
import { INLINE_MAX } from "../../core/artifacts.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { cli, STACK_LINE, tempStore } from "../_helpers.ts";
import { F, R, writeRun } from "../viewer/_run.ts";

const SECRET = "SECRET-OUTSIDE-THE-DATASTORE";

async function plant() {
  const base = tempStore();
  const root = join(base, "store");
  // `blob` is too big to be kept inline in its reference: it has a blob file.
  await writeRun(fsDatastore({ root }), { x: 1, blob: "·".repeat(INLINE_MAX) });
  writeFileSync(join(base, "secret.txt"), `${SECRET}\n`);
  mkdirSync(join(base, "elsewhere"));
  writeFileSync(join(base, "elsewhere", "stdout"), `${SECRET}\n`);
  return { base, root, file: (key: string) => join(root, key) };
}

describe("fs datastore: only regular files inside the root", () => {
  it("refuses a symlinked log and a symlinked attempt directory in logs and the viewer", async () => {
    const { base, root, file } = await plant();
    const endLog = file(attemptKey(F, R, "end", "2", 0, "stdout"));
    rmSync(endLog);
    symlinkSync(join(base, "secret.txt"), endLog);
    const logs = await cli(["logs", `${F}/${R}/end`, "--datastore", root]);
    // A link is not a key: the log reads as not stored (or the read is refused), never as the file.
    expect(logs.stdout + logs.stderr).not.toContain(SECRET);
    expect(logs.stderr).not.toMatch(STACK_LINE);
    const store = fsDatastore({ root });
    expect(await store.has(attemptKey(F, R, "end", "2", 0, "stdout"))).toBe(false);
    await expect(store.get(attemptKey(F, R, "end", "2", 0, "stdout"))).rejects.toThrow(/refusing to read '.*end\/2\/0\/stdout' .*: it is a symbolic link/);

    const attemptDir = join(file(attemptKey(F, R, "start", "1", 0, "stdout")), "..");
    rmSync(attemptDir, { recursive: true });
    symlinkSync(join(base, "elsewhere"), attemptDir);
    const logs2 = await cli(["logs", `${F}/${R}/start`, "--datastore", root]);
    expect(logs2.stdout + logs2.stderr).not.toContain(SECRET);
    expect(logs2.stderr).toMatch(/leads outside the datastore .* through a symbolic link|has no attempt|refusing/);

    const app = createViewerApp({ store: fsDatastore({ root }), host: nodeHost() });
    for (const path of [`/runs/${F}/${R}/end/2`, `/runs/${F}/${R}/start/1`, `/runs/${F}/${R}`]) {
      const res = await app.request(path);
      expect(await res.text(), path).not.toContain(SECRET);
    }
  });

  it("refuses a symlinked directory planted below a directory it has already read from", async () => {
    const { base, root } = await plant();
    const store = fsDatastore({ root });
    await store.put("a/k", new TextEncoder().encode("inside"));
    expect(new TextDecoder().decode((await store.get("a/k"))!)).toBe("inside");
    // `a` is known to be inside now; a link below it must still be resolved, not trusted.
    symlinkSync(join(base, "elsewhere"), join(root, "a", "link"));
    await expect(store.get("a/link/stdout")).rejects.toThrow(/leads outside the datastore .* through a symbolic link/);
    mkdirSync(join(root, "a", "real", "deeper"), { recursive: true });
    writeFileSync(join(root, "a", "real", "deeper", "k"), "deep");
    expect(new TextDecoder().decode((await store.get("a/real/deeper/k"))!)).toBe("deep");
  });

  it("does not hang on a FIFO run.json, and exports leave planted links out", async () => {
    const { base, root, file } = await plant();
    // A second run whose run.json is a FIFO nobody writes to.
    const other = await writeRun(fsDatastore({ root }), { y: 2 }, { run: "1790000000001-fifo" });
    rmSync(file(runKey(F, other.run)));
    execFileSync("mkfifo", [file(runKey(F, other.run))]);
    const runs = await cli(["runs", F, "--all", "--datastore", root], { timeoutMs: 20_000 });
    expect(runs.stderr).not.toMatch(STACK_LINE);
    expect(runs.stdout).toContain(R);

    // The blob of `blob` replaced by a link to the secret: the export must not copy the secret.
    const blobs = readdirSync(file("blobs"), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    for (const b of blobs) {
      const p = join(b.parentPath, b.name);
      renameSync(p, `${p}.moved`);
      symlinkSync(join(base, "secret.txt"), p);
    }
    const out = join(base, "export");
    const exp = await cli(["view", "--export", out, `${F}/${R}`, "--datastore", root]);
    expect(exp.stderr).not.toMatch(STACK_LINE);
    for (const e of readdirSync(out, { recursive: true, withFileTypes: true })) {
      if (e.isFile()) expect(readFileSync(join(e.parentPath, e.name), "utf8"), e.name).not.toContain(SECRET);
    }
  });
});
