/**
 * `tsflow resume FILE [STEP] [--origin-run-id ID]`: arguments in, terminal output and exit code
 * out; the resume itself is `resumeFlow` (runner/run.ts, planning in runner/resume.ts).
 */
import { defineCommand } from "citty";
import { TsflowError } from "../../core/errors.ts";
import { type FinishedRun, resumeFlow } from "../../runner/run.ts";
import { parseRunArgs } from "../args.ts";
import { runArgs, runInTerminal, runOptionsOf } from "./run.ts";

export default defineCommand({
  meta: { name: "resume", description: "Resume a failed run: tsflow resume flow.ts [STEP] [--origin-run-id ID]" },
  args: {
    ...runArgs,
    step: { type: "positional", description: "Re-run from this step (default: the step that failed)", required: false },
    "origin-run-id": { type: "string", description: "The run to resume (default: the latest run of the flow)" },
  },
  async run({ rawArgs }) {
    const flags = parseRunArgs(rawArgs);
    if (flags.help) return 0;
    if (Object.keys(flags.params).length > 0) {
      throw new TsflowError("BadParameter", `resume keeps the origin run's parameters; drop ${Object.keys(flags.params).map((p) => `--${p}`).join(", ")} (or start a new run)`);
    }
    if (flags.configs.length > 0) throw new TsflowError("BadConfig", `resume keeps the origin run's configs; drop --config ${flags.configs.join(" ")} (or start a new run)`);
    if (flags.rest.length > 1) throw new TsflowError("BadOption", `resume takes one step, got ${flags.rest.join(", ")}`);
    if (!flags.file) throw new TsflowError("BadOption", "give the flow file to resume, e.g. tsflow resume flows/pets.ts");
    const file = flags.file;
    let origin = "";
    let resumed: FinishedRun | undefined;
    const code = await runInTerminal(file, async (extra) => {
      resumed = await resumeFlow(file, {
        ...runOptionsOf(flags),
        originRunId: flags.originRunId,
        step: flags.rest[0],
        ...extra,
        onPlan(p) {
          origin = p.origin.pathspec;
          const rerun = [p.step, ...[...p.rerun].filter((s) => s !== p.step)];
          const partly = p.rerun.has(p.step) ? "" : ` (its successful tasks are cloned)`;
          process.stdout.write(`Resuming ${p.origin.pathspec} from step '${p.step}'${partly}: cloning the successful tasks before it, re-running ${rerun.join(", ")}\n`);
        },
      });
      return resumed;
    });
    const cloned = resumed?.cloned ?? new Map<string, number>();
    const total = [...cloned.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(`Cloned ${total} task${total === 1 ? "" : "s"} from ${origin}${total ? ` (${[...cloned].map(([s, n]) => `${s} ×${n}`).join(", ")})` : ""}; re-ran from '${resumed?.doc.resumedFrom}'\n`);
    return code;
  },
});
