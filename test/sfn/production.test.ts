/**
 * `tsflow step-functions …` as a user meets it, on the local AWS stand-ins: a production run that
 * fails in a foreach (list-runs, runs, logs, the viewer, a local resume that finishes it), the
 * definitions of the examples (stable, valid for asl-validator), schedules, @triggerOnFinish,
 * @project branches and namespaces, terminate, delete, and what is refused.
 */
import { execFileSync } from "node:child_process";
import aslValidator from "asl-validator";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import { loadFlowInfo } from "../../core/graph.ts";
import s3Datastore from "../../plugins/datastores/s3.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createDeployment, listRuns, removeDeployment, terminate, trigger } from "../../plugins/step-functions/deploy.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { cli, ROOT } from "../_helpers.ts";
import { type LocalAws, startLocalAws } from "./_local-aws.ts";

let aws: LocalAws;
beforeAll(async () => {
  aws = await startLocalAws({ prefix: "production" });
});
afterAll(() => aws?.close());

const SHAPES = "test/fixtures/sfn-shapes.ts";
const PROD = join(ROOT, "test/fixtures/sfn-production.ts");
const host = nodeHost();
const target = async (exportName: string, file = PROD) => {
  const flowClass = ((await import(/* @vite-ignore */ file)) as Record<string, Function>)[exportName]!;
  return { info: loadFlowInfo(flowClass), flowClass, flowFile: file, exportName, store: s3Datastore({ url: aws.datastore }), host };
};

describe("a production run that fails in a foreach", () => {
  it("is listed by list-runs, shown by runs, logs and the viewer, and finished by a local resume", async () => {
    const env = aws.env;
    const common = [SHAPES, "--flow", "FailingForeachFlow", "--datastore", aws.datastore];
    const created = await cli(["step-functions", "create", ...common], { env });
    expect(created.stderr).toBe("");
    expect(created.stdout).toContain("State machine FailingForeachFlow deployed");

    const triggered = await cli(["step-functions", "trigger", ...common, "--wait"], { env, timeoutMs: 120_000 });
    expect(triggered.code, triggered.stderr).toBe(1);
    const runId = /Run FailingForeachFlow\/(\S+) started/.exec(triggered.stdout)![1]!;
    expect(triggered.stdout).toContain(`Run FailingForeachFlow/${runId} failed`);
    expect(triggered.stdout).toContain(`tsflow resume ${SHAPES} --origin-run-id ${runId}`);

    const listed = await cli(["step-functions", "list-runs", ...common], { env });
    expect(listed.stdout).toMatch(new RegExp(`FailingForeachFlow/${runId}\\s+FAILED`));
    // The deployer's own runs, like runs they start locally.
    const runs = await cli(["runs", "FailingForeachFlow", "--datastore", aws.datastore], { env });
    expect(runs.stdout).toMatch(new RegExp(`FailingForeachFlow/${runId}\\s+failed`));

    const dump = await cli(["dump", `FailingForeachFlow/${runId}/start`, "--datastore", aws.datastore], { env });
    expect(dump.stdout).toContain("items");

    // The failed item's own error, from the job's logs in the datastore.
    const logs = await cli(["logs", `FailingForeachFlow/${runId}/work/2-2`, "--stderr", "--datastore", aws.datastore], { env });
    expect(logs.stdout).toContain("item 2 is broken");

    const app = createViewerApp({ store: s3Datastore({ url: aws.datastore }), host });
    const page = await (await app.request(`/runs/FailingForeachFlow/${runId}`)).text();
    expect(page).toContain("failed");
    expect(page).toContain("item 2 is broken");
    expect(await (await app.request("/runs")).text()).toContain(runId);

    // Item 2's failure stops the Map: siblings still running then are stopped too (as on AWS),
    // so how many items finished in production depends on timing; each of them is cloned.
    const client = createClient(s3Datastore({ url: aws.datastore }), host);
    client.namespace(null);
    const finished = (await client.Flow.get("FailingForeachFlow").run(runId).then((r) => r.step("work").tasks())).filter((t) => t.successful).length;
    expect(finished).toBeLessThanOrEqual(3);
    const resumed = await cli(["resume", ...common, "--origin-run-id", runId], { env: { ...env, TSFLOW_FIX_ITEM: "1" }, timeoutMs: 120_000 });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`Cloned ${1 + finished} task${finished ? "s" : ""} from FailingForeachFlow/${runId} (start ×1${finished ? `, work ×${finished}` : ""})`);
    const latest = await client.Flow.get("FailingForeachFlow").latestRun();
    expect(latest?.originRunId).toBe(runId);
    expect(await latest?.data("total")).toBe(0 + 1 + 4 + 9);
  }, 240_000);
});

describe("--only-json", () => {
  it("prints each example's definition: stable (snapshot) and valid for asl-validator", async () => {
    const env = { TSFLOW_BATCH_COMMAND: "tsflow __worker", TSFLOW_BATCH_ENDPOINT: "", TSFLOW_SFN_ENDPOINT: "" };
    const args = ["--only-json", "--datastore", "s3://my-bucket/tsflow", "--queue", "tsflow-queue", "--image", "tsflow:1"];
    // The command itself once (it prints exactly the definition), the library for the others.
    const printed = await cli(["step-functions", "create", "examples/pets.ts", ...args], { env });
    expect(printed.stderr).toBe("");
    const validator = join(ROOT, "node_modules/.bin/asl-validator");
    expect(execFileSync(validator, ["--json-definition", printed.stdout], { encoding: "utf8" })).toContain("is valid");
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      for (const example of ["hello", "pets", "foreach", "switch", "parameters", "bigartifact"]) {
        const file = join(ROOT, `examples/${example}.ts`);
        const flowClass = ((await import(/* @vite-ignore */ file)) as { default: Function }).default;
        const { definition } = await createDeployment(
          { info: loadFlowInfo(flowClass), flowClass, flowFile: file, store: s3Datastore({ url: "s3://my-bucket/tsflow" }), host },
          { onlyJson: true, queue: "tsflow-queue", image: "tsflow:1" },
        );
        const json = `${JSON.stringify(definition, null, 2)}\n`;
        if (example === "pets") expect(json).toBe(printed.stdout);
        // The code package's hash follows the example's source and the bundler, and who deploys
        // it is not part of the shape either.
        const text = json.replace(/package:[0-9a-f]{64}/g, "package:<hash>").replace(/\\"deployer\\":\\"[^\\"]*\\"/g, '\\"deployer\\":\\"<user>\\"');
        await expect(text).toMatchFileSnapshot(`./__snapshots__/${example}.asl.json`);
        const verdict = aslValidator(definition);
        expect(verdict.isValid, `${example}: ${verdict.errorsText("; ")}`).toBe(true);
      }
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }, 120_000);
});

describe("schedules, triggers and projects", () => {
  it("a schedule starts a project branch's run, whose success starts the flow that waits for it", async () => {
    const nightly = await target("NightlyFlow");
    const report = await target("ReportFlow");
    const made = await createDeployment(nightly, { branch: "feature" });
    expect(made.name).toBe("demo.test.feature.NightlyFlow");
    await createDeployment(report, { branch: "feature" });
    const schedule = aws.sfn.schedules.list().find((s) => s.Name === "tsflow-demo.test.feature.NightlyFlow")!;
    expect(schedule).toMatchObject({ ScheduleExpression: "cron(0 0 * * ? *)", ScheduleExpressionTimezone: "Europe/Paris", Target: { Arn: made.arn } });

    const fired = await aws.sfn.schedules.fire(schedule.Name);
    expect((await aws.sfn.executions.wait(fired)).status).toBe("SUCCEEDED");
    const reportArn = aws.sfn.machines.get("demo.test.feature.ReportFlow")!.arn;
    let started: string | undefined;
    for (let i = 0; i < 100 && !started; i++) {
      started = aws.sfn.executions.list().find((e) => e.stateMachineArn === reportArn)?.executionArn;
      if (!started) await new Promise((r) => setTimeout(r, 100));
    }
    expect(started, "ReportFlow started by the EventBridge rule").toBeDefined();
    expect((await aws.sfn.executions.wait(started!)).status).toBe("SUCCEEDED");

    // The branch's runs are in its own production namespace, tagged with the project.
    const client = createClient(s3Datastore({ url: aws.datastore }), host);
    client.namespace("production:demo.test.feature.NightlyFlow");
    const run = await client.Flow.get("NightlyFlow").latestRun();
    expect(await run?.data("tags")).toEqual(expect.arrayContaining(["production:demo.test.feature.NightlyFlow", "project:demo", "project_branch:test.feature"]));
    client.namespace("production:demo.prod.NightlyFlow");
    expect(await client.Flow.get("NightlyFlow").latestRun()).toBeNull();

    // --production is another state machine with its own schedule.
    const prod = await createDeployment(nightly, { production: true });
    expect(prod.name).toBe("demo.prod.NightlyFlow");
    expect(aws.sfn.schedules.list().map((s) => s.Name)).toContain("tsflow-demo.prod.NightlyFlow");

    // A deployment re-created without @schedule loses its schedule; delete removes the rest.
    await createDeployment(await target("PlainFlow"), { name: "demo.prod.NightlyFlow" });
    expect(aws.sfn.schedules.list().map((s) => s.Name)).not.toContain("tsflow-demo.prod.NightlyFlow");
    await removeDeployment(report, { branch: "feature" });
    expect(aws.sfn.machines.get("demo.test.feature.ReportFlow")).toBeUndefined();
    expect(aws.sfn.rules.list().map((r) => r.Name)).not.toContain("tsflow-demo.test.feature.ReportFlow-on-finish");
  }, 120_000);

  it("terminate stops the execution and its Batch job and marks the run failed", async () => {
    const slow = await target("TimeoutRetryFlow", join(ROOT, SHAPES));
    await createDeployment(slow, { name: "terminate-me" });
    const { runId, executionArn } = await trigger(slow, { name: "terminate-me" });
    let job: string | undefined;
    for (let i = 0; i < 300 && !job; i++) {
      const e = aws.sfn.executions.get(executionArn)!;
      job = e.jobs.find((id) => aws.batch.jobs.get(id)?.jobName?.endsWith("-slow") && aws.batch.jobs.get(id)?.status === "RUNNING");
      if (!job) await new Promise((r) => setTimeout(r, 100));
    }
    expect(job, "the slow step's job runs").toBeDefined();
    await terminate(slow, { name: "terminate-me", runId });
    expect((await aws.sfn.executions.wait(executionArn)).status).toBe("ABORTED");
    for (let i = 0; i < 100 && aws.batch.jobs.get(job!)?.status !== "FAILED"; i++) await new Promise((r) => setTimeout(r, 100));
    expect(aws.batch.jobs.get(job!)?.status).toBe("FAILED");
    const client = createClient(s3Datastore({ url: aws.datastore }), host);
    client.namespace(null);
    const run = await client.Flow.get("TimeoutRetryFlow").run(runId);
    expect(run.status).toBe("failed");

    // Stopped behind tsflow's back (the console, the API): list-runs records the end.
    const second = await trigger(slow, { name: "terminate-me" });
    for (let i = 0; i < 300; i++) {
      if (await slow.store.has(`flows/TimeoutRetryFlow/runs/${second.runId}/run.json`)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const { SFNClient, StopExecutionCommand } = await import("@aws-sdk/client-sfn");
    const sfn = new SFNClient({ endpoint: aws.sfn.url, region: "us-east-1" });
    await sfn.send(new StopExecutionCommand({ executionArn: second.executionArn }));
    sfn.destroy();
    await aws.sfn.executions.wait(second.executionArn);
    expect((await client.Flow.get("TimeoutRetryFlow").run(second.runId)).status).toBe("running");
    await listRuns(slow, { name: "terminate-me" });
    expect((await client.Flow.get("TimeoutRetryFlow").run(second.runId)).status).toBe("failed");
  }, 120_000);
});

describe("what cannot be deployed is refused with the reason", () => {
  it("names the flow, step, option or parameter at fault", async () => {
    const cachedFlow = await target("CachedFlow");
    await expect(createDeployment(cachedFlow, { onlyJson: true })).rejects.toThrow(/cannot be deployed to Step Functions/);
    await expect(createDeployment(cachedFlow, { onlyJson: true })).rejects.toMatchObject({ details: [expect.stringContaining("step 'start': @cached")] });
    await expect(createDeployment(await target("PlainFlow"), { branch: "x" })).rejects.toThrow("--branch and --production need @project({ name }) on flow PlainFlow");
    const local = await cli(["step-functions", "create", "examples/hello.ts", "--datastore", "/tmp/somewhere"], { env: aws.env });
    expect(local.code).toBe(2);
    expect(local.stderr).toContain("production runs live in an S3 datastore");
    const noQueue = await cli(["step-functions", "create", "examples/hello.ts", "--only-json", "--datastore", aws.datastore], { env: { ...aws.env, TSFLOW_BATCH_QUEUE: "" } });
    expect(noQueue.stderr).toContain("give a job queue and an image");
    await cli(["step-functions", "create", "examples/pets.ts", "--datastore", aws.datastore], { env: aws.env });
    const badParam = await cli(["step-functions", "trigger", "examples/pets.ts", "--limit", "many", "--datastore", aws.datastore], { env: aws.env });
    expect(badParam.stderr).toContain("option --limit must be a number, got 'many'");
    const unknown = await cli(["step-functions", "trigger", "examples/pets.ts", "--colour", "red"], { env: aws.env });
    expect(unknown.stderr).toContain("flow PetsFlow has no parameter '--colour'");
    const missing = await cli(["step-functions", "trigger", "examples/hello.ts", "--name", "nope"], { env: aws.env });
    expect(missing.stderr).toContain("state machine 'nope' does not exist");
  }, 120_000);
});
