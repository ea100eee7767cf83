/**
 * A join's inputs stay small per input (issue 17.1: a foreach of 100,000 items): references that
 * many inputs share are held once, and an entry loads an artifact only when it is read, once.
 * The entries behave as before: read-only, enumerable artifacts, private names left out, each
 * also reachable by its step's name.
 */
import { describe, expect, it } from "vitest";
import { putJson } from "../../core/_datastore.ts";
import { buildJoinInputs, joinInputOf, readJoinInputs } from "../../core/_inputs.ts";
import { doneKey } from "../../core/_layout.ts";
import { isTsflowError } from "../../core/errors.ts";
import type { ArtifactRef } from "../../core/types.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { tempStore } from "../_helpers.ts";

const ref = (hash: string, size = 10): ArtifactRef => ({ hash: hash.repeat(64).slice(0, 64), size, type: "number" });

describe("a join's inputs", () => {
  it("share names and equal references between inputs, and load each artifact once, when read", async () => {
    const store = fsDatastore({ root: tempStore() });
    const parents = ["r1/body/2", "r1/body/3", "r1/body/4"];
    await Promise.all(
      parents.map((p, i) =>
        putJson(store, doneKey("F", "r1", "body", p.split("/")[2]!), { ok: true, artifacts: { items: ref("a"), square: ref(String(i + 1)), _private: ref("b") }, next: ["join"], attempt: 0 }),
      ),
    );
    const inputs = await readJoinInputs(store, "F", parents);
    expect(inputs.map((i) => i.source)).toEqual(parents);
    // The shared list is one object in every input, as are the names; the own values are not.
    expect(inputs[1]!.refs[0]).toBe(inputs[0]!.refs[0]);
    expect(inputs[2]!.names).toBe(inputs[0]!.names);
    expect(inputs[1]!.refs[1]).not.toBe(inputs[0]!.refs[1]);

    const loads: string[] = [];
    const list = buildJoinInputs(inputs, (source, name, r) => {
      loads.push(`${source}:${name}`);
      return { value: r.hash.slice(0, 1) };
    }) as readonly Record<string, { value: string }>[];
    expect(loads).toEqual([]);
    expect(list.length).toBe(3);
    expect(Object.keys(list[0]!)).toEqual(["items", "square"]);
    expect([...list].map((e) => e.square!.value)).toEqual(["1", "2", "3"]);
    expect(list[1]!.square).toBe(list[1]!.square);
    expect(loads).toEqual(["r1/body/2:square", "r1/body/3:square", "r1/body/4:square"]);
    expect((list as unknown as Record<string, unknown>).body).toBe(list[0]);
    expect(joinInputOf(list[2])).toBe(inputs[2]);
    expect(Object.isFrozen(list)).toBe(true);
    let error: unknown;
    try {
      (list[0] as Record<string, unknown>).square = 1;
    } catch (e) {
      error = e;
    }
    expect(isTsflowError(error) && (error as Error).message).toMatch(/inputs are read-only: cannot assign 'square' of input r1\/body\/2/);
  });

  it("a parent without a success marker is named", async () => {
    const store = fsDatastore({ root: tempStore() });
    await expect(readJoinInputs(store, "F", ["r1/body/9"])).rejects.toThrow(/parent task F\/r1\/body\/9 has no success marker/);
  });
});
