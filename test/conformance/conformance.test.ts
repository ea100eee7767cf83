/**
 * Metaflow's core test suite, ported (issue #11 acceptance): every translated test of
 * tests.ts on every graph of graphs.ts it applies to, generated as a tsflow flow, run with the
 * public Runner API (`runFlow`, `resumeFlow`) and checked with the public client. Runs use the
 * inline executor (tasks in this process) to keep the table at about a minute; a sample runs
 * through the real CLI with warm worker processes too. The table (test × graph → pass) is
 * printed; a case that fails must be in KNOWN with its reason, and a KNOWN case that starts to
 * pass fails the suite until it is taken off the list.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Run, resumeFlow, runFlow } from "tsflow";
import { afterAll, describe, expect, it } from "vitest";
import { cli, tempStore } from "../_helpers.ts";
import { GRAPHS, type GraphNode } from "./graphs.ts";
import { type Checker, type ConformanceTest, formatFlow } from "./_harness.ts";
import { TESTS } from "./tests.ts";

/** Cases that fail on purpose or by a known, reported difference: `test × graph` → why. */
const KNOWN: Record<string, string> = {};

const TAGS = ["\u523a\u8eab means sashimi", "multiple tags should be ok"];
const LIB = fileURLToPath(new URL("./_flowlib.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "tsflow-conformance-"));
const ds = tempStore();

interface Case {
  test: ConformanceTest;
  graph: string;
  className: string;
  file: string;
}

const cases: Case[] = [];
const notApplicable: { test: string; graph: string; why: string }[] = [];
for (const test of TESTS) {
  const classes: string[] = [];
  for (const [graph, nodes] of Object.entries(GRAPHS)) {
    const className = `${test.name.replace(/(^|_)(\w)/g, (_, __, c: string) => c.toUpperCase())}_${graph.replace(/\W/g, "_")}`;
    const out = formatFlow(test, graph, nodes, className);
    if ("invalid" in out) {
      notApplicable.push({ test: test.name, graph, why: out.invalid });
      continue;
    }
    classes.push(out.source);
    cases.push({ test, graph, className, file: join(dir, `${test.name}.ts`) });
  }
  if (classes.length === 0) continue;
  for (const [name, text] of Object.entries(test.files ?? {})) writeFileSync(join(dir, name), text);
  writeFileSync(
    join(dir, `${test.name}.ts`),
    [
      `import { catchError, current, FlowSpec, getNamespace, IncludeFile, Parameter, retry, step, timeout } from "tsflow";`,
      `import { assertEquals, assertException, has, isResumed, ResumeFromHere, TestRetry } from ${JSON.stringify(LIB)};`,
      `const DIR = ${JSON.stringify(dir)};`,
      "void [catchError, current, getNamespace, IncludeFile, Parameter, retry, timeout, DIR, assertEquals, assertException, has, isResumed, ResumeFromHere, TestRetry];",
      ...classes,
      "",
    ].join("\n"),
  );
}

function checker(run: Run, graph: Record<string, GraphNode>, logsCaptured: boolean): Checker {
  const tasks = async (step: string) => await run.step(step).tasks();
  const artifacts = async (step: string, name: string) => {
    const ts = await tasks(step);
    if (ts.length === 0) throw new Error(`step ${step} has no tasks`);
    return Promise.all(ts.map((t) => t.data(name as never) as Promise<unknown>));
  };
  return {
    run,
    graph,
    steps: Object.keys(graph),
    logsCaptured,
    tasks,
    artifacts,
    async assertArtifact(step, name, value) {
      for (const v of await artifacts(step, name)) {
        if (JSON.stringify(v) !== JSON.stringify(value)) throw new Error(`artifact ${step}.${name} is ${JSON.stringify(v)}, expected ${JSON.stringify(value)}`);
      }
    },
    async logs(step, stream) {
      return Promise.all((await tasks(step)).map((t) => (stream === "stdout" ? t.stdout() : t.stderr())));
    },
  };
}

/** Parameter values may name files next to the generated flows as `$DIR/…`. */
const withDir = (params: Record<string, unknown> | undefined) => params && Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === "string" ? v.replace("$DIR", dir) : v]));

async function runCase(c: Case): Promise<void> {
  const { test } = c;
  const inProcess = test.processOn !== "all" && !test.processOn?.includes(c.graph);
  const options = { exportName: c.className, executor: inProcess ? "inline" : "process", datastore: ds, tags: TAGS, maxNumSplits: test.maxNumSplits, params: withDir(test.params), maxWorkers: 4 }; 
  let run: Run = await runFlow(c.file, options);
  if (test.resume) {
    if (run.successful) throw new Error("the first run succeeded; it should stop at ResumeFromHere");
    run = await resumeFlow(c.file, { ...options, params: undefined, originRunId: run.id, step: test.resumeStep } as never);
  }
  if (test.shouldFail) {
    if (run.successful) throw new Error("the run succeeded; the test expects it to fail");
  } else if (!run.successful) {
    throw new Error(`the run failed: ${run.error?.type}: ${run.error?.message} (in ${run.error?.pathspec})`);
  }
  await test.check(checker(run, GRAPHS[c.graph]!, !inProcess));
}

const results: { test: string; graph: string; ok: boolean; why?: string }[] = [];

describe("Metaflow core tests × graphs", () => {
  for (const c of cases) {
    const key = `${c.test.name} × ${c.graph}`;
    it(key, async () => {
      let error: Error | undefined;
      try {
        await runCase(c);
      } catch (e) {
        error = e as Error;
      }
      results.push({ test: c.test.name, graph: c.graph, ok: !error, why: error?.message.split("\n")[0] });
      if (KNOWN[key]) {
        expect(error, `${key} passes now: take it off KNOWN (${KNOWN[key]})`).toBeDefined();
        return;
      }
      if (error) throw error;
    });
  }

  it("a sample runs the same through the real CLI, with warm worker processes", async () => {
    const store = tempStore();
    for (const c of cases.filter((x) => ["basic_artifact × single-and-branch", "switch_in_foreach × switch_in_foreach"].includes(`${x.test.name} × ${x.graph}`))) {
      const r = await cli(["run", c.file, "--flow", c.className, "--datastore", store, "--tag", TAGS[0]!, "--tag", TAGS[1]!]);
      expect(r.code, `${c.test.name} × ${c.graph}: ${r.stderr}`).toBe(0);
    }
  });
});

afterAll(() => {
  const pass = results.filter((r) => r.ok).length;
  const lines = results.map((r) => `  ${r.ok ? "pass" : "FAIL"}  ${r.test} × ${r.graph}${r.ok ? "" : `: ${r.why}`}`);
  const why = new Map<string, number>();
  for (const n of notApplicable) why.set(n.why, (why.get(n.why) ?? 0) + 1);
  const skipped = [...why].map(([w, n]) => `${n} ${w}`).join("; ");
  process.stdout.write(`\nMetaflow core tests × graphs: ${pass}/${results.length} pass, ${TESTS.length} tests on ${Object.keys(GRAPHS).length} graphs (pairs left out: ${skipped})\n${lines.join("\n")}\n`);
});
