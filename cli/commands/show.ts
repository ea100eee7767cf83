import { defineCommand } from "citty";
import { formatGraph, loadFlowInfo } from "../../core/graph.ts";
import { loadFlow } from "../../runner/load.ts";

export default defineCommand({
  meta: { name: "show", description: "Print a flow's steps, transitions and parameters without running it" },
  args: {
    file: { type: "positional", description: "The flow file", required: true },
    flow: { type: "string", description: "Named export of the flow class" },
  },
  async run({ args }) {
    const { flowClass } = await loadFlow(args.file, args.flow);
    process.stdout.write(`${formatGraph(loadFlowInfo(flowClass, args.file))}\n`);
    return 0;
  },
});
