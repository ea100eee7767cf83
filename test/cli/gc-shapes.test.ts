/**
 * gc and delete touch only tsflow's keys (issue 19.6): they refuse a location that is not a
 * datastore, leave files of other shapes alone (a model under cache/, notes in a run's
 * directory), and list what they would delete under --dry-run.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { INLINE_MAX, storeArtifact } from "../../core/artifacts.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { cli, cliRun, fixture, latestRun, STACK_LINE, tempStore } from "../_helpers.ts";
import { walk } from "../reliability/_util.ts";

function plant(root: string, rel: string, text = "not tsflow's") {
  mkdirSync(join(root, rel, ".."), { recursive: true });
  writeFileSync(join(root, rel), text);
  return join(root, rel);
}

describe("gc and delete touch only tsflow's keys", () => {
  it("refuse a directory that is not a tsflow datastore (a project with cache/ and flows/*.ts)", async () => {
    const project = mkdtempSync(join(tmpdir(), "tsflow-project-"));
    onTestFinished(() => rmSync(project, { recursive: true, force: true }));
    const model = plant(project, "cache/models/bert.bin", "weights");
    plant(project, "flows/pets.ts", "export {}");
    for (const args of [["gc"], ["gc", "--grace", "0"], ["delete", "PetsFlow/123-abcd"]]) {
      const r = await cli([...args, "--datastore", project]);
      expect(r.code, args.join(" ")).not.toBe(0);
      expect(r.stderr).toMatch(/is not a tsflow datastore \(no flows\/<Flow>\/runs\/, blobs\/ or packages\/ in it\)/);
      expect(r.stderr).not.toMatch(STACK_LINE);
    }
    expect(existsSync(model)).toBe(true);
    // An empty (or not yet created) datastore is simply empty.
    const fresh = join(project, "nothing-yet");
    const gc = await cli(["gc", "--datastore", fresh]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/^0 runs/);
  });

  it("in a datastore, leave other files alone and list under --dry-run what goes", async () => {
    const ds = tempStore();
    const file = fixture("cached-step.ts");
    expect((await cliRun(file, ds)).code).toBe(0);
    const old = latestRun(ds, "CachedStepFlow").runId as string;
    expect((await cliRun(file, ds, "--n", "4")).code).toBe(0);
    const model = plant(ds, "cache/models/bert.bin", "weights");
    const odd = plant(ds, "cache/CachedStepFlow/square/notes.txt");
    const notes = plant(ds, `flows/CachedStepFlow/runs/${old}/notes.txt`);
    const entries = readdirSync(join(ds, "cache", "CachedStepFlow", "square")).filter((f) => /^[0-9a-f]{64}$/.test(f));
    expect(entries.length).toBe(2);

    const dryDelete = await cli(["delete", `CachedStepFlow/${old}`, "--dry-run", "--datastore", ds]);
    expect(dryDelete.code, dryDelete.stderr).toBe(0);
    expect(dryDelete.stdout).toContain(`Would delete CachedStepFlow/${old}`);
    expect(dryDelete.stdout).toContain(`  flows/CachedStepFlow/runs/${old}/run.json\n`);
    expect(dryDelete.stdout).toMatch(new RegExp(`  flows/CachedStepFlow/runs/${old}/tasks/square/\\d+/done\\.json\\n`));
    expect(dryDelete.stdout).toContain(`Left 1 file tsflow did not write:\n  flows/CachedStepFlow/runs/${old}/notes.txt\n`);
    expect(existsSync(join(ds, "flows", "CachedStepFlow", "runs", old, "run.json"))).toBe(true);

    const del = await cli(["delete", `CachedStepFlow/${old}`, "--datastore", ds]);
    expect(del.code, del.stderr).toBe(0);
    expect(existsSync(join(ds, "flows", "CachedStepFlow", "runs", old, "run.json"))).toBe(false);
    expect(walk(join(ds, "flows", "CachedStepFlow", "runs", old))).toEqual([notes]);

    // The deleted run's values were tiny (inline, no blobs): a blob no run references instead.
    await storeArtifact(fsDatastore({ root: ds }), nodeHost(), "old", "·".repeat(INLINE_MAX));
    const dry = await cli(["gc", "--grace", "0", "--dry-run", "--datastore", ds]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would remove 1 stale @cached entr/);
    expect(dry.stdout).toMatch(/\n {2}cache\/CachedStepFlow\/square\/[0-9a-f]{64}\n/);
    expect(dry.stdout).toMatch(/\n {2}blobs\/[0-9a-f]{2}\/[0-9a-f]{64}\n/);
    expect(dry.stdout).not.toContain("bert.bin");
    expect(dry.stdout).not.toContain("notes.txt");

    const gc = await cli(["gc", "--grace", "0", "--datastore", ds]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(readdirSync(join(ds, "cache", "CachedStepFlow", "square")).filter((f) => /^[0-9a-f]{64}$/.test(f)).length).toBe(1);
    for (const f of [model, odd, notes]) expect(existsSync(f), f).toBe(true);
  });
});
