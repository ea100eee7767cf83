import { defineCommand } from "citty";
import { deleteRun } from "../../core/gc.ts";
import { parsePathspec } from "../../core/client.ts";
import { cliClient, datastoreArg } from "./_client.ts";

export default defineCommand({
  meta: { name: "delete", description: "Delete a run's records and logs (its blobs go at the next tsflow gc): tsflow delete Flow/run" },
  args: {
    pathspec: { type: "positional", description: "Flow/run", required: true },
    "dry-run": { type: "boolean", description: "Only list what would be deleted" },
    ...datastoreArg,
  },
  async run({ args }) {
    const [flow, id] = parsePathspec(String(args.pathspec), 2, 2);
    const { store } = await cliClient(args.datastore);
    const dryRun = Boolean(args["dry-run"]);
    const r = await deleteRun(store, flow!, id!, { dryRun });
    const keys = `${r.deleted.length} key${r.deleted.length === 1 ? "" : "s"}`;
    if (dryRun) process.stdout.write(`Would delete ${flow}/${id}${r.damaged ? " (its run.json is damaged)" : ""}: ${keys}\n${r.deleted.map((k) => `  ${k}\n`).join("")}`);
    else process.stdout.write(`Deleted ${flow}/${id}${r.damaged ? " (its run.json was damaged)" : ""}: ${keys}; run tsflow gc to free its blobs\n`);
    if (r.kept.length) process.stdout.write(`Left ${r.kept.length} file${r.kept.length === 1 ? "" : "s"} tsflow did not write:\n${r.kept.map((k) => `  ${k}\n`).join("")}`);
    return 0;
  },
});
