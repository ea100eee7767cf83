/**
 * Config (read before the run, validated, stored, typed in steps, in decorator arguments and
 * parameter defaults) and @exitHook, through the CLI and the library.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Config, config, environment, FlowSpec, isTsflowError, productionOptions, runFlow, schedule, step } from "tsflow";
import { describe, expect, it } from "vitest";
import { cli, cliRun, fixture, latestRun, stepArtifacts, tempStore } from "../_helpers.ts";
import { S3RVER_CREDENTIALS, startS3rver } from "../_s3rver.ts";
import { startBatchServer } from "../batch-server/server.ts";
import { NODE_IMAGE } from "../executors/_docker.ts";
import ConfigFlow from "../fixtures/config-flow.ts";

const FLOW = fixture("config-flow.ts");
const cfg = (name: string) => fixture(`config/${name}`);
const seenOf = async (ds: string, runId: string) => (await stepArtifacts(ds, "ConfigFlow", runId, "end"))[0]!.seen as Record<string, unknown>;
// Kept inside the (temporary) datastore directory, so it goes with it.
const hookEnv = (ds: string) => ({ HOOK_LOG: join(ds, "hooks.log") });
const hookLines = (ds: string) => (existsSync(hookEnv(ds).HOOK_LOG) ? readFileSync(hookEnv(ds).HOOK_LOG, "utf8").trim().split("\n") : []);

describe("Config through the CLI", () => {
  it("reads the default file, types it in steps and feeds decorator arguments and parameter defaults", async () => {
    const ds = tempStore();
    const r = await cli(["run", FLOW, "--datastore", ds], { env: hookEnv(ds) });
    expect(r.code, r.stderr).toBe(0);
    const run = latestRun(ds, "ConfigFlow");
    // @environment({ vars: { MEMORY: config.train.memory, DOUBLE_EPOCHS: config((c) => …) } }) and
    // Parameter("lr", { default: config.train.lr }) took the config's values.
    expect(await seenOf(ds, run.runId)).toEqual({ lr: 0.01, name: "default", epochs: 3, memory: "2048", double: "6", flow: "ConfigFlow", endName: "default" });
    // Stored with the run.
    expect(run.parameterValues.train).toEqual({ lr: 0.01, epochs: 3, memory: 2048, name: "default" });
  });

  it("takes --config NAME=FILE and inline JSON; parameters still override their config default", async () => {
    const ds = tempStore();
    const a = await cliRun(FLOW, ds, "--config", `train=${cfg("prod.json")}`);
    expect(a.code, a.stderr).toBe(0);
    expect(await seenOf(ds, latestRun(ds, "ConfigFlow").runId)).toMatchObject({ lr: 0.5, name: "prod", memory: "8192", double: "2" });
    const b = await cliRun(FLOW, ds, "--config", 'train={"lr":2,"epochs":5,"memory":1,"name":"inline"}', "--lr", "7");
    expect(b.code, b.stderr).toBe(0);
    expect(await seenOf(ds, latestRun(ds, "ConfigFlow").runId)).toMatchObject({ lr: 7, name: "inline", memory: "1", double: "10" });
  });

  it("stops before anything is created when a config does not parse or validate, naming the file and the field", async () => {
    const ds = tempStore();
    const broken = await cliRun(FLOW, ds, "--config", `train=${fixture("broken/config.json")}`);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain(`config 'train': cannot parse file '${fixture("broken/config.json")}'`);
    expect(broken.stderr).toContain("line 3, column 15");
    const invalid = await cliRun(FLOW, ds, "--config", `train=${cfg("invalid.json")}`);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain(`config 'train' from file '${cfg("invalid.json")}' is invalid: field 'lr': must be > 0, got -1`);
    const missing = await cliRun(FLOW, ds, "--config", "train=/nonexistent/train.json");
    expect(missing.stderr).toContain("config 'train': cannot read file '/nonexistent/train.json'");
    const unknown = await cliRun(FLOW, ds, "--config", "trian=x.json");
    expect(unknown.stderr).toContain("flow ConfigFlow has no config 'trian' (it has train)");
    const asParam = await cliRun(FLOW, ds, "--train", "x.json");
    expect(asParam.stderr).toContain("'--train' is a config of flow ConfigFlow: give it as --config train=FILE");
    for (const r of [broken, invalid, missing, unknown, asParam]) expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(ds, "flows"))).toBe(false);
  });

  it("show prints the resolved config and the decorator arguments taken from it", async () => {
    const r = await cli(["show", FLOW, "--config", `train=${cfg("prod.json")}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`train (${cfg("prod.json")}) = {"lr":0.5,"epochs":1,"memory":8192,"name":"prod"}`);
    expect(r.stdout).toContain('start: @environment({"vars":{"MEMORY":"8192","DOUBLE_EPOCHS":"2"}})');
    expect(r.stdout).toContain("--lr <number>  (default: 0.5)");
  });

  it("resume uses the origin run's config and refuses a new one", async () => {
    const ds = tempStore();
    const failed = await cli(["run", FLOW, "--datastore", ds, "--config", `train=${cfg("prod.json")}`], { env: { CONFIG_FLOW_FAIL: "1" } });
    expect(failed.code).toBe(1);
    const origin = latestRun(ds, "ConfigFlow").runId;
    const refused = await cli(["resume", FLOW, "--datastore", ds, "--config", `train=${cfg("train.json")}`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("resume keeps the origin run's configs");
    const resumed = await cli(["resume", FLOW, "--datastore", ds, "--origin-run-id", origin]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const run = latestRun(ds, "ConfigFlow");
    expect(run.originRunId).toBe(origin);
    expect(await seenOf(ds, run.runId)).toMatchObject({ name: "prod", memory: "8192", lr: 0.5 });
  });
});

describe("Config in executor decorators", () => {
  it("@batch({ queue, memory, cpu }) from a config reach the AWS Batch job (local Batch server, s3rver)", async () => {
    const [s3, server] = await Promise.all([startS3rver({ buckets: ["cfg"] }), startBatchServer({ executor: "process", transitionMs: 20, queues: ["default", "gpu"] })]);
    const aws = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: "us-east-1", TSFLOW_S3_ENDPOINT: s3.endpoint };
    // Jobs of the local Batch server get this process's AWS credentials (standing for their role).
    const saved = { ...process.env };
    Object.assign(process.env, aws);
    try {
      const r = await cli(["run", fixture("config-batch.ts"), "--datastore", "s3://cfg/runs", "--config", 'infra={"queue":"gpu","memory":3072,"cpu":1.5}'], {
        env: { ...aws, TSFLOW_BATCH_ENDPOINT: server.url, TSFLOW_BATCH_IMAGE: NODE_IMAGE },
        timeoutMs: 120_000,
      });
      expect(r.code, r.stderr).toBe(0);
      const jobs = server.jobs.list();
      expect(jobs).toHaveLength(1);
      expect(jobs[0]!.jobQueue).toMatch(/job-queue\/gpu$/);
      const reqs = Object.fromEntries((jobs[0]!.container?.resourceRequirements ?? []).map((q) => [q.type, q.value]));
      expect(reqs).toMatchObject({ MEMORY: "3072", VCPU: "3" });
    } finally {
      process.env = saved;
      await Promise.all([server.close(), s3.close()]);
    }
  }, 180_000);
});

describe("Config in flow decorators", () => {
  it("@schedule takes its options from a config once the configs are known (step-functions create)", () => {
    @schedule({ cron: config.deploy.cron, timezone: config.deploy.tz })
    class Scheduled extends FlowSpec {
      deploy = Config("deploy", { defaultValue: { cron: "0 6 * * ? *", tz: "Europe/Paris" } });
      @step start() {
        this.next(this.end);
      }
      @step end() {}
    }
    expect(() => productionOptions(Scheduled).schedule).toThrow("@schedule of Scheduled takes its options from a config: read the flow's configs first");
    expect(productionOptions(Scheduled).project).toBeUndefined();
    expect(productionOptions(Scheduled, { deploy: { cron: "0 6 * * ? *", tz: "Europe/Paris" } }).schedule).toEqual({ expression: "cron(0 6 * * ? *)", timezone: "Europe/Paris" });
    expect(() => productionOptions(Scheduled, { deploy: { cron: "0 6 * *", tz: "UTC" } })).toThrow("@schedule cron '0 6 * *' must have six fields");
    expect(() => productionOptions(Scheduled, { deploy: {} })).toThrow("@schedule of Scheduled: config 'deploy' has no field 'cron'");
  });
});

describe("Config from the library", () => {
  it("takes a config as a value, a file or inline JSON, validated the same way", async () => {
    const ds = tempStore();
    const r = await runFlow(ConfigFlow, { datastore: ds, config: { train: { lr: 3, epochs: 4, memory: 64, name: "value" } } });
    expect(r.successful, JSON.stringify(r.error)).toBe(true);
    expect(await seenOf(ds, r.runId)).toMatchObject({ lr: 3, name: "value", memory: "64", double: "8" });
    const f = await runFlow(ConfigFlow, { datastore: ds, executor: "inline", config: { train: cfg("prod.json") } });
    expect(await seenOf(ds, f.runId)).toMatchObject({ name: "prod" });
    const err = await runFlow(ConfigFlow, { datastore: tempStore(), config: { train: { lr: 1, epochs: "many", memory: 1 } } }).catch((e) => e);
    expect(isTsflowError(err) && err.code).toBe("BadConfig");
    expect(err.message).toBe("config 'train' from the value given is invalid: field 'epochs': must be a number");
  });

  it("reads other formats with parser, checks with validate(), and says when a required config is missing", async () => {
    class Parsed extends FlowSpec {
      // "key = value" lines: a format JSON.parse would not read.
      opts = Config<{ rate: string; name: string }>("opts", {
        required: true,
        parser: (text) => Object.fromEntries(text.split("\n").filter(Boolean).map((l) => l.split("=").map((p) => p.trim()))),
        validate: (v) => (Number.isNaN(Number(v.rate)) ? [{ path: ["rate"], message: `must be a number, got '${v.rate}'` }] : undefined),
      });
      seen = "";
      @step start() {
        this.seen = `${this.opts.name}@${this.opts.rate}`;
        this.next(this.end);
      }
      @step end() {}
    }
    const ds = tempStore();
    const good = join(ds, "opts.txt");
    writeFileSync(good, "rate = 0.5\nname = kv\n");
    const r = await runFlow(Parsed, { datastore: ds, executor: "inline", config: { opts: good } });
    expect(r.successful).toBe(true);
    expect((await stepArtifacts(ds, "Parsed", r.runId, "start"))[0]!.seen).toBe("kv@0.5");
    writeFileSync(good, "rate = fast\n");
    await expect(runFlow(Parsed, { datastore: ds, executor: "inline", config: { opts: good } })).rejects.toThrow(`config 'opts' from file '${good}' is invalid: field 'rate': must be a number, got 'fast'`);
    await expect(runFlow(Parsed, { datastore: ds, executor: "inline" })).rejects.toThrow("config 'opts' is required: give it with --config opts=FILE (or inline JSON)");
  });

  it("names the decorator, the step and the field when a config reference does not resolve", async () => {
    class MissingField extends FlowSpec {
      opts = Config("opts", { defaultValue: { image: "x" } });
      @environment({ vars: { MEM: config.opts.memory } })
      @step
      start() {
        this.next(this.end);
      }
      @step end() {}
    }
    const ds = tempStore();
    const err = await runFlow(MissingField, { datastore: ds, executor: "inline" }).catch((e) => e);
    expect(err.message).toBe("decorator @environment of step 'start': config 'opts' has no field 'memory' (config.opts.memory)");
    expect(existsSync(join(ds, "flows"))).toBe(false);
    // A config given at run time makes the same class run: the class itself never changed.
    const ok = await runFlow(MissingField, { datastore: ds, executor: "inline", config: { opts: { memory: 5 } } });
    expect(ok.successful).toBe(true);
  });
});

describe("@exitHook", () => {
  it("runs onSuccess hooks once with the run's client object; a failing hook is reported and the run stays succeeded", async () => {
    const ds = tempStore();
    const r = await cli(["run", FLOW, "--datastore", ds], { env: hookEnv(ds) });
    expect(r.code, r.stderr).toBe(0);
    const run = latestRun(ds, "ConfigFlow");
    expect(run.status).toBe("succeeded");
    expect(hookLines(ds)).toEqual([`success ConfigFlow/${run.runId} true {"lr":0.01,"name":"default","epochs":3,"memory":"2048","double":"6","flow":"ConfigFlow","endName":"default"}`]);
    expect(r.stdout + r.stderr).toContain(`exit hook onSuccess 'broken' of ConfigFlow/${run.runId} failed (the run stays succeeded): Error: the chat server is down`);
  });

  it("runs onError hooks when the run fails, and the exit code stays the run's", async () => {
    const ds = tempStore();
    const r = await cli(["run", FLOW, "--datastore", ds], { env: { ...hookEnv(ds), CONFIG_FLOW_FAIL: "1" } });
    expect(r.code).toBe(1);
    const run = latestRun(ds, "ConfigFlow");
    expect(run.status).toBe("failed");
    expect(hookLines(ds)).toEqual([`error ConfigFlow/${run.runId} false`]);
  });

  it("tsflow exit-hooks FILE RUN runs them for an ended run (what a production deployment calls last)", async () => {
    const ds = tempStore();
    const failed = await cli(["run", FLOW, "--datastore", ds], { env: { CONFIG_FLOW_FAIL: "1" } });
    expect(failed.code).toBe(1);
    const runId = latestRun(ds, "ConfigFlow").runId;
    const r = await cli(["exit-hooks", FLOW, runId, "--datastore", ds], { env: hookEnv(ds) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`✔ exit hook onError 'onFailure' of ConfigFlow/${runId}`);
    expect(hookLines(ds)).toEqual([`error ConfigFlow/${runId} false`]);
    const missing = await cli(["exit-hooks", FLOW, "123-nope", "--datastore", ds]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("run ConfigFlow/123-nope is not in datastore");
  });

  it("reports each hook's outcome to runFlow's caller", async () => {
    const ds = tempStore();
    const saved = process.env.HOOK_LOG;
    process.env.HOOK_LOG = hookEnv(ds).HOOK_LOG;
    const warnings: string[] = [];
    try {
      const r = await runFlow(ConfigFlow, { datastore: ds, reporter: { message: (m) => warnings.push(m) } });
      expect(r.successful).toBe(true);
      expect(r.exitHooks).toEqual([
        { hook: "notify", kind: "onSuccess", ok: true },
        { hook: "broken", kind: "onSuccess", ok: false, error: { type: "Error", message: "the chat server is down" } },
      ]);
      expect(warnings.join("\n")).toContain("exit hook onSuccess 'broken'");
      expect(hookLines(ds)).toHaveLength(1);
    } finally {
      if (saved === undefined) delete process.env.HOOK_LOG;
      else process.env.HOOK_LOG = saved;
    }
  });
});
