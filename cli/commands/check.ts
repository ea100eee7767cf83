import { defineCommand } from "citty";
import { plural } from "./_client.ts";
import { inspectFlow } from "../../core/graph.ts";
import { loadFlow } from "../../runner/load.ts";

export default defineCommand({
  meta: { name: "check", description: "Validate a flow's graph; one line per broken rule, non-zero exit when any" },
  args: {
    file: { type: "positional", description: "The flow file", required: true },
    flow: { type: "string", description: "Named export of the flow class" },
  },
  async run({ args }) {
    const { flowClass } = await loadFlow(args.file, args.flow);
    const info = inspectFlow(flowClass);
    if (info.issues.length === 0) {
      const steps = info.graph.order.length;
      process.stdout.write(`✔ ${info.name}: the graph is valid (${plural(steps, "step")}, ${plural(Object.keys(info.parameters).length, "parameter")})\n`);
      return 0;
    }
    process.stderr.write(`✖ ${info.name} in ${args.file}: ${info.issues.length} graph error${info.issues.length > 1 ? "s" : ""}\n`);
    for (const i of info.issues) process.stderr.write(`  step '${i.step}' [${i.rule}]: ${i.message}\n`);
    return 1;
  },
});
