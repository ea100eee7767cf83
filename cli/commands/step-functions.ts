/**
 * `tsflow step-functions create|trigger|list-runs|terminate|delete FLOW_FILE`: deploy a flow to
 * AWS Step Functions (every task an AWS Batch job) and manage its production runs. The work is in
 * plugins/step-functions/; this file parses arguments and prints.
 */
import { defineCommand } from "citty";
import { TsflowError } from "../../core/errors.ts";
import { loadFlowInfo } from "../../core/graph.ts";
import nodeHost from "../../plugins/host/node.ts";
import { openDatastore } from "../../runner/stores.ts";
import { loadFlow } from "../../runner/load.ts";
import { parseWith } from "../../runner/options.ts";
import { formatTime, table } from "./_client.ts";

type Kind = "string" | "boolean" | "list";
const COMMON: Record<string, Kind> = { flow: "string", datastore: "string", name: "string", branch: "string", production: "boolean", help: "boolean" };
const SUBCOMMANDS: Record<string, { description: string; flags: Record<string, Kind>; params?: boolean; positional?: string }> = {
  create: {
    description: "Compile the flow into a state machine and create or update it (with its @schedule and @triggerOnFinish)",
    flags: {
      tag: "list",
      with: "list",
      "max-workers": "string",
      "max-num-splits": "string",
      "only-json": "boolean",
      queue: "string",
      image: "string",
      role: "string",
      "job-role": "string",
      "events-role": "string",
    },
    params: true,
  },
  trigger: { description: "Start a production run: tsflow step-functions trigger flow.ts [--param value …] [--wait]", flags: { wait: "boolean" }, params: true },
  "list-runs": { description: "List the deployment's executions, newest first", flags: { status: "string", limit: "string", json: "boolean" } },
  terminate: { description: "Stop a production run: tsflow step-functions terminate flow.ts RUN", flags: {}, positional: "RUN" },
  delete: { description: "Delete the state machine, its schedule and its trigger rule", flags: {} },
};

interface Parsed {
  file?: string;
  rest: string[];
  flags: Record<string, string | boolean | string[]>;
  params: Record<string, string>;
}

function parse(sub: string, argv: string[]): Parsed {
  const spec = SUBCOMMANDS[sub]!;
  const known = { ...COMMON, ...spec.flags };
  const out: Parsed = { rest: [], flags: {}, params: {} };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h") {
      out.flags.help = true;
      continue;
    }
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const kind = known[name];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new TsflowError("BadOption", `option --${name} needs a value`);
      return v;
    };
    if (kind === "boolean") out.flags[name] = inline === undefined ? true : inline !== "false";
    else if (kind === "list") out.flags[name] = [...((out.flags[name] as string[]) ?? []), value()];
    else if (kind === "string") out.flags[name] = value();
    else if (spec.params) out.params[name] = value();
    else throw new TsflowError("BadOption", `step-functions ${sub} has no option --${name} (options: ${Object.keys(known).map((k) => `--${k}`).join(", ")})`);
  }
  out.file = positional[0];
  out.rest = positional.slice(1);
  return out;
}

const str = (v: unknown) => (typeof v === "string" ? v : undefined);
const num = (name: string, v: unknown) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new TsflowError("BadOption", `option --${name} must be a whole number of at least 1, got '${v}'`);
  return n;
};

function usage(): string {
  const lines = ["Usage: tsflow step-functions <command> FLOW_FILE [options]", "", "Commands:"];
  for (const [name, s] of Object.entries(SUBCOMMANDS)) lines.push(`  ${name.padEnd(10)} ${s.description}`);
  lines.push(
    "",
    "Common options: --datastore s3://bucket/prefix, --flow Name, --name STATE_MACHINE, --branch B and --production (@project)",
    "create: --queue Q --image I --role SFN_ROLE_ARN [--job-role ARN] [--events-role ARN] [--tag T] [--with D] [--max-workers N] [--only-json] [--param value …]",
    "See docs/production.md for the IAM roles and a full session.",
  );
  return `${lines.join("\n")}\n`;
}

export async function stepFunctionsMain(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "--help" || sub === "-h") {
    process.stdout.write(usage());
    return sub ? 0 : 2;
  }
  if (!SUBCOMMANDS[sub]) throw new TsflowError("BadOption", `unknown step-functions command '${sub}' (commands: ${Object.keys(SUBCOMMANDS).join(", ")})`);
  const a = parse(sub, rest);
  if (a.flags.help) {
    process.stdout.write(usage());
    return 0;
  }
  if (!a.file) throw new TsflowError("BadOption", `give the flow file: tsflow step-functions ${sub} flow.ts`);
  const host = nodeHost();
  const { flowClass, file, exportName } = await loadFlow(a.file, str(a.flags.flow));
  const info = loadFlowInfo(flowClass, a.file);
  const names = { name: str(a.flags.name), branch: str(a.flags.branch), production: a.flags.production === true };
  const deploy = await import("../../plugins/step-functions/deploy.ts");
  const datastore = str(a.flags.datastore) ?? process.env.TSFLOW_DATASTORE;
  const openStore = async () => {
    if (!datastore?.startsWith("s3://")) throw new TsflowError("BadOption", `[step-functions] production runs live in an S3 datastore: pass --datastore s3://bucket/prefix (or TSFLOW_DATASTORE), not '${datastore ?? "the local .tsflow"}'`);
    return openDatastore(datastore);
  };

  switch (sub) {
    case "create": {
      const store = await openStore();
      const out = await deploy.createDeployment(
        { info, flowClass, flowFile: file, exportName, store, host },
        {
          ...names,
          tags: (a.flags.tag as string[] | undefined) ?? [],
          with: parseWith((a.flags.with as string[] | undefined) ?? []),
          maxWorkers: num("max-workers", a.flags["max-workers"]),
          maxNumSplits: num("max-num-splits", a.flags["max-num-splits"]),
          parameters: a.params,
          onlyJson: a.flags["only-json"] === true,
          queue: str(a.flags.queue),
          image: str(a.flags.image),
          roleArn: str(a.flags.role),
          jobRoleArn: str(a.flags["job-role"]),
          eventsRoleArn: str(a.flags["events-role"]),
        },
      );
      if (a.flags["only-json"]) {
        process.stdout.write(`${JSON.stringify(out.definition, null, 2)}\n`);
        return 0;
      }
      process.stdout.write(`✔ State machine ${out.name} deployed: ${out.arn}\n`);
      if (out.schedule) process.stdout.write(`  schedule ${out.schedule} starts it (@schedule)\n`);
      if (out.rule) process.stdout.write(`  EventBridge rule ${out.rule} starts it when its upstream flows succeed (@triggerOnFinish)\n`);
      process.stdout.write(`  start a run: tsflow step-functions trigger ${a.file}${names.branch ? ` --branch ${names.branch}` : ""}${names.production ? " --production" : ""}\n`);
      return 0;
    }
    case "trigger": {
      const out = await deploy.trigger({ info, flowClass, host }, { ...names, parameters: a.params });
      process.stdout.write(`✔ Run ${info.name}/${out.runId} started on ${out.name}\n  execution: ${out.executionArn}\n`);
      if (!a.flags.wait) {
        process.stdout.write(`  follow it: tsflow step-functions list-runs ${a.file} · tsflow logs ${info.name}/${out.runId}/start\n`);
        return 0;
      }
      const status = await waitFor(out.executionArn);
      process.stdout.write(`${status === "SUCCEEDED" ? "✔" : "✖"} Run ${info.name}/${out.runId} ${status.toLowerCase()}\n`);
      if (status !== "SUCCEEDED") process.stdout.write(`  resume it locally: tsflow resume ${a.file} --origin-run-id ${out.runId} --datastore ${datastore ?? "s3://…"}\n`);
      return status === "SUCCEEDED" ? 0 : 1;
    }
    case "list-runs": {
      // With a datastore, runs whose execution ended unrecorded are marked so in run.json.
      const store = datastore?.startsWith("s3://") ? await openDatastore(datastore) : undefined;
      const out = await deploy.listRuns({ info, flowClass, host, store }, { ...names, status: str(a.flags.status), limit: num("limit", a.flags.limit) });
      if (a.flags.json) {
        process.stdout.write(`${JSON.stringify(out.runs, null, 2)}\n`);
        return 0;
      }
      if (out.runs.length === 0) {
        process.stdout.write(`No runs of ${out.name} yet\n`);
        return 0;
      }
      process.stdout.write(table(["RUN", "STATUS", "STARTED", "STOPPED"], out.runs.map((r) => [`${info.name}/${r.runId}`, r.status, formatTime(r.startedAt), formatTime(r.stoppedAt)])));
      return 0;
    }
    case "terminate": {
      const runId = a.rest[0];
      if (!runId) throw new TsflowError("BadOption", `give the run to stop: tsflow step-functions terminate ${a.file} RUN`);
      const store = await openStore();
      const out = await deploy.terminate({ info, flowClass, flowFile: file, exportName, store, host }, { ...names, runId: runId.split("/").at(-1)! });
      process.stdout.write(`✔ Run ${info.name}/${runId} terminated (${out.executionArn})\n`);
      return 0;
    }
    default: {
      const out = await deploy.removeDeployment({ info, flowClass, host }, names);
      process.stdout.write(`✔ State machine ${out.name} deleted, with its schedule and trigger rule\n`);
      return 0;
    }
  }
}

async function waitFor(executionArn: string): Promise<string> {
  const sdk = await import("@aws-sdk/client-sfn");
  const client = new sdk.SFNClient({ endpoint: process.env.TSFLOW_SFN_ENDPOINT || undefined, region: process.env.AWS_REGION ?? "us-east-1" });
  try {
    for (let delay = 200; ; delay = Math.min(5000, delay * 1.5)) {
      const out = await client.send(new sdk.DescribeExecutionCommand({ executionArn }));
      if (out.status !== "RUNNING") return out.status ?? "UNKNOWN";
      await new Promise((r) => setTimeout(r, delay));
    }
  } finally {
    client.destroy();
  }
}

export default defineCommand({
  meta: { name: "step-functions", description: "Deploy to AWS Step Functions: create, trigger, list-runs, terminate, delete (see --help)" },
  args: {},
  run: ({ rawArgs }) => stepFunctionsMain(rawArgs),
});
