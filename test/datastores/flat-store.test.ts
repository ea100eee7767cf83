/** The third-party datastore of examples/plugins passes the suite and runs flows on workers. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import flatStore from "../../examples/plugins/flat-store.ts";
import { cli, STACK_LINE, tempStore } from "../_helpers.ts";
import { datastoreSuite } from "../../testing/datastores.ts";

const PLUGIN = "./examples/plugins/flat-store.ts";

datastoreSuite(
  "flat (examples/plugins)",
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsflow-flat-"));
    return { store: flatStore({ dir }), cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
  {
    largeBytes: 16 << 20,
    additionalTests() {
      it("runs a flow with the process executor: workers re-open the store from its location", async () => {
        const dir = tempStore();
        const run = await cli(["run", "examples/foreach.ts", "--n", "5", "--datastore", `${PLUGIN}:dir=${dir}`, "--max-workers", "2"]);
        expect(run.code, run.stderr).toBe(0);
        const dump = await cli(["dump", run.stdout.match(/Run (\S+) succeeded/)![1]! + "/end", "--datastore", `${PLUGIN}:{"dir":${JSON.stringify(dir)}}`]);
        expect(dump.code, dump.stderr).toBe(0);
        expect(dump.stdout).toMatch(/total/);
      });

      it("an unstorage driver through the adapter is a plugin file of three lines (examples/plugins/unstorage-store.ts)", async () => {
        const dir = tempStore();
        const run = await cli(["run", "examples/pets.ts", "--datastore", `./examples/plugins/unstorage-store.ts:base=${dir}`]);
        expect(run.code, run.stderr).toBe(0);
        const runs = await cli(["runs", "PetsFlow", "--datastore", `./examples/plugins/unstorage-store.ts:base=${dir}`]);
        expect(runs.stdout).toMatch(/succeeded/);
      });

      it("a slow store is reported on the terminal through the run's logger, once per 30 s", async () => {
        const dir = tempStore();
        const r = await cli(["run", "examples/hello.ts", "--datastore", `./test/fixtures/slow-store.ts:dir=${dir},delayMs=1200`], { env: { TSFLOW_SLOW_STORAGE_MS: "1000" } });
        expect(r.code, r.stderr).toBe(0);
        const warnings = r.stderr.split("\n").filter((l) => l.includes("slow storage"));
        // Only run.json's writes sleep (1.2 s, each slow): the first is reported, the second falls
        // in the same 30 s. The bar is high enough that no other operation crosses it on a loaded
        // machine (at 300 ms one could, and the one warning named it instead); how long the write
        // took in all depends on the load.
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(/\[slow\] slow storage: write 'flows\/HelloFlow\/runs\/\S+\/run\.json' in flat:\/\/\S+ took \d+\.\d s/);
      });

      it("a plugin file that is not a datastore is refused naming the file, exit 2", async () => {
        const r = await cli(["run", "examples/hello.ts", "--datastore", "./examples/hello.ts"]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/datastore plugin '\.\/examples\/hello\.ts'/);
        expect(r.stderr).not.toMatch(STACK_LINE);
        const missing = await cli(["run", "examples/hello.ts", "--datastore", "./nope/store.ts:dir=/tmp/x"]);
        expect(missing.code).toBe(2);
        expect(missing.stderr).toMatch(/datastore plugin '\.\/nope\/store\.ts' does not exist/);
        const badOptions = await cli(["run", "examples/hello.ts", "--datastore", `${PLUGIN}:{"dir":`]);
        expect(badOptions.code).toBe(2);
        expect(badOptions.stderr).toMatch(/not valid JSON/);
        const failing = await cli(["run", "examples/hello.ts", "--datastore", PLUGIN]);
        expect(failing.code).toBe(2);
        expect(failing.stderr).toMatch(/failed to open.*flat-store needs a directory/);
      });
    },
  },
);
