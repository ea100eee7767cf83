/**
 * `tsflow exit-hooks flow.ts RUN_ID`: runs the flow's `@exitHook` functions for a run that has
 * ended. Local runs call them themselves; a production deployment (Step Functions) runs this as
 * its last state, after the run's status is final. A failing hook is reported, and the exit
 * code stays 0 unless the hooks could not run at all (no such flow or run).
 */
import { defineCommand } from "citty";
import { getJson } from "../../core/_datastore.ts";
import { runKey } from "../../core/_layout.ts";
import { TsflowError } from "../../core/errors.ts";
import { exitHooksOf, runExitHooks } from "../../core/exit-hooks.ts";
import nodeHost from "../../plugins/host/node.ts";
import { loadFlow } from "../../runner/load.ts";
import { openDatastore } from "../../runner/stores.ts";
import { datastoreArg } from "./_client.ts";

export default defineCommand({
  meta: { name: "exit-hooks", description: "Run a flow's @exitHook functions for a run that has ended: tsflow exit-hooks flow.ts RUN_ID" },
  args: {
    file: { type: "positional", description: "The flow file", required: true },
    run: { type: "positional", description: "The run id", required: true },
    flow: { type: "string", description: "Named export of the flow class" },
    ...datastoreArg,
  },
  async run({ args }) {
    const { flowClass } = await loadFlow(String(args.file), args.flow as string | undefined);
    const store = await openDatastore(args.datastore as string | undefined);
    const run = await getJson<{ status?: string }>(store, runKey(flowClass.name, String(args.run)));
    if (!run) throw new TsflowError("NotFound", `run ${flowClass.name}/${args.run} is not in datastore ${store.url}`);
    const hooks = exitHooksOf(flowClass);
    if (hooks.onSuccess.length + hooks.onError.length === 0) {
      process.stdout.write(`${flowClass.name} has no @exitHook\n`);
      return 0;
    }
    const outcomes = await runExitHooks(flowClass, { store, host: nodeHost(), flowName: flowClass.name, runId: String(args.run), report: (m) => process.stderr.write(`✖ ${m}\n`) });
    for (const o of outcomes) if (o.ok) process.stdout.write(`✔ exit hook ${o.kind} '${o.hook}' of ${flowClass.name}/${args.run}\n`);
    return 0;
  },
});
