import { defineCommand } from "citty";
import type { Run } from "../../core/client.ts";
import { cliClient, datastoreArg, formatDuration, formatTime, table } from "./_client.ts";

export default defineCommand({
  meta: { name: "runs", description: "List runs, newest first: tsflow runs [FLOW]" },
  args: {
    flow: { type: "positional", description: "Only this flow (default: every flow)", required: false },
    ...datastoreArg,
    limit: { type: "string", description: "Runs per flow (default 20)" },
    tag: { type: "string", description: "Only runs with this tag" },
  },
  async run({ args }) {
    const { client, store } = await cliClient(args.datastore);
    const limit = Math.max(1, Number(args.limit ?? 20) || 20);
    const flows = args.flow ? [client.Flow.get(String(args.flow))] : await client.Flow.list();
    if (args.flow) await flows[0]!.ensureExists();
    if (flows.length === 0) {
      process.stdout.write(`No runs in ${store.url}\n`);
      return 0;
    }
    const rows: string[][] = [];
    for (const flow of flows) {
      const runs: Run[] = await flow.runs({ limit, tags: args.tag ? [String(args.tag)] : undefined });
      for (const r of runs) {
        const status = r.abandoned ? "failed (abandoned)" : r.status;
        const end = r.finishedAt?.getTime() ?? (r.finished ? undefined : Date.now());
        rows.push([r.pathspec, status, formatTime(r.createdAt), formatDuration(end === undefined ? undefined : end - r.createdAt.getTime()), [...r.tags, ...(r.originRunId ? [`resumed:${r.originRunId}`] : [])].join(" ")]);
      }
    }
    process.stdout.write(table(["RUN", "STATUS", "STARTED", "DURATION", "TAGS"], rows));
    return 0;
  },
});
