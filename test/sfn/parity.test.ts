/**
 * The acceptance comparison: every example and every graph shape, deployed with `step-functions
 * create` and started with `trigger` on the local AWS stand-ins (each task a Batch job run by the
 * local Step Functions interpreter), ends with the same artifacts, task by task, as a local
 * `tsflow run` of the same flow with the same parameters.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contentHash } from "../../core/artifacts.ts";
import { createClient } from "../../core/client.ts";
import { loadFlowInfo } from "../../core/graph.ts";
import type { Datastore } from "../../core/types.ts";
import { parseWith } from "../../runner/options.ts";
import { runFlow } from "../../mod.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createDeployment, trigger } from "../../plugins/step-functions/deploy.ts";
import { tempStore } from "../_helpers.ts";
import { type LocalAws, startLocalAws } from "./_local-aws.ts";

interface Case {
  file: string;
  exportName?: string;
  params?: Record<string, string>;
  /** `--with` decorators, for the deployment and the local run alike. */
  with?: string[];
  /**
   * The local run's executor: in-process (cheap on a 2-core machine) unless the flow needs a
   * process to kill (a step outliving its @timeout).
   */
  local?: "process";
  /** Steps whose tasks both runs must have, as a check that the comparison is not vacuous. */
  tasks: number;
}

const ALL_CASES: Case[] = [
  { file: "examples/hello.ts", tasks: 2 },
  { file: "examples/pets.ts", params: { greeting: "hello" }, tasks: 5 },
  { file: "examples/foreach.ts", params: { n: "3" }, tasks: 6 },
  { file: "examples/switch.ts", tasks: 6 },
  { file: "examples/parameters.ts", params: { mode: "fast", model: '{"layers":[3]}' }, tasks: 2 },
  { file: "test/fixtures/linear.ts", tasks: 3 },
  { file: "test/fixtures/branch.ts", tasks: 6 },
  { file: "test/fixtures/nested-foreach.ts", params: { outer: "2" }, tasks: 12 },
  { file: "test/fixtures/switch-param.ts", params: { pick: "right" }, tasks: 3 },
  { file: "test/fixtures/retry.ts", tasks: 3 },
  { file: "test/fixtures/catch.ts", tasks: 3 },
  { file: "test/fixtures/catch.ts", with: ["retry:times=1"], tasks: 3 },
  { file: "test/fixtures/sfn-shapes.ts", exportName: "TimeoutRetryFlow", local: "process", tasks: 3 },
  { file: "test/fixtures/sfn-shapes.ts", params: { n: "2" }, tasks: 15 },
];
const CASES = process.env.PARITY_ONLY ? ALL_CASES.filter((c) => c.file.includes(process.env.PARITY_ONLY!)) : ALL_CASES;

let aws: LocalAws;
beforeAll(async () => {
  aws = await startLocalAws({ prefix: "parity", maxConcurrent: 4 });
});
afterAll(() => aws?.close());

/** Step → one sorted line per task: its foreach position, the attempt that counts, and every artifact's content (errors by name and message). */
async function fingerprint(store: Datastore, flow: string, runId: string): Promise<Record<string, string[]>> {
  const client = createClient(store, nodeHost());
  client.namespace(null);
  const run = await client.Flow.get(flow).run(runId);
  const out: Record<string, string[]> = {};
  for (const step of await run.steps()) {
    const lines: string[] = [];
    for await (const task of step.tasks()) {
      if (!task.successful) continue;
      const parts: string[] = [];
      for (const a of await task.artifacts()) {
        // An Error's stack names the process that threw it; its class and message are the value.
        const value = a.type.includes("Error") ? await a.value() : undefined;
        parts.push(`${a.name}=${value instanceof Error ? `${value.name}: ${value.message}` : contentHash(a.ref)}`);
      }
      // The attempt that succeeded counts too: retries and the @catchError attempt number alike.
      lines.push(`${task.foreach.map((f) => f.index).join(".")}@${task.attempt}|${parts.sort().join(",")}`);
    }
    out[step.name] = lines.sort();
  }
  return out;
}

describe("a production run computes what a local run computes", () => {
  it("for every example and graph shape (linear, branch, nested foreach, switch and its loop, retry, catch, timeout)", async () => {
    const host = nodeHost();
    const store = s3Datastore({ url: aws.datastore });
    // Every production run is started first and runs while the local runs go one at a time.
    const deployed = await Promise.all(
      CASES.map(async (c, i) => {
        const abs = new URL(`../../${c.file}`, import.meta.url).pathname;
        const mod = (await import(/* @vite-ignore */ abs)) as Record<string, Function>;
        const flowClass = mod[c.exportName ?? "default"]!;
        const info = loadFlowInfo(flowClass);
        const name = `parity-${i}-${info.name}`;
        await createDeployment({ info, flowClass, flowFile: abs, exportName: c.exportName, store, host }, { name, with: parseWith(c.with ?? []) });
        const started = await trigger({ info, flowClass, host }, { name, parameters: c.params });
        return { c, abs, info, flowClass, started };
      }),
    );
    const results = [];
    for (const d of deployed) {
      const local = tempStore();
      const localRun = await runFlow(d.flowClass, {
        file: d.abs,
        exportName: d.c.exportName,
        params: d.c.params,
        with: parseWith(d.c.with ?? []),
        datastore: local,
        maxWorkers: 2,
        executor: d.c.local ?? "inline",
      });
      results.push({ ...d, local, localRun });
    }
    for (const r of results) Object.assign(r, { execution: await aws.sfn.executions.wait(r.started.executionArn) });
    for (const { c, info, started, execution, local, localRun } of results as (typeof results[number] & { execution: Awaited<ReturnType<typeof aws.sfn.executions.wait>> })[]) {
      const where = `${c.file}${c.exportName ? `#${c.exportName}` : ""} ${JSON.stringify(c.params ?? {})}${c.with ? ` --with ${c.with.join(" ")}` : ""}`;
      expect(localRun.successful, `local run of ${where}`).toBe(true);
      if (execution.status !== "SUCCEEDED") {
        const doc = JSON.parse(new TextDecoder().decode((await store.get(`flows/${info.name}/runs/${started.runId}/run.json`)) ?? new Uint8Array()) || "{}");
        expect.fail(`execution of ${where} ${execution.status}: ${JSON.stringify(doc.error)}`);
      }
      const production = await fingerprint(store, info.name, started.runId);
      const reference = await fingerprint(fsDatastore({ root: local }), info.name, localRun.runId);
      expect(Object.values(production).flat().length, where).toBe(c.tasks);
      expect(production, where).toEqual(reference);
      const client = createClient(store, host);
      client.namespace(`production:parity-${CASES.indexOf(c)}-${info.name}`);
      const run = await client.Flow.get(info.name).latestRun();
      expect(run?.id, `${where}: the production run is found in its production namespace`).toBe(started.runId);
      expect(run?.status).toBe("succeeded");
      expect(run?.doc.stepFunctions).toMatchObject({ executionArn: started.executionArn });
    }
    // @resources reached the Batch jobs as resource requirements (the stand-in records them).
    const b = aws.batch.jobs.list().find((j) => j.jobName === "ShapesFlow-b");
    expect(b?.container?.resourceRequirements).toEqual(expect.arrayContaining([{ type: "VCPU", value: "2" }, { type: "MEMORY", value: "2048" }]));
  }, 600_000);
});
