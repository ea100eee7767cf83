/**
 * The local interpreter (test/sfn-server/asl.ts) against an independent ASL engine,
 * @wmfs/statebox, on the semantics both implement: Pass with Parameters and Result, InputPath,
 * ResultPath (null, nested), OutputPath, ResultSelector, payload templates with
 * States.Format/JsonToString/StringToJson/Array, Choice rules (And/Or/Not, string and numeric
 * comparisons, IsPresent, Default), Parallel, Task results and Catch. Statebox knows neither the
 * context object (`$$`) nor ItemProcessor Maps, which tsflow's definitions use, so those are
 * covered by the end-to-end tests (test/sfn) and the unit cases below only.
 */
import Statebox from "@wmfs/statebox";
import { beforeAll, describe, expect, it } from "vitest";
import { type Context, type Json, runMachine, StatesError } from "./asl.ts";

type Machine = Record<string, unknown>;

/** Task resources both engines call: `module:<name>` in statebox, the same function here. */
const TASKS: Record<string, (input: any) => Json> = {
  add: (e) => e.a + e.b,
  echo: (e) => e,
  body: (e) => ({ Body: JSON.stringify({ condition: e.pick, n: 2 }) }),
  boom: () => {
    throw new StatesError("Boom", "it broke");
  },
};

const MACHINES: Record<string, { machine: Machine; inputs: Json[] }> = {
  paths: {
    machine: {
      StartAt: "shape",
      States: {
        shape: { Type: "Pass", InputPath: "$.payload", Parameters: { "x.$": "$.x", fixed: [1, 2], "nested.$": "$.deep.value" }, ResultPath: "$.shaped", Next: "add" },
        add: { Type: "Task", Resource: "add", Parameters: { "a.$": "$.shaped.x", b: 10 }, ResultPath: "$.sum", Next: "drop" },
        drop: { Type: "Pass", Result: { ignored: true }, ResultPath: null, Next: "out" },
        out: { Type: "Pass", OutputPath: "$.sum", End: true },
      },
    },
    inputs: [{ payload: { x: 5, deep: { value: "v" } } }, { payload: { x: -1, deep: { value: [1] } } }],
  },
  intrinsics: {
    machine: {
      StartAt: "format",
      States: {
        format: {
          Type: "Pass",
          Parameters: { "s.$": "States.Format('{}/runs/{}-{}', $.flow, $.run, $.i)", "j.$": "States.JsonToString($.params)", "a.$": "States.Array($.i, 'x', $.flag)" },
          ResultPath: "$.out",
          Next: "back",
        },
        back: { Type: "Pass", Parameters: { "s.$": "$.out.s", "a.$": "$.out.a", "p.$": "States.StringToJson($.out.j)" }, ResultPath: "$.back", End: true },
      },
    },
    inputs: [
      { flow: "F", run: "r1", i: 3, flag: true, params: { alpha: 0.5, mode: "fast" } },
      { flow: "G", run: "r2", i: 0, flag: false, params: {} },
    ],
  },
  switch: {
    machine: {
      StartAt: "read",
      States: {
        read: { Type: "Task", Resource: "body", ResultSelector: { "value.$": "States.StringToJson($.Body)" }, ResultPath: "$.switch", Next: "choose" },
        choose: {
          Type: "Choice",
          Choices: [
            { Variable: "$.switch.value.condition", StringEquals: "left", Next: "left" },
            { Variable: "$.switch.value.condition", StringEquals: "right", Next: "right" },
            { Variable: "$.switch.value.n", NumericGreaterThan: 5, Next: "left" },
          ],
          Default: "other",
        },
        left: { Type: "Pass", Result: "went left", ResultPath: "$.went", End: true },
        right: { Type: "Pass", Result: "went right", ResultPath: "$.went", End: true },
        other: { Type: "Pass", Result: "default", ResultPath: "$.went", End: true },
      },
    },
    inputs: [{ pick: "left" }, { pick: "right" }, { pick: "stop" }],
  },
  parallel: {
    machine: {
      StartAt: "both",
      States: {
        both: {
          Type: "Parallel",
          Branches: [
            { StartAt: "a", States: { a: { Type: "Task", Resource: "add", Parameters: { "a.$": "$.n", b: 1 }, End: true } } },
            { StartAt: "b", States: { b: { Type: "Pass", Parameters: { "twice.$": "States.Array($.n, $.n)" }, ResultPath: "$.b", End: true } } },
          ],
          ResultPath: "$.branches",
          Next: "keep",
        },
        keep: { Type: "Parallel", Branches: [{ StartAt: "c", States: { c: { Type: "Pass", Result: 1, End: true } } }], ResultPath: null, End: true },
      },
    },
    inputs: [{ n: 4 }, { n: 0 }],
  },
};

const CATCH: Machine = {
  StartAt: "fails",
  States: {
    fails: { Type: "Task", Resource: "boom", Catch: [{ ErrorEquals: ["Other"], Next: "wrong" }, { ErrorEquals: ["States.ALL"], ResultPath: "$.caught", Next: "handled" }], Next: "wrong" },
    handled: { Type: "Pass", Parameters: { "error.$": "$.caught.Error", "cause.$": "$.caught.Cause", "kept.$": "$.keep" }, End: true },
    wrong: { Type: "Fail", Error: "Wrong" },
  },
};

let statebox: InstanceType<typeof Statebox>;
beforeAll(async () => {
  statebox = new Statebox({});
  await statebox.ready;
  const modules: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(TASKS)) {
    modules[name] = class {
      run(event: unknown, context: { sendTaskSuccess(v: unknown): void; sendTaskFailure(e: { error: string; cause: string }): void }) {
        try {
          context.sendTaskSuccess(fn(event));
        } catch (e) {
          const err = e as StatesError;
          context.sendTaskFailure({ error: err.error, cause: err.cause });
        }
      }
    };
  }
  statebox.createModuleResources(modules);
  const prefixed = (m: Machine): Machine => JSON.parse(JSON.stringify(m).replace(/"Resource":"(\w+)"/g, '"Resource":"module:$1"'));
  await statebox.createStateMachines(Object.fromEntries(Object.entries(MACHINES).map(([k, v]) => [k, prefixed(v.machine)])), {});
});

const context: Context = { Execution: { Id: "arn:aws:states:us-east-1:1:execution:m:e", Name: "e", Input: {}, StartTime: "" }, StateMachine: { Id: "arn:aws:states:us-east-1:1:stateMachine:m", Name: "m" } };
const ours = (machine: Machine, input: Json) =>
  runMachine(machine as Record<string, Json>, input, context, { task: async (resource, parameters) => TASKS[resource]!(parameters), readItems: async () => [] }, new AbortController().signal);

describe("the local ASL interpreter agrees with @wmfs/statebox", () => {
  for (const [name, { machine, inputs }] of Object.entries(MACHINES)) {
    it(name, async () => {
      for (const input of inputs) {
        const theirs = (await statebox.startExecution(structuredClone(input), name, { sendResponse: "COMPLETE" })) as { status: string; ctx: Json };
        expect(theirs.status, `statebox on ${JSON.stringify(input)}`).toBe("SUCCEEDED");
        expect(await ours(machine, structuredClone(input)), JSON.stringify(input)).toEqual(theirs.ctx);
      }
    });
  }
});

/**
 * Where statebox departs from the ASL specification, so only this interpreter is checked:
 * statebox merges a Pass state's Parameters into its input when no ResultPath is given (the spec
 * replaces the input), leaves the caught error's Error and Cause null in a Catch's ResultPath, and
 * fails on And/Not rules.
 */
describe("what statebox cannot check", () => {
  it("Pass replaces its input, Catch records Error and Cause, compound Choice rules", async () => {
    expect(await ours({ StartAt: "p", States: { p: { Type: "Pass", Parameters: { "x.$": "$.a" }, End: true } } }, { a: 1, b: 2 })).toEqual({ x: 1 });
    expect(await ours(CATCH, { keep: "me" })).toEqual({ error: "Boom", cause: "it broke", kept: "me" });
    const rule = { And: [{ Variable: "$.n", NumericGreaterThan: 1 }, { Not: { Variable: "$.s", StringEquals: "stop" } }, { Or: [{ Variable: "$.gone", IsPresent: false }, { Variable: "$.n", NumericEquals: 0 }] }], Next: "yes" };
    const choose = { StartAt: "c", States: { c: { Type: "Choice", Choices: [rule], Default: "no" }, yes: { Type: "Pass", Result: "yes", End: true }, no: { Type: "Pass", Result: "no", End: true } } };
    expect(await ours(choose, { n: 2, s: "go" })).toBe("yes");
    expect(await ours(choose, { n: 2, s: "stop" })).toBe("no");
    expect(await ours(choose, { n: 2, s: "go", gone: 1 })).toBe("no");
  });

  it("context object, Map with ItemSelector, Retry counts, intrinsic failures", async () => {
    const seen: Json[] = [];
    let calls = 0;
    const machine = {
      StartAt: "map",
      States: {
        map: {
          Type: "Map",
          ItemsPath: "$.items",
          MaxConcurrency: 2,
          ItemSelector: { "run.$": "$$.Execution.Name", "path.$": "States.Format('{}-{}', $.path, $$.Map.Item.Value)", "index.$": "$$.Map.Item.Index" },
          ItemProcessor: { ProcessorConfig: { Mode: "INLINE" }, StartAt: "t", States: { t: { Type: "Task", Resource: "flaky", Parameters: { "p.$": "$.path", "try.$": "$$.State.RetryCount" }, Retry: [{ ErrorEquals: ["States.ALL"], MaxAttempts: 2, IntervalSeconds: 1, BackoffRate: 1 }], End: true } } },
          ResultPath: "$.results",
          End: true,
        },
      },
    };
    const out = await runMachine(
      machine as Record<string, Json>,
      { items: ["a", "b"], path: "-7" },
      context,
      {
        delayMs: () => 0,
        readItems: async () => [],
        task: async (_r, p) => {
          seen.push(p);
          if (++calls % 2 === 1) throw new StatesError("States.TaskFailed", "flaky");
          return p;
        },
      },
      new AbortController().signal,
    );
    expect((out as { results: { p: string }[] }).results.map((r) => r.p)).toEqual(["-7-a", "-7-b"]);
    expect(seen).toContainEqual({ p: "-7-a", try: 1 });
    await expect(ours({ StartAt: "f", States: { f: { Type: "Pass", Parameters: { "x.$": "States.Format('{} {}', $.a)" }, End: true } } }, { a: 1 })).rejects.toMatchObject({ error: "States.IntrinsicFailure" });
    await expect(ours({ StartAt: "c", States: { c: { Type: "Choice", Choices: [{ Variable: "$.a", StringEquals: "x", Next: "c" }] } } }, { a: "y" })).rejects.toMatchObject({ error: "States.NoChoiceMatched" });
  });
});
