import { defineCommand } from "citty";
import { deleteRun } from "../../core/gc.ts";
import { parsePathspec } from "../../core/client.ts";
import { cliClient, datastoreArg } from "./_client.ts";

export default defineCommand({
  meta: { name: "delete", description: "Delete a run's records and logs (its blobs go at the next tsflow gc): tsflow delete Flow/run" },
  args: {
    pathspec: { type: "positional", description: "Flow/run", required: true },
    ...datastoreArg,
  },
  async run({ args }) {
    const [flow, id] = parsePathspec(String(args.pathspec), 2, 2);
    const { store } = await cliClient(args.datastore);
    await deleteRun(store, flow!, id!);
    process.stdout.write(`Deleted ${flow}/${id}; run tsflow gc to free its blobs\n`);
    return 0;
  },
});
