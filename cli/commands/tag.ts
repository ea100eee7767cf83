import { defineCommand } from "citty";
import { changeTags, currentTags } from "../../core/_tags.ts";
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
    const { client, store } = await cliClient(args.datastore);
    const run = (await client.Flow.get(flow!).run(id!)) as Run;
    if (action === "list") {
      if (tags.length) throw new TsflowError("BadOption", `tag list takes no tags: tsflow tag list ${spec}`);
      const lines = (title: string, list: string[]) => `${title}:\n${list.length ? list.map((t) => `  ${t}\n`).join("") : "  (none)\n"}`;
      process.stdout.write(`${lines("User tags", run.tags)}${lines("System tags (set by tsflow)", run.systemTags)}`);
      return 0;
    }
    if (tags.length === 0) throw new TsflowError("BadOption", `give the tags to ${action}: tsflow tag ${action} ${spec} ${action === "replace" ? "OLD NEW" : "TAG…"}`);
    if (action === "replace" && tags.length !== 2) throw new TsflowError("BadOption", `tag replace takes two tags, OLD and NEW: tsflow tag replace ${spec} OLD NEW (got ${tags.length})`);
    const system = tags.filter((t) => run.systemTags.includes(t) && !run.tags.includes(t));
    if (system.length && action !== "add") throw new TsflowError("BadOption", `${system.map((t) => `'${t}'`).join(", ")} ${system.length > 1 ? "are system tags" : "is a system tag"} of ${run.pathspec}, set by tsflow: it cannot be removed`);
    // Removing (or replacing) a tag the run does not have is a typo to point out, not a no-op.
    const removed = action === "add" ? [] : action === "replace" ? [tags[0]!] : tags;
    const missing = removed.filter((t) => !run.tags.includes(t));
    if (missing.length) {
      throw new TsflowError("NotFound", `run ${run.pathspec} has no tag ${missing.map((t) => `'${t}'`).join(", ")} (its tags: ${run.tags.join(", ") || "none"}); nothing was changed`);
    }
    const added = action === "add" ? tags : action === "replace" ? [tags[1]!] : [];
    // A change is a document of its own: run.json (the orchestrator's) is never rewritten, so
    // neither this change nor the run's final status can undo the other (core/_tags.ts).
    await changeTags(store, flow!, id!, { add: added, remove: removed });
    const next = await currentTags(store, flow!, id!, run.doc.tags);
    process.stdout.write(`${run.pathspec}: ${next.join(" ") || "(no tags)"}\n`);
    return 0;
  },
});
