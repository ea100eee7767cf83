// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step bodies are the source text of generated flows
/**
 * A representative part of Metaflow's core tests (Netflix/metaflow, test/core/tests/*.py),
 * translated step by step: same priorities, qualifiers, skipped/only graphs and checks. Where
 * a Metaflow API has no tsflow counterpart the translation says so in a comment.
 */
import { assertEquals } from "./_flowlib.ts";
import { type ConformanceTest, SWITCH_GRAPHS } from "./_harness.ts";

const ARR = [26, 5, 10, 15, 25, 11, 22, 6, 19, 12, 16, 9, 28, 14, 24, 20, 30, 1, 13, 18, 2, 17, 21, 3, 29, 4, 27, 31, 8, 23, 0, 7];
const all = (body = "") => ({ prio: 9, quals: ["all"], body });

export const TESTS: ConformanceTest[] = [
  {
    name: "basic_artifact",
    priority: 0,
    skipGraphs: SWITCH_GRAPHS,
    steps: [
      { prio: 0, quals: ["start"], body: `self.data = "abc";` },
      { prio: 1, quals: ["join"], body: `const inputset = new Set([...inputs].map((i: any) => i.data)); assertEquals(["abc"], [...inputset]); self.data = [...inputset][0];` },
      { prio: 2, quals: ["all"], body: "" },
    ],
    async check(c) {
      for (const s of c.steps) await c.assertArtifact(s, "data", "abc");
    },
  },
  {
    name: "basic_foreach",
    priority: 0,
    skipGraphs: SWITCH_GRAPHS,
    steps: [
      { prio: 0, quals: ["foreach-split"], required: true, body: `self.my_index = null; self.arr = ${JSON.stringify(ARR)};` },
      { prio: 0, quals: ["foreach-inner"], required: true, body: `if (self.my_index === null) self.my_index = self.index; assertEquals(self.my_index, self.index); assertEquals(self.input, self.arr[self.index]); self.my_input = self.input;` },
      { prio: 0, quals: ["foreach-join"], required: true, body: `assertEquals(${JSON.stringify(ARR)}, [...inputs].map((i: any) => i.my_input));` },
      { prio: 1, quals: ["all"], body: "" },
    ],
    async check() {},
  },
  {
    name: "basic_log",
    priority: 0,
    processOn: "all",
    skipGraphs: SWITCH_GRAPHS,
    steps: [
      {
        prio: 0,
        quals: ["singleton"],
        required: true,
        body: `process.stdout.write("stdout: A regular message.\\n"); process.stdout.write("stdout: A message with unicode: \\u5e74\\n"); process.stderr.write("stderr: A regular message.\\n"); process.stderr.write("stderr: A message with unicode: \\u5e74\\n");`,
      },
      all(),
    ],
    async check(c) {
      for (const s of c.steps.filter((s) => s !== "start" && s !== "end")) {
        for (const l of await c.logs(s, "stdout")) if (!l.includes("stdout: A regular message.\nstdout: A message with unicode: \u5e74\n")) throw new Error(`stdout of ${s}: ${JSON.stringify(l)}`);
        for (const l of await c.logs(s, "stderr")) if (!l.includes("stderr: A regular message.\nstderr: A message with unicode: \u5e74\n")) throw new Error(`stderr of ${s}: ${JSON.stringify(l)}`);
      }
    },
  },
  {
    name: "basic_parameters",
    priority: 1,
    skipGraphs: SWITCH_GRAPHS,
    // Metaflow reads no_default_param and bool_param from METAFLOW_RUN_* variables; tsflow's
    // parameters come from the command line or runFlow's params. list_param (separator=",")
    // has no tsflow counterpart: a json parameter carries lists.
    fields: {
      no_default_param: `Parameter("no_default_param", { type: "string" })`,
      bool_param: `Parameter("bool_param", { default: true })`,
      bool_true_param: `Parameter("bool_true_param", { default: true })`,
      int_param: `Parameter("int_param", { default: 123 })`,
      str_param: `Parameter("str_param", { default: "foobar" })`,
      json_param: `Parameter("json_param", { type: "json", default: '{"a": [1,2,3]}' })`,
    },
    params: { no_default_param: "test_str", bool_param: "False" },
    steps: [
      {
        prio: 0,
        quals: ["all"],
        body: `assertEquals("test_str", self.no_default_param); assertEquals(false, self.bool_param); assertEquals(true, self.bool_true_param); assertEquals(123, self.int_param); assertEquals("foobar", self.str_param); assertEquals({ a: [1, 2, 3] }, self.json_param);
        assertException(() => { self.int_param = 5; }, /read-only/);`,
      },
    ],
    async check(c) {
      for (const s of c.steps) {
        await c.assertArtifact(s, "no_default_param", "test_str");
        await c.assertArtifact(s, "bool_param", false);
        await c.assertArtifact(s, "int_param", 123);
        await c.assertArtifact(s, "json_param", { a: [1, 2, 3] });
      }
    },
  },
  {
    name: "merge_artifacts",
    priority: 1,
    skipGraphs: SWITCH_GRAPHS,
    steps: [
      { prio: 0, quals: ["start"], body: `self.non_modified_passdown = "a"; self.modified_to_same_value = "b"; self.manual_merge_required = "c"; self.ignore_me = "d";` },
      { prio: 2, quals: ["linear"], body: `self.manual_merge_required = current.taskId; self.ignore_me = current.taskId; self.modified_to_same_value = "e"; assertEquals(self.non_modified_passdown, "a");` },
      {
        prio: 0,
        quals: ["join"],
        required: true,
        body: `assertException(() => self.mergeArtifacts(inputs), /manual_merge_required|different values/);
        if (has(self, "non_modified_passdown") || has(self, "manual_merge_required")) throw new Error("a failed merge set something");
        assertException(() => self.mergeArtifacts(inputs, { exclude: ["ignore_me"], include: ["non_modified_passdown"] }), /include or exclude/);
        if (has(self, "non_modified_passdown") || has(self, "manual_merge_required")) throw new Error("a failed merge set something");
        self.manual_merge_required = current.taskId;
        self.mergeArtifacts(inputs, { exclude: ["ignore_me"] });
        assertEquals(self.non_modified_passdown, "a"); assertEquals(self.modified_to_same_value, "e"); assertEquals(self.manual_merge_required, current.taskId);
        if (has(self, "ignore_me")) throw new Error("ignore_me was merged");`,
      },
      { prio: 0, quals: ["end"], body: `assertException(() => self.mergeArtifacts([]), /join|inputs/); assertEquals(self.non_modified_passdown, "a"); assertEquals(self.modified_to_same_value, "e"); if (!has(self, "manual_merge_required")) throw new Error("manual_merge_required is missing");` },
      { prio: 3, quals: ["all"], body: `assertEquals(self.non_modified_passdown, "a");` },
    ],
    async check() {},
  },
  {
    name: "merge_artifacts_include",
    priority: 1,
    skipGraphs: SWITCH_GRAPHS,
    steps: [
      { prio: 0, quals: ["start"], body: `self.non_modified_passdown = "a"; self.modified_to_same_value = "b"; self.manual_merge_required = "c"; self.ignore_me = "d";` },
      { prio: 2, quals: ["linear"], body: `self.manual_merge_required = current.taskId; self.ignore_me = current.taskId; self.modified_to_same_value = "e"; assertEquals(self.non_modified_passdown, "a");` },
      {
        prio: 0,
        quals: ["join"],
        required: true,
        body: `self.manual_merge_required = current.taskId;
        assertException(() => self.mergeArtifacts(inputs, { include: ["manual_merge_required", "foobar"] }), /foobar/);
        if (has(self, "non_modified_passdown")) throw new Error("a failed merge set something");
        self.mergeArtifacts(inputs, { include: ["non_modified_passdown"] });
        assertEquals(self.non_modified_passdown, "a"); assertEquals(self.manual_merge_required, current.taskId);
        if (has(self, "ignore_me") || has(self, "modified_to_same_value")) throw new Error("include merged more than it named");`,
      },
      { prio: 0, quals: ["end"], body: `assertEquals(self.non_modified_passdown, "a"); if (!has(self, "manual_merge_required")) throw new Error("manual_merge_required is missing");` },
      { prio: 3, quals: ["all"], body: `assertEquals(self.non_modified_passdown, "a");` },
    ],
    async check() {},
  },
  {
    name: "merge_artifacts_propagation",
    priority: 1,
    skipGraphs: SWITCH_GRAPHS,
    steps: [
      { prio: 0, quals: ["start"], body: `self.non_modified_passdown = "a";` },
      { prio: 0, quals: ["foreach-inner-small"], required: true, body: "self[`var${self.index}`] = self.index;" },
      { prio: 0, quals: ["foreach-join-small"], required: true, body: "self.mergeArtifacts(inputs); assertEquals(self.non_modified_passdown, \"a\"); [...inputs].forEach((_: unknown, i: number) => assertEquals(self[`var${i}`], i));" },
      { prio: 1, quals: ["all"], body: `assertEquals(self.non_modified_passdown, "a");` },
    ],
    async check() {},
  },
  {
    name: "nested_foreach",
    priority: 1,
    skipGraphs: SWITCH_GRAPHS,
    // tsflow has no foreach_stack(): each split records the item it runs for, so the inner
    // step knows the whole path (x, y, z) as Metaflow's foreach_stack() gives it.
    steps: [
      { prio: 0, quals: ["foreach-nested-inner"], required: true, body: `assertEquals(self.z.length, 6); assertEquals(self.input, self.z[self.index]); self.combo = self.prefix + self.input;` },
      { prio: 0, quals: ["foreach-split"], body: `self.prefix = (self.index === undefined ? "" : (self.prefix ?? "") + self.input);` },
      all(),
    ],
    async check(c) {
      const got = ((await c.artifacts("foreach_inner", "combo")) as string[]).sort();
      const expected: string[] = [];
      for (const x of "abc") for (const y of "de") for (const z of "fghijk") expected.push(x + y + z);
      assertEquals(expected.sort(), got);
    },
  },
  {
    name: "wide_foreach",
    priority: 3,
    skipGraphs: SWITCH_GRAPHS,
    maxNumSplits: 1200,
    steps: [
      { prio: 0, quals: ["foreach-split-small"], required: true, body: `self.my_index = null; self.arr = Array.from({ length: 1200 }, (_, i) => i);` },
      { prio: 0, quals: ["foreach-inner-small"], required: true, body: `self.my_input = self.input;` },
      { prio: 0, quals: ["foreach-join-small"], required: true, body: `assertEquals(Array.from({ length: 1200 }, (_, i) => i), [...inputs].map((i: any) => i.my_input));` },
      all(),
    ],
    async check(c) {
      const got = ((await c.artifacts("foreach_inner", "my_input")) as number[]).sort((a, b) => a - b);
      assertEquals(
        Array.from({ length: 1200 }, (_, i) => i),
        got,
      );
    },
  },
  {
    name: "lineage",
    priority: 1,
    skipGraphs: SWITCH_GRAPHS,
    steps: [
      { prio: 0, quals: ["start"], body: `self.lineage = [current.stepName];` },
      { prio: 1, quals: ["join"], body: `const seen = new Map([...inputs].map((i: any) => [JSON.stringify(i.lineage), i.lineage])); self.lineage = [[...seen.keys()].sort().map((k) => seen.get(k)), current.stepName];` },
      { prio: 2, quals: ["all"], body: `self.lineage = [...self.lineage, current.stepName];` },
    ],
    async check(c) {
      // The lineage every step should have, by walking the graph as Metaflow's check does.
      const joinSets = new Map<string, Map<string, unknown[]>>();
      const lineages: Record<string, unknown[]> = {};
      const inFuncs = (s: string) => Object.entries(c.graph).filter(([, n]) => [n.linear, ...(n.branch ?? []), n.foreach].includes(s)).length;
      const traverse = (s: string, lineage: unknown[]) => {
        const node = c.graph[s]!;
        if (node.join) {
          const set = joinSets.get(s) ?? new Map();
          joinSets.set(s, set);
          set.set(JSON.stringify(lineage), lineage);
          if (set.size < inFuncs(s)) return;
          lineage = [[...set.keys()].sort().map((k) => set.get(k))];
        }
        lineages[s] = [...lineage, s];
        for (const n of [node.linear, ...(node.branch ?? []), node.foreach].filter(Boolean) as string[]) traverse(n, [...lineage, s]);
      };
      traverse("start", []);
      for (const s of c.steps) await c.assertArtifact(s, "lineage", lineages[s]);
    },
  },
  {
    name: "current_singleton",
    priority: 1,
    skipGraphs: SWITCH_GRAPHS,
    // @project, current.task/current.run objects have no tsflow counterpart (@project is a
    // production feature here); the rest of current is checked as Metaflow does.
    steps: [
      {
        prio: 0,
        quals: ["start"],
        body: `self.flow_names = [current.flowName]; self.run_ids = [current.runId]; self.origin_run_ids = [current.originRunId ?? null]; self.seen_steps = [current.stepName]; self.step_name = current.stepName; self.namespaces = [current.namespace]; self.usernames = [current.username]; self.uuid = crypto.randomUUID(); self.task_data = { [current.pathspec]: self.uuid }; self.tags = [...current.tags];`,
      },
      {
        prio: 1,
        quals: ["join"],
        body: `const u = (k: string) => [...new Set([...inputs].flatMap((i: any) => i[k]))];
        self.flow_names = [...new Set([...u("flow_names"), current.flowName])]; self.run_ids = [...new Set([...u("run_ids"), current.runId])]; self.origin_run_ids = [...new Set([...u("origin_run_ids"), current.originRunId ?? null])];
        self.seen_steps = [...new Set([...u("seen_steps"), current.stepName])]; self.namespaces = [...new Set([...u("namespaces"), current.namespace])]; self.usernames = [...new Set([...u("usernames"), current.username])];
        self.task_data = Object.assign({}, ...[...inputs].map((i: any) => i.task_data)); self.tags = [...new Set([...u("tags"), ...current.tags])];
        self.step_name = current.stepName; self.uuid = crypto.randomUUID(); self.task_data[current.pathspec] = self.uuid;`,
      },
      {
        prio: 2,
        quals: ["all"],
        body: `const add = (k: string, v: unknown) => { self[k] = [...new Set([...self[k], v])]; };
        add("flow_names", current.flowName); add("run_ids", current.runId); add("origin_run_ids", current.originRunId ?? null); add("namespaces", current.namespace); add("usernames", current.username); add("seen_steps", current.stepName);
        self.step_name = current.stepName; self.uuid = crypto.randomUUID(); self.task_data = { ...self.task_data, [current.pathspec]: self.uuid }; self.tags = [...new Set([...self.tags, ...current.tags])];`,
      },
    ],
    async check(c) {
      const end = (await c.tasks("end"))[0]!;
      const data = (k: string) => end.data(k as never) as Promise<unknown>;
      const taskData = (await data("task_data")) as Record<string, string>;
      for (const s of c.steps) {
        for (const t of await c.tasks(s)) {
          assertEquals(s, await t.data("step_name" as never));
          assertEquals(taskData[t.pathspec], await t.data("uuid" as never));
        }
      }
      assertEquals([c.run.flow], await data("flow_names"));
      assertEquals([c.run.id], await data("run_ids"));
      assertEquals([null], await data("origin_run_ids"));
      const user = c.run.systemTags.find((t) => t.startsWith("user:"))!;
      assertEquals([user], await data("namespaces"));
      assertEquals([user.slice(5)], await data("usernames"));
      const tags = (await data("tags")) as string[];
      for (const t of ["\u523a\u8eab means sashimi", "multiple tags should be ok"]) if (!tags.includes(t)) throw new Error(`current.tags lacks ${t}: ${tags}`);
    },
  },
  {
    name: "catch_retry",
    priority: 2,
    processOn: ["single-linear-step"],
    skipGraphs: SWITCH_GRAPHS,
    steps: [
      {
        prio: 0,
        quals: ["start"],
        decorators: ["@retry({ times: 3, minutes_between_retries: 0 } as any)"],
        body: `self.test_attempt = current.retryCount; process.stdout.write(\`stdout testing logs \${self.test_attempt}\\n\`); process.stderr.write(\`stderr testing logs \${self.test_attempt}\\n\`);
        if (self.test_attempt < 3) { self.invisible = true; throw new TestRetry(); }`,
      },
      { prio: 0, quals: ["foreach-split", "parallel-split"], decorators: ["@retry({ times: 2, minutes_between_retries: 0 } as any)"], body: `if (current.retryCount === 2) self.this_is_split = true; else throw new TestRetry();` },
      { prio: 0, quals: ["join"], decorators: ["@retry({ times: 2, minutes_between_retries: 0 } as any)"], body: `if (current.retryCount === 2) self.test_attempt = inputs[0].test_attempt; else throw new TestRetry();` },
      {
        prio: 0,
        quals: ["end"],
        required: true,
        decorators: [`@catchError({ var: "end_ex", print_exception: false } as any)`],
        body: `assertEquals(3, self.test_attempt); self.here = true; throw Object.assign(new Error("catch me!"), { name: "ExternalCommandFailed" });`,
      },
      { prio: 1, quals: ["all"], decorators: [`@catchError({ var: "ex", print_exception: false } as any)`, "@retry({ times: 2, minutes_between_retries: 0 } as any)"], body: `self.retry_with_catch = current.retryCount; throw new TestRetry();` },
    ],
    async check(c) {
      if (c.logsCaptured) {
        for (const l of await c.logs("start", "stdout")) if (!l.includes("stdout testing logs 3\n")) throw new Error(`start stdout: ${l}`);
        for (const l of await c.logs("start", "stderr")) if (!l.includes("stderr testing logs 3\n")) throw new Error(`start stderr: ${l}`);
      }
      for (const s of c.steps) {
        const node = c.graph[s]!;
        if (s === "start") {
          await c.assertArtifact("start", "test_attempt", 3);
          for (const t of await c.tasks("start")) if (await t.artifact("invisible")) throw new Error("'invisible' should not be visible in 'start'");
        } else if (s === "end") {
          await c.assertArtifact("end", "test_attempt", 3);
          const [ex] = (await c.artifacts("end", "end_ex")) as Error[];
          assertEquals("catch me!", ex!.message);
          assertEquals("ExternalCommandFailed", ex!.name);
          // Metaflow keeps what the caught attempt assigned before it raised.
          await c.assertArtifact("end", "here", true);
        } else if (node.foreach) {
          await c.assertArtifact(s, "this_is_split", true);
        } else if (!node.join) {
          for (const ex of (await c.artifacts(s, "ex")) as Error[]) assertEquals("TestRetry", ex.name);
          await c.assertArtifact(s, "retry_with_catch", 2);
        }
      }
      for (const s of c.steps) {
        const node = c.graph[s]!;
        if (s === "end" || (!node.foreach && !node.join && s !== "start")) continue;
        const want = s === "start" ? 4 : 3;
        for (const t of await c.tasks(s)) assertEquals(Array.from({ length: want }, (_, i) => i), await t.attempts());
      }
      const end = (await c.tasks("end"))[0]!;
      assertEquals(undefined, end.exception);
    },
  },
  {
    name: "task_exception",
    priority: 1,
    skipGraphs: SWITCH_GRAPHS,
    shouldFail: true,
    steps: [{ prio: 0, quals: ["singleton-end"], required: true, body: `throw Object.assign(new Error("Something has gone wrong"), { name: "KeyError" });` }, { prio: 2, quals: ["all"], body: "" }],
    async check(c) {
      const [end] = await c.tasks("end");
      assertEquals("KeyError", end!.exception?.type);
      if (!end!.exception?.message.includes("Something has gone wrong")) throw new Error(`exception: ${JSON.stringify(end!.exception)}`);
    },
  },
  {
    name: "resume_end_step",
    priority: 3,
    skipGraphs: SWITCH_GRAPHS,
    resume: true,
    fields: { int_param: `Parameter("int_param", { default: 123 })` },
    steps: [
      { prio: 0, quals: ["start"], body: `self.data = "start";` },
      { prio: 0, quals: ["singleton-end"], required: true, body: `if (isResumed()) self.data = "foo"; else { self.data = "bar"; throw new ResumeFromHere(); }` },
      { prio: 2, quals: ["all"], body: "" },
    ],
    async check(c) {
      for (const s of c.steps) await c.assertArtifact(s, "data", s === "end" ? "foo" : "start");
      for (const s of c.steps) for (const t of await c.tasks(s)) if ((s === "end") === Boolean(t.clonedFrom)) throw new Error(`${t.pathspec} ${t.clonedFrom ? "was cloned" : "re-ran"}`);
    },
  },
  {
    name: "resume_start_step",
    priority: 3,
    skipGraphs: SWITCH_GRAPHS,
    resume: true,
    fields: { int_param: `Parameter("int_param", { default: 123 })` },
    steps: [
      { prio: 0, quals: ["singleton-start"], required: true, body: `if (isResumed()) { self.data = "foo"; self.actual_origin_run_id = current.originRunId; } else { self.data = "bar"; throw new ResumeFromHere(); }` },
      { prio: 2, quals: ["all"], body: "" },
    ],
    async check(c) {
      for (const s of c.steps) {
        await c.assertArtifact(s, "data", "foo");
        await c.assertArtifact(s, "int_param", 123);
      }
      await c.assertArtifact("end", "actual_origin_run_id", c.run.originRunId);
    },
  },
  {
    name: "resume_foreach_join",
    priority: 3,
    skipGraphs: SWITCH_GRAPHS,
    resume: true,
    // foreach_stack() again: each split records its item, as in nested_foreach.
    steps: [
      { prio: 0, quals: ["start"], body: `self.data = "start"; self.after = false;` },
      { prio: 0, quals: ["foreach-nested-split", "foreach-split"], required: true, body: `assertEquals(self.after ? "resume" : "start", self.data); self.prefix = (self.index === undefined ? "" : (self.prefix ?? "") + self.input);` },
      { prio: 0, quals: ["foreach-inner"], required: true, body: `self.var = [self.prefix + self.input];` },
      {
        prio: 0,
        quals: ["join"],
        required: true,
        body: `self.after = true; if (isResumed()) self.data = "resume"; else { self.data = "run"; throw new ResumeFromHere(); }
        self.var = [...inputs].flatMap((i: any) => i.var).sort(); self.prefix = inputs[0].prefix.slice(0, -1);`,
      },
      { prio: 2, quals: ["all"], body: `assertEquals(self.after ? "resume" : "start", self.data);` },
    ],
    async check(c) {
      await c.assertArtifact("start", "data", "start");
      await c.assertArtifact("end", "data", "resume");
      const [v] = (await c.artifacts("end", "var")) as string[][];
      if (!v || v.length === 0) throw new Error("end has no var");
    },
  },
  {
    name: "resume_succeeded_step",
    priority: 3,
    skipGraphs: SWITCH_GRAPHS,
    resume: true,
    resumeStep: "a",
    fields: { int_param: `Parameter("int_param", { default: 123 })` },
    steps: [
      { prio: 0, quals: ["start"], body: `self.data = isResumed() ? "start_r" : "start";` },
      { prio: 0, quals: ["singleton-end"], required: true, body: `if (isResumed()) self.data = "end_r"; else { self.data = "end"; throw new ResumeFromHere(); }` },
      { prio: 2, quals: ["all"], body: `self.data = isResumed() ? "test_r" : "test";` },
    ],
    async check(c) {
      await c.assertArtifact("start", "data", "start");
      await c.assertArtifact("a", "data", "test_r");
      await c.assertArtifact("end", "data", "end_r");
    },
  },
  {
    name: "resume_foreach_split",
    priority: 3,
    skipGraphs: SWITCH_GRAPHS,
    resume: true,
    // foreach_stack() again: each split records its item, as in nested_foreach.
    steps: [
      { prio: 0, quals: ["start"], body: `self.data = "start"; self.after = false;` },
      {
        prio: 0,
        quals: ["foreach-nested-split", "foreach-split"],
        required: true,
        body: `self.after = true; if (isResumed()) self.data = "resume"; else { self.data = "run"; throw new ResumeFromHere(); }
        self.prefix = (self.index === undefined ? "" : (self.prefix ?? "") + self.input);`,
      },
      { prio: 0, quals: ["foreach-inner"], required: true, body: `self.var = [self.prefix + self.input]; assertEquals(self.after ? "resume" : "start", self.data);` },
      { prio: 0, quals: ["join"], required: true, body: `self.var = [...inputs].flatMap((i: any) => i.var).sort(); self.data = inputs[0].data; self.after = inputs[0].after; assertEquals(self.after ? "resume" : "start", self.data);` },
      { prio: 2, quals: ["all"], body: `assertEquals(self.after ? "resume" : "start", self.data);` },
    ],
    async check(c) {
      await c.assertArtifact("start", "data", "start");
      await c.assertArtifact("end", "data", "resume");
      const [v] = (await c.artifacts("end", "var")) as string[][];
      if (!v || v.length === 0) throw new Error("end has no var");
    },
  },
  {
    name: "basic_include",
    priority: 1,
    skipGraphs: SWITCH_GRAPHS,
    files: { "reg.txt": "Regular Text File", "utf8.txt": "UTF Text File \u5e74", "override.txt": "Override Text File" },
    // Metaflow reads myfile_overriden's path from METAFLOW_RUN_MYFILE_OVERRIDEN; here it is given as a parameter.
    fields: {
      myfile_txt: `IncludeFile("myfile_txt", { default: \`\${DIR}/reg.txt\` })`,
      myfile_utf8: `IncludeFile("myfile_utf8", { default: \`\${DIR}/utf8.txt\` })`,
      myfile_binary: `IncludeFile("myfile_binary", { default: \`\${DIR}/utf8.txt\`, text: false })`,
      myfile_overriden: `IncludeFile("myfile_overriden", { default: "./reg.txt" })`,
      absent_file: `IncludeFile("absent_file", { required: false })`,
    },
    params: { myfile_overriden: "$DIR/override.txt" },
    steps: [
      {
        prio: 0,
        quals: ["all"],
        body: `assertEquals("Regular Text File", self.myfile_txt); assertEquals("UTF Text File \u5e74", self.myfile_utf8);
        assertEquals([...new TextEncoder().encode("UTF Text File \u5e74")], [...self.myfile_binary]);
        assertEquals("Override Text File", self.myfile_overriden); assertEquals(undefined, self.absent_file);
        assertException(() => { self.myfile_txt = 5; }, /read-only/);`,
      },
    ],
    async check(c) {
      for (const s of c.steps) {
        await c.assertArtifact(s, "myfile_txt", "Regular Text File");
        await c.assertArtifact(s, "myfile_utf8", "UTF Text File \u5e74");
        for (const v of await c.artifacts(s, "myfile_binary")) assertEquals([...new TextEncoder().encode("UTF Text File \u5e74")], [...(v as Uint8Array)]);
      }
    },
  },
  {
    name: "basic_tags",
    priority: 2,
    skipGraphs: SWITCH_GRAPHS,
    // @project's project:/project_branch: tags belong to production deploys here; tsflow's
    // client has tags on runs (steps, tasks and artifacts carry none of their own).
    steps: [{ prio: 0, quals: ["all"], body: `assertEquals(\`user:\${current.username}\`, getNamespace());` }],
    async check(c) {
      const user = c.run.systemTags.find((t) => t.startsWith("user:"))!;
      const tags = [user, "\u523a\u8eab means sashimi", "multiple tags should be ok"];
      const { createClient } = await import("tsflow");
      const { default: fsDatastore } = await import("../../plugins/datastores/fs.ts");
      const { default: nodeHost } = await import("../../plugins/host/node.ts");
      const client = createClient(fsDatastore({ root: c.run.doc.datastore as string }), nodeHost());
      for (const tag of tags) {
        client.namespace(tag);
        const flow = client.Flow.get(c.run.flow);
        const run = await flow.run(c.run.id);
        assertEquals(
          tags.map(() => true),
          tags.map((t) => [...run.tags, ...run.systemTags].includes(t)),
        );
        assertEquals([], await flow.runs({ tags: ["not_a_tag"] }));
        assertEquals([], await flow.runs({ tags: ["not_a_tag", tag] }));
        if (!(await flow.runs({ tags: [tag] })).some((r) => r.id === c.run.id)) throw new Error(`the run is not listed in namespace ${tag}`);
      }
    },
  },
  {
    name: "switch_basic",
    priority: 2,
    onlyGraphs: ["simple_switch"],
    steps: [
      { prio: 0, quals: ["start"], required: true, body: `self.condition = "case2";` },
      { prio: 0, quals: ["switch-simple"], required: true, body: "" },
      { prio: 0, quals: ["path-a"], required: true, body: `self.result = "Path A taken";` },
      { prio: 0, quals: ["path-b"], required: true, body: `self.result = "Path B taken";` },
      { prio: 0, quals: ["path-c"], required: true, body: `self.result = "Path C taken";` },
      { prio: 1, quals: ["end"], required: true, body: `assertEquals("Path B taken", self.result);` },
    ],
    async check(c) {
      await c.assertArtifact("b", "result", "Path B taken");
    },
  },
  {
    name: "switch_in_branch",
    priority: 2,
    onlyGraphs: ["switch_in_branch"],
    steps: [
      { prio: 0, quals: ["start-split"], required: true, body: `self.condition = "case1";` },
      { prio: 0, quals: ["switch-a"], required: true, body: "" },
      { prio: 0, quals: ["branch-b"], required: true, body: `self.data = "from_b";` },
      { prio: 0, quals: ["branch-c"], required: true, body: `self.data = "from_a_c";` },
      { prio: 0, quals: ["branch-d"], required: true, body: `self.data = "from_a_d";` },
      { prio: 0, quals: ["join"], required: true, body: `self.final_data = [...inputs].map((i: any) => i.data).sort();` },
      { prio: 1, quals: ["end"], required: true, body: `assertEquals(["from_a_c", "from_b"], self.final_data);` },
    ],
    async check(c) {
      await c.assertArtifact("join", "final_data", ["from_a_c", "from_b"]);
    },
  },
  {
    name: "switch_in_foreach",
    priority: 2,
    onlyGraphs: ["switch_in_foreach"],
    steps: [
      { prio: 0, quals: ["start-foreach"], required: true, body: `self.items = [{ id: 1, type: "type_a", data: 100 }, { id: 2, type: "type_b", data: 200 }, { id: 3, type: "type_a", data: 300 }];` },
      { prio: 0, quals: ["process-item"], required: true, body: `self.item_type = self.input.type;` },
      { prio: 0, quals: ["handle-a"], required: true, body: "self.result = `A(${self.input.data * 2})`;" },
      // Python prints 100/2.0 as 100.0; JavaScript numbers have one type.
      { prio: 0, quals: ["handle-b"], required: true, body: "self.result = `B(${(self.input.data / 2).toFixed(1)})`;" },
      { prio: 0, quals: ["join-foreach"], required: true, body: `self.results = [...inputs].map((i: any) => i.result).sort();` },
      { prio: 1, quals: ["end"], required: true, body: `assertEquals(["A(200)", "A(600)", "B(100.0)"], self.results);` },
    ],
    async check(c) {
      await c.assertArtifact("join", "results", ["A(200)", "A(600)", "B(100.0)"]);
    },
  },
  {
    name: "switch_nested",
    priority: 2,
    onlyGraphs: ["nested_switch"],
    steps: [
      { prio: 0, quals: ["start-nested"], required: true, body: `self.condition1 = "case1"; self.condition2 = "case2_2";` },
      { prio: 0, quals: ["switch-nested"], required: true, body: "" },
      { prio: 0, quals: ["path-b"], required: true, body: `self.result = "Direct path B";` },
      { prio: 0, quals: ["path-c-nested"], required: true, body: `self.result = "Nested path C";` },
      { prio: 0, quals: ["path-d-nested"], required: true, body: `self.result = "Nested path D";` },
      { prio: 1, quals: ["end-nested"], required: true, body: `assertEquals("Nested path D", self.result);` },
    ],
    async check(c) {
      await c.assertArtifact("d", "result", "Nested path D");
    },
  },
  {
    name: "branch_in_switch",
    priority: 2,
    onlyGraphs: ["branch_in_switch"],
    steps: [
      { prio: 0, quals: ["start-branch-in-switch"], required: true, body: `self.mode = "process";` },
      { prio: 0, quals: ["process-path"], required: true, body: "" },
      { prio: 0, quals: ["p1"], required: true, body: `self.result = "p1_done";` },
      { prio: 0, quals: ["p2"], required: true, body: `self.result = "p2_done";` },
      { prio: 0, quals: ["process-join"], required: true, body: `self.final_data = [...inputs].map((i: any) => i.result).sort(); self.final_result = "Processed";` },
      { prio: 0, quals: ["skip-path"], required: true, body: `self.final_result = "Skipped";` },
      { prio: 1, quals: ["end-branch-in-switch"], required: true, body: `assertEquals(["p1_done", "p2_done"], self.final_data); assertEquals("Processed", self.final_result);` },
    ],
    async check(c) {
      await c.assertArtifact("end", "final_result", "Processed");
    },
  },
  {
    name: "foreach_in_switch",
    priority: 2,
    onlyGraphs: ["foreach_in_switch"],
    steps: [
      { prio: 0, quals: ["start-foreach-in-switch"], required: true, body: `self.mode = "process";` },
      { prio: 0, quals: ["process-items"], required: true, body: `self.items_to_process = ["item_1", "item_2"];` },
      { prio: 0, quals: ["do-work"], required: true, body: "self.work_result = `Processed ${self.input}`;" },
      { prio: 0, quals: ["join-work"], required: true, body: `self.final_result = [...inputs].map((i: any) => i.work_result).sort();` },
      { prio: 0, quals: ["skip-processing"], required: true, body: `self.final_result = "Skipped";` },
      { prio: 1, quals: ["end-foreach-in-switch"], required: true, body: `assertEquals(["Processed item_1", "Processed item_2"], self.final_result);` },
    ],
    async check(c) {
      await c.assertArtifact("end", "final_result", ["Processed item_1", "Processed item_2"]);
    },
  },
  {
    name: "recursive_switch",
    priority: 2,
    onlyGraphs: ["recursive_switch"],
    steps: [
      { prio: 0, quals: ["start"], required: true, body: `self.count = 0; self.max_iterations = 10;` },
      { prio: 0, quals: ["loop"], required: true, body: `self.count += 1; self.loop_status = self.count < self.max_iterations ? "continue" : "exit";` },
      { prio: 0, quals: ["exit"], required: true, body: `assertEquals(10, self.count);` },
      { prio: 1, quals: ["end"], required: true, body: `assertEquals(10, self.count);` },
    ],
    async check(c) {
      await c.assertArtifact("exit_loop", "count", 10);
    },
  },
  {
    name: "recursive_switch_inside_foreach",
    priority: 2,
    onlyGraphs: ["recursive_switch_inside_foreach"],
    steps: [
      { prio: 0, quals: ["start"], required: true, body: `self.items = [{ id: "A", iterations: 3 }, { id: "B", iterations: 5 }, { id: "C", iterations: 2 }];` },
      { prio: 0, quals: ["loop_start"], required: true, body: `self.item_id = self.input.id; self.max_loops = self.input.iterations; self.item_loop_count = 0;` },
      { prio: 0, quals: ["loop_body"], required: true, body: `self.item_loop_count += 1; self.should_continue = self.item_loop_count < self.max_loops ? "True" : "False";` },
      { prio: 0, quals: ["loop_exit"], required: true, body: "assertEquals(self.max_loops, self.item_loop_count); self.result = `Item ${self.item_id} finished after ${self.item_loop_count} iterations.`;" },
      { prio: 0, quals: ["join-foreach"], required: true, body: `self.results = [...inputs].map((i: any) => i.result).sort();` },
      { prio: 1, quals: ["end"], required: true, body: "" },
    ],
    async check(c) {
      await c.assertArtifact("join", "results", ["Item A finished after 3 iterations.", "Item B finished after 5 iterations.", "Item C finished after 2 iterations."]);
    },
  },
];

