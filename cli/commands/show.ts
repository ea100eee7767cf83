import { defineCommand } from "citty";
import { applyConfig, readConfig } from "../../core/config.ts";
import { TsflowError } from "../../core/errors.ts";
import { containsConfigRef } from "../../core/flow.ts";
import { formatGraph, loadFlowInfo } from "../../core/graph.ts";
import { loadFlow } from "../../runner/load.ts";
import nodeHost from "../../plugins/host/node.ts";
import { parseConfigFlags, parseRunArgs } from "../args.ts";

export default defineCommand({
  meta: { name: "show", description: "Print a flow's steps, transitions, parameters and configs without running it" },
  args: {
    file: { type: "positional", description: "The flow file", required: true },
    flow: { type: "string", description: "Named export of the flow class" },
    config: { type: "string", description: "A config of the flow, as `run` takes it: NAME=FILE or NAME=<inline JSON> (repeatable)" },
  },
  async run({ args, rawArgs }) {
    const flags = parseRunArgs(rawArgs);
    const { flowClass } = await loadFlow(args.file, args.flow);
    const declared = loadFlowInfo(flowClass, args.file);
    const given = parseConfigFlags(flags.configs);
    const specs = Object.values(declared.parameters).filter((p) => p.kind === "config");
    for (const name of Object.keys(given)) {
      if (!specs.some((s) => s.name === name)) throw new TsflowError("BadConfig", `flow ${declared.name} has no config '${name}'${specs.length ? ` (it has ${specs.map((s) => s.name).join(", ")})` : ""}`);
    }
    // The configs a run would read now, and the graph with their values in decorator arguments.
    const values: Record<string, unknown> = {};
    for (const spec of specs) values[spec.name] = await readConfig(spec, given[spec.name], nodeHost());
    const info = applyConfig(declared, values);
    let text = formatGraph(info);
    if (specs.length) {
      const lines = specs.map((s) => `  ${s.name} (${given[s.name] !== undefined ? (/^\s*[[{]/.test(given[s.name]!) ? "inline" : given[s.name]) : (s.default ?? "default value")}) = ${JSON.stringify(values[s.name]) ?? "undefined"}`);
      const resolved = Object.entries(declared.graph.nodes).flatMap(([name, node]) =>
        Object.entries(node.decorators)
          .filter(([, opts]) => containsConfigRef(opts))
          .map(([d]) => `  ${name}: @${d}(${JSON.stringify(info.graph.nodes[name]!.decorators[d])})`),
      );
      text += `\n\nConfigs:\n${lines.join("\n")}`;
      if (resolved.length) text += `\n\nDecorator arguments from configs:\n${resolved.join("\n")}`;
    }
    process.stdout.write(`${text}\n`);
    return 0;
  },
});
