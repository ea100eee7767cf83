/**
 * `runFlow(Flow)` without `{ file }` (issue #11 item 16) finds the flow's own file when tsflow
 * is installed from a symlinked checkout (npm link, workspaces), where tsflow's real path has
 * no node_modules in it, and never takes tsflow's own bundle for the flow.
 */
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { cli, exec, latestRun, ROOT, tempStore } from "../_helpers.ts";

it("runFlow(Flow) from a project whose tsflow is a symlink to a checkout runs the flow's file in workers", async () => {
  const project = mkdtempSync(join(tmpdir(), "tsflow-linked-"));
  mkdirSync(join(project, "node_modules"));
  symlinkSync(ROOT, join(project, "node_modules", "tsflow"));
  writeFileSync(join(project, "package.json"), JSON.stringify({ type: "module" }));
  writeFileSync(
    join(project, "flow.ts"),
    `import { FlowSpec, step } from "tsflow";
export class LinkedFlow extends FlowSpec {
  @step start() { console.log("start ran in pid", process.pid); this.next(this.end); }
  @step end() {}
}
`,
  );
  writeFileSync(
    join(project, "main.ts"),
    `import { runFlow } from "tsflow";
import { LinkedFlow } from "./flow.ts";
const run = await runFlow(LinkedFlow, { datastore: process.argv[2] });
console.log("status", run.status, run.error?.message ?? "");
console.log("main pid", process.pid);
`,
  );
  const ds = tempStore();
  const r = await exec([join(ROOT, "node_modules", ".bin", "tsx"), "main.ts", ds], { cwd: project, timeoutMs: 60_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/status succeeded/);
  const doc = latestRun(ds, "LinkedFlow");
  expect(doc.flowFile).toBe(join(project, "flow.ts"));
  // Found the file, so the tasks ran in worker processes, not inline in this one.
  const main = /main pid (\d+)/.exec(r.stdout)![1];
  const logs = await cli(["logs", `LinkedFlow/${doc.runId}/start`, "--datastore", ds]);
  const stdout = logs.stdout;
  expect(stdout).toMatch(/start ran in pid \d+/);
  expect(stdout).not.toContain(`pid ${main}\n`);
});
