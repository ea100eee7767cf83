import { defineCommand } from "citty";
import { putJson } from "../../core/_datastore.ts";
import { runKey } from "../../core/_layout.ts";
import { parsePathspec, type Run } from "../../core/client.ts";
import { TsflowError } from "../../core/errors.ts";
import { cliClient, datastoreArg } from "./_client.ts";

/** `tsflow tag add|remove|list Flow/run tag…`: user tags live in run.json `tags`. */
export default defineCommand({
  meta: { name: "tag", description: "Add, remove or list a run's tags: tsflow tag add|remove|list Flow/run tag…" },
  args: {
    action: { type: "positional", description: "add, remove or list", required: true },
    pathspec: { type: "positional", description: "Flow/run", required: true },
    ...datastoreArg,
  },
  async run({ args }) {
    const action = String(args.action);
    if (!["add", "remove", "list"].includes(action)) throw new TsflowError("BadOption", `unknown tag action '${action}': use add, remove or list`);
    const spec = String(args.pathspec);
    const [flow, id] = parsePathspec(spec, 2, 2);
    const tags = (args._ as string[]).slice(2).map(String);
    for (const t of tags) {
      if (t.length === 0 || t.length > 256 || /[\n\r]/.test(t)) throw new TsflowError("BadOption", `tag '${t.slice(0, 40)}' is invalid: tags are 1 to 256 characters on one line`);
    }
    const { client, store } = await cliClient(args.datastore);
    const run = (await client.Flow.get(flow!).run(id!)) as Run;
    if (action === "list") {
      process.stdout.write(`${run.tags.join("\n")}${run.tags.length ? "\n" : ""}`);
      return 0;
    }
    if (tags.length === 0) throw new TsflowError("BadOption", `give the tags to ${action}: tsflow tag ${action} ${spec} TAG…`);
    const next = action === "add" ? [...new Set([...run.tags, ...tags])] : run.tags.filter((t) => !tags.includes(t));
    // A put is atomic on every datastore: readers see the old run.json or the new one.
    await putJson(store, runKey(flow!, id!), { ...run.doc, tags: next });
    process.stdout.write(`${run.pathspec}: ${next.join(" ") || "(no tags)"}\n`);
    return 0;
  },
});
