import { defineCommand } from "citty";
import { parsePathspec, type Run } from "../../core/client.ts";
import { TsflowError } from "../../core/errors.ts";
import { cliClient, datastoreArg } from "./_client.ts";

const ACTIONS = ["add", "remove", "replace", "list"];

/**
 * `tsflow tag add|remove|replace|list Flow/run tag…`: user tags live in run.json `tags`; the
 * system tags tsflow sets (`user:…`, `runtime:…`) are shown apart and cannot be changed.
 */
export default defineCommand({
  meta: { name: "tag", description: "Add, remove, replace or list a run's tags: tsflow tag add|remove|list Flow/run TAG… · tsflow tag replace Flow/run OLD NEW" },
  args: {
    action: { type: "positional", description: "add, remove, replace (OLD NEW) or list", required: true },
    pathspec: { type: "positional", description: "Flow/run", required: true },
    ...datastoreArg,
  },
  async run({ args }) {
    const action = String(args.action);
    if (!ACTIONS.includes(action)) throw new TsflowError("BadOption", `unknown tag action '${action}': use ${ACTIONS.join(", ")}`);
    const spec = String(args.pathspec);
    const [flow, id] = parsePathspec(spec, 2, 2);
    const tags = (args._ as string[]).slice(2).map(String);
    for (const t of tags) {
      if (t.length === 0 || t.length > 256 || /[\n\r]/.test(t)) throw new TsflowError("BadOption", `tag '${t.slice(0, 40)}' is invalid: tags are 1 to 256 characters on one line`);
    }
    const { client } = await cliClient(args.datastore);
    const run = (await client.Flow.get(flow!).run(id!)) as Run;
    if (action === "list") {
      if (tags.length) throw new TsflowError("BadOption", `tag list takes no tags: tsflow tag list ${spec}`);
      const lines = (title: string, list: string[]) => `${title}:\n${list.length ? list.map((t) => `  ${t}\n`).join("") : "  (none)\n"}`;
      process.stdout.write(`${lines("User tags", run.tags)}${lines("System tags (set by tsflow)", run.systemTags)}`);
      return 0;
    }
    if (tags.length === 0) throw new TsflowError("BadOption", `give the tags to ${action}: tsflow tag ${action} ${spec} ${action === "replace" ? "OLD NEW" : "TAG…"}`);
    if (action === "replace" && tags.length !== 2) throw new TsflowError("BadOption", `tag replace takes two tags, OLD and NEW: tsflow tag replace ${spec} OLD NEW (got ${tags.length})`);
    // The client's tag methods: a change is a document of its own, so run.json (the
    // orchestrator's) is never rewritten and neither side can undo the other (core/_tags.ts).
    const next = action === "add" ? await run.addTag(...tags) : action === "replace" ? await run.replaceTag(tags[0]!, tags[1]!) : await run.removeTag(...tags);
    process.stdout.write(`${run.pathspec}: ${next.join(" ") || "(no tags)"}\n`);
    return 0;
  },
});
