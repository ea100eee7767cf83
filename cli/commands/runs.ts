import { defineCommand } from "citty";
import type { Run } from "../../core/client.ts";
import { cliClient, datastoreArg, formatDuration, formatTime, table } from "./_client.ts";

export default defineCommand({
  meta: { name: "runs", description: "List runs, newest first: yours, or everyone's with --all (tsflow runs [FLOW])" },
  args: {
    flow: { type: "positional", description: "Only this flow (default: every flow)", required: false },
    ...datastoreArg,
    all: { type: "boolean", description: "Runs of every user (default: yours, as the client's namespace)" },
    limit: { type: "string", description: "Runs per flow (default: 20)" },
    tag: { type: "string", description: "Only runs with this tag" },
  },
  async run({ args }) {
    // The client's namespace rule: your own runs (tagged user:<you>) unless --all.
    const { client, store } = await cliClient(args.datastore, { allNamespaces: Boolean(args.all) });
    const ns = client.getNamespace();
    const limit = Math.max(1, Number(args.limit ?? 20) || 20);
    const flows = args.flow ? [client.Flow.get(String(args.flow))] : await client.Flow.list();
    if (flows.length === 0) {
      process.stdout.write(`No runs in ${store.url}\n`);
      return 0;
    }
    const rows: string[][] = [];
    const damaged: string[] = [];
    for (const flow of flows) {
      const onDamaged = (id: string, e: Error) => damaged.push(`! ${flow.name}/${id}: damaged, skipped (${e.message.split(" in datastore ")[0]}); tsflow delete ${flow.name}/${id} removes it\n`);
      const runs: Run[] = await flow.runs({ limit, tags: args.tag ? [String(args.tag)] : undefined, onDamaged });
      for (const r of runs) {
        const failedAt = r.status === "failed" && r.error?.pathspec ? ` at ${r.error.pathspec.split("/").slice(1).join("/")}` : "";
        const status = r.abandoned ? "failed (abandoned)" : `${r.status}${failedAt}`;
        const end = r.finishedAt?.getTime() ?? (r.finished ? undefined : Date.now());
        const user = typeof r.doc.user === "string" ? r.doc.user : (r.systemTags.find((t) => t.startsWith("user:"))?.slice(5) ?? "-");
        const tags = [...r.tags, ...(r.originRunId ? [`resumed:${r.originRunId}`] : [])];
        rows.push([r.pathspec, status, user, formatTime(r.createdAt), formatDuration(end === undefined ? undefined : end - r.createdAt.getTime()), tags.join(" ")]);
      }
    }
    for (const line of damaged) process.stderr.write(line);
    // Only now, and only when nothing was listed: a flow with no runs at all is an error, one
    // with none in this namespace is not (checking first would list the runs twice).
    if (args.flow && rows.length === 0 && damaged.length === 0) await flows[0]!.ensureExists();
    if (rows.length === 0) {
      process.stdout.write(`No runs${ns ? ` in namespace ${ns}` : ""}${args.tag ? ` tagged ${args.tag}` : ""} in ${store.url}${ns ? " (tsflow runs --all shows every user's)" : ""}\n`);
      return 0;
    }
    process.stdout.write(table(["RUN", "STATUS", "USER", "STARTED", "DURATION", "TAGS"], rows));
    return 0;
  },
});
