/**
 * Inside a task (issue #11 items 10 and 15): `current.namespace` and `current.datastore` are
 * set, and the default client reads the datastore of the task's own run — its --datastore, in
 * a warm worker and in a container — with the run's namespace, not `./.tsflow` of the working
 * directory nor the container's user.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, exec, fixture, latestRun, ROOT, tempStore } from "../_helpers.ts";
import { dockerUnavailable, NODE_IMAGE } from "../executors/_docker.ts";

const ds = tempStore();
// An empty working directory: a client that fell back to ./.tsflow would find nothing there.
const elsewhere = mkdtempSync(join(tmpdir(), "tsflow-elsewhere-"));
const env = { TSFLOW_USER: "alice", TSFLOW_DATASTORE: undefined, TSFLOW_NODE_IMAGE: NODE_IMAGE };
const tsflow = (args: string[]) => exec([process.execPath, CLI, ...args], { cwd: elsewhere, env, timeoutMs: 120_000 });
let petsRun = "";

beforeAll(async () => {
  const r = await tsflow(["run", join(ROOT, "examples/pets.ts"), "--datastore", ds]);
  expect(r.code, r.stderr).toBe(0);
  petsRun = `PetsFlow/${latestRun(ds, "PetsFlow").runId}`;
}, 120_000);

const expected = (where: string) => ({
  pets: ["dogs", "cats", "budgies", "lions", "wolves", "elephants"],
  run: petsRun,
  namespace: "user:alice",
  datastore: ds,
  where,
});

describe("the client inside a task", () => {
  it("reads the run's --datastore and knows current.namespace and current.datastore", async () => {
    const r = await tsflow(["run", fixture("reader.ts"), "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    const seen = JSON.parse(/seen (.*)/.exec(r.stdout)![1]!);
    expect(seen).toEqual(expected("process"));
  });

  it.skipIf(dockerUnavailable())(`reads the run's datastore from a container too${dockerUnavailable() ? ` (skipped: ${dockerUnavailable()})` : ""}`, async () => {
    const r = await tsflow(["run", fixture("reader.ts"), "--flow", "DockerReaderFlow", "--datastore", ds]);
    expect(r.code, r.stderr).toBe(0);
    const seen = JSON.parse(/seen (.*)/.exec(r.stdout)![1]!);
    expect(seen).toEqual(expected("docker"));
  });
});
