/**
 * One path for every run (issue #12): the same flows give the same results through `tsflow run`,
 * `runFlow` and `startFlow`, and failed runs resume the same through `tsflow resume` and
 * `resumeFlow` — a @docker step (real dockerd), a @cached step, a flow on a datastore plugin
 * loaded from a file.
 */
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import nodeHost from "../../plugins/host/node.ts";
import { type FinishedRun, type RunEvent, resumeFlow, runFlow, startFlow } from "../../runner/run.ts";
import { openDatastore } from "../../runner/stores.ts";
import { cli, fixture, ROOT, STACK_LINE, tempStore } from "../_helpers.ts";
import { dockerUnavailable, NODE_IMAGE } from "../executors/_docker.ts";
import memoryDatastore from "../../plugins/datastores/memory.ts";

const PLUGIN = `${ROOT}/examples/plugins/flat-store.ts`;
const noDocker = dockerUnavailable();

/** Runs `file` to its end one way; resolves with the run's id. */
type Way = (file: string, o: { datastore: string; params?: Record<string, string>; env?: Record<string, string> }) => Promise<string>;

/** Sets environment variables for an in-process run (its workers inherit them), restoring them after. */
async function withEnv<T>(env: Record<string, string> | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env ?? {}).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/**
 * The flow class of `file`, imported by vitest. Library callers under tsx or the published bundle
 * may pass the file itself; inside vitest a flow imported natively could not share vitest's copy
 * of tsflow, so the class (with its file, for the workers) is what the tests pass.
 */
async function flowOf(file: string): Promise<{ cls: Function; file: string }> {
  const abs = resolve(ROOT, file);
  return { cls: ((await import(abs)) as { default: Function }).default, file: abs };
}

const ways: Record<string, Way> = {
  "tsflow run": async (file, o) => {
    const args = Object.entries(o.params ?? {}).flatMap(([k, v]) => [`--${k}`, v]);
    const r = await cli(["run", file, "--datastore", o.datastore, ...args], { env: o.env, timeoutMs: 120_000 });
    expect(r.stderr).not.toMatch(STACK_LINE);
    return /Run \w+\/(\S+) (succeeded|failed)/.exec(r.stdout + r.stderr)![1]!;
  },
  runFlow: async (file, o) => {
    const f = await flowOf(file);
    return withEnv(o.env, async () => (await runFlow(f.cls, { file: f.file, datastore: o.datastore, params: o.params })).id);
  },
  startFlow: async (file, o) => {
    const f = await flowOf(file);
    return withEnv(o.env, async () => {
      const handle = startFlow(f.cls, { file: f.file, datastore: o.datastore, params: o.params });
      expect(handle.status).toBe("starting");
      const events: RunEvent[] = [];
      for await (const e of handle) events.push(e);
      const run = await handle.wait();
      expect(handle.runId).toBe(run.id);
      expect(handle.status).toBe(run.successful ? "succeeded" : "failed");
      expect(events[0]).toMatchObject({ type: "run-started", runId: run.id });
      expect(events.at(-1)).toMatchObject({ type: "run-finished", runId: run.id, successful: run.successful });
      expect(events.filter((e) => e.type === "task-finished").length).toBeGreaterThan(0);
      return run.id;
    });
  },
};

async function readRun(datastore: string, flow: string, id: string) {
  const client = createClient(await openDatastore(datastore), nodeHost());
  return client.Flow.get(flow).run(id);
}

interface Case {
  name: string;
  file: string;
  flow: string;
  datastore?: (dir: string) => string;
  params?: Record<string, string>;
  env?: Record<string, string>;
  skip?: string;
  /** What every way must agree on. */
  result: (datastore: string, id: string) => Promise<unknown>;
  expected: unknown;
}

const cases: Case[] = [
  {
    name: "a @docker step runs in a container, the others in processes",
    file: "test/executors/fixtures/mixed.ts",
    flow: "MixedFlow",
    env: { TSFLOW_NODE_IMAGE: NODE_IMAGE },
    skip: noDocker,
    async result(ds, id) {
      const run = await readRun(ds, "MixedFlow", id);
      const ns = (await (await run.step("boxed").onlyTask()).data("namespaces")) as string[];
      return { ok: run.successful, boxedInContainer: ns[0] !== ns[1] };
    },
    expected: { ok: true, boxedInContainer: true },
  },
  {
    name: "a @cached step is reused by the next run with the same inputs",
    file: fixture("cached-step.ts"),
    flow: "CachedStepFlow",
    params: { n: "3" },
    async result(ds, id) {
      const run = await readRun(ds, "CachedStepFlow", id);
      const square = await run.step("square").onlyTask();
      return { ok: run.successful, squared: await run.data("squared"), cached: Boolean(square.clonedFrom) };
    },
    // The first run of each way computes; `runTwice` below checks the second one is cached.
    expected: { ok: true, squared: 16, cached: false },
  },
  {
    name: "a flow on a datastore plugin loaded from a file, on process workers",
    file: "examples/foreach.ts",
    flow: "ForeachFlow",
    datastore: (dir) => `${PLUGIN}:dir=${dir}`,
    params: { n: "5" },
    async result(ds, id) {
      const run = await readRun(ds, "ForeachFlow", id);
      return { ok: run.successful, total: await run.data("total"), store: run.doc.datastore };
    },
    expected: { ok: true, total: 30, store: expect.stringMatching(/^flat:\/\//) },
  },
];

describe.each(cases)("$name", (c) => {
  for (const [way, run] of Object.entries(ways)) {
    it.skipIf(Boolean(c.skip))(`through ${way}${c.skip ? ` (skipped: ${c.skip})` : ""}`, async () => {
      const dir = tempStore();
      const datastore = c.datastore?.(dir) ?? dir;
      const id = await run(c.file, { datastore, params: c.params, env: c.env });
      expect(await c.result(datastore, id)).toEqual(c.expected);
      if (c.flow === "CachedStepFlow") {
        const again = await run(c.file, { datastore, params: c.params, env: c.env });
        expect(await c.result(datastore, again)).toEqual({ ...(c.expected as object), cached: true });
      }
    });
  }
});

describe("failures resume the same through tsflow resume and resumeFlow", () => {
  const FAIL = { TSFLOW_TEST_FAIL_JOIN: "1" };
  const resumes: Record<string, (datastore: string, origin: string) => Promise<string>> = {
    "tsflow resume": async (datastore, origin) => {
      const r = await cli(["resume", fixture("resume-foreach.ts"), "--origin-run-id", origin, "--datastore", datastore], { env: { TSFLOW_TEST_FAIL_JOIN: "" }, timeoutMs: 120_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/Cloned 5 tasks .*\(start ×1, body ×4\); re-ran from 'join'/);
      return /Run \w+\/(\S+) succeeded/.exec(r.stdout)![1]!;
    },
    resumeFlow: async (datastore, origin) => {
      const f = await flowOf(fixture("resume-foreach.ts"));
      const run: FinishedRun = await resumeFlow(f.cls, { file: f.file, datastore, originRunId: origin });
      expect(Object.fromEntries(run.cloned!)).toEqual({ start: 1, body: 4 });
      return run.id;
    },
  };
  // Each way fails once; the two resumes alternate (test/cli/resume.test.ts has run → resume).
  const pairs: [string, string][] = [
    ["tsflow run", "resumeFlow"],
    ["runFlow", "tsflow resume"],
    ["startFlow", "resumeFlow"],
  ];
  for (const [way, resumeWay] of pairs) {
    const run = ways[way]!;
    const resume = resumes[resumeWay]!;
      it(`a run failed through ${way}, resumed through ${resumeWay}`, async () => {
        const ds = tempStore();
        const failed = await run(fixture("resume-foreach.ts"), { datastore: ds, env: FAIL });
        const origin = await readRun(ds, "ResumeForeachFlow", failed);
        expect(origin.successful).toBe(false);
        expect(origin.error).toMatchObject({ message: "join failed on purpose", pathspec: expect.stringMatching(/\/join\//) });
        const id = await resume(ds, failed);
        const resumed = await readRun(ds, "ResumeForeachFlow", id);
        expect(resumed.successful).toBe(true);
        expect(resumed.originRunId).toBe(failed);
        expect(await resumed.data("total")).toBe(0 + 1 + 4 + 9);
      });
  }
});

describe("startFlow's handle", () => {
  it("streams the tasks' output as lines and stops the run on abort()", async () => {
    const ds = tempStore();
    const f = await flowOf(fixture("slow-foreach.ts"));
    const handle = startFlow(f.cls, { file: f.file, datastore: ds, maxWorkers: 2 });
    const id = await handle.started;
    expect(handle.runId).toBe(id);
    expect(handle.status).toBe("running");
    const seen: RunEvent[] = [];
    for await (const e of handle) {
      seen.push(e);
      if (e.type === "task-started" && e.step === "work") handle.abort();
    }
    const run = await handle.wait();
    expect(run.successful).toBe(false);
    expect(run.error?.type).toBe("Cancelled");
    expect(handle.status).toBe("failed");
  });

  it("gives each task's output as log lines", async () => {
    const ds = tempStore();
    const f = await flowOf(fixture("cached-step.ts"));
    const handle = startFlow(f.cls, { file: f.file, datastore: ds, params: { n: 5 } });
    const lines: string[] = [];
    for await (const e of handle) if (e.type === "log") lines.push(`${e.step} ${e.stream} ${e.line}`);
    expect((await handle.wait()).successful).toBe(true);
    expect(lines).toContain("square stdout computing square of 6");
    expect(lines).toContain("end stdout squared 36");
  });

  it("rejects wait() and started when the run cannot start, with the clear error", async () => {
    const f = await flowOf(fixture("cached-step.ts"));
    const handle = startFlow(f.cls, { file: f.file, datastore: tempStore(), params: { n: "x" } });
    await expect(handle.started).rejects.toThrow(/option --n must be a number, got 'x'/);
    await expect(handle.wait()).rejects.toThrow(/option --n must be a number/);
    expect(handle.status).toBe("failed");
  });
});

describe("datastores that live in this process", () => {
  it("are refused for out-of-process executors with a clear message, and work inline", async () => {
    const { default: HelloFlow } = await import("../../examples/hello.ts");
    const store = memoryDatastore();
    await expect(runFlow(HelloFlow, { datastore: store, executor: "process" })).rejects.toThrow(
      /datastore memory:\/\/\d+ \(memory\) lives in this process only, so step 'start' on the process executor cannot reach it/,
    );
    const run = await runFlow(HelloFlow, { datastore: store, executor: "inline" });
    expect(run.successful).toBe(true);
  });
});
