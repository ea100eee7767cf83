/** Parameters: every type, choices, required, bad values, IncludeFile as text and bytes. */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runFlow } from "tsflow";
import { describe, expect, it } from "vitest";
import { ROOT, stepArtifacts, tempStore } from "../_helpers.ts";
import ParamsFlow from "../fixtures/params.ts";

const ds = tempStore();
const run = (params: Record<string, unknown>) => runFlow(ParamsFlow, { datastore: ds, executor: "inline", params });
const seen = async (runId: string, step = "start") => (await stepArtifacts(ds, "ParamsFlow", runId, step))[0]!.seen as Record<string, unknown>;
const notes = readFileSync(join(ROOT, "examples/data/notes.txt"));

describe("parameters", () => {
  it("uses defaults and reads IncludeFile as text and as bytes", async () => {
    const r = await run({ token: "t" });
    expect(r.error).toBeUndefined();
    expect(await seen(r.runId)).toEqual({
      name: "world",
      count: 2,
      flag: false,
      settings: { a: 1 },
      mode: "fast",
      token: "t",
      notes: notes.toString("utf8"),
      blobIsBytes: true,
      blobLength: notes.byteLength,
    });
  });

  it("parses command-line strings into typed values", async () => {
    const file = join(ds, "other.txt");
    writeFileSync(file, "included text");
    const r = await run({ name: "tsflow", count: "42.5", flag: "yes", settings: '{"layers":[4,2]}', mode: "slow", token: "t", notes: file });
    expect(r.error).toBeUndefined();
    const s = await seen(r.runId);
    expect(s).toMatchObject({ name: "tsflow", count: 42.5, flag: true, settings: { layers: [4, 2] }, mode: "slow", notes: "included text" });
    // Parameters are read-only artifacts of every step.
    const end = await seen(r.runId, "end");
    expect(end).toMatchObject({ endCount: 42.5, assignThrew: true });
    // A parameter mutated in place is still passed on as the run's value, not re-stored.
    const runDir = join(ds, "flows", "ParamsFlow", "runs", r.runId);
    const runRefs = JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")).parameters;
    const [endId] = readdirSync(join(runDir, "tasks", "end"));
    const endRefs = JSON.parse(readFileSync(join(runDir, "tasks", "end", endId!, "done.json"), "utf8")).artifacts;
    expect(endRefs.settings).toEqual(runRefs.settings);
  });

  it.each([
    [{}, /option --token is required/],
    [{ token: "t", count: "abc" }, /option --count must be a number, got 'abc'/],
    [{ token: "t", count: "" }, /option --count must be a number/],
    [{ token: "t", flag: "maybe" }, /option --flag must be true or false, got 'maybe'/],
    [{ token: "t", settings: "{bad" }, /option --settings must be JSON/],
    [{ token: "t", mode: "medium" }, /option --mode must be one of "fast", "slow", got "medium"/],
    [{ token: "t", notes: "/no/such/file.txt" }, /option --notes: cannot read file '\/no\/such\/file.txt'/],
    [{ token: "t", nope: "1" }, /has no parameter '--nope'/],
    [{ token: "t", count: true }, /parameter 'count' must be a number, got boolean/],
  ])("rejects %j clearly", async (params, message) => {
    await expect(run(params)).rejects.toThrow(message);
  });
});
