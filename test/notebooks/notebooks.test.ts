/**
 * The example notebooks, executed headless by Jupyter (Debian's jupyter-nbconvert) on Deno's
 * kernel, exactly as a reader would run them; then their outputs are checked. And a flow cell
 * edited and run again runs the new code in fresh worker processes.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../_helpers.ts";

const NB_DIR = join(ROOT, "examples", "notebooks");
// Debian's Jupyter lives in the system Python, which may not be the first python3 on PATH.
const PY = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" }).status === 0;
// This checkout's deno (npm's deno package), the kernel the notebooks are executed on.
const DENO = join(ROOT, "node_modules", ".bin", "deno");
const kernelReady = has("jupyter-nbconvert", ["--version"]) && existsSync(DENO);
const why = "needs jupyter-nbconvert and npm's deno (.ci/run installs both: apt-get install jupyter-nbconvert; npm ci)";

const work = mkdtempSync(join(tmpdir(), "tsflow-nb-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// The kernelspec `deno` that `npx deno jupyter --install` writes is per user, not per checkout:
// it names the deno of whichever clone installed it last, and a clone removed since leaves it
// pointing nowhere ("No such file .../deno"), so the tests failed or ran another clone's deno.
// They run this checkout's deno through a kernelspec of their own: JUPYTER_PATH comes first in
// Jupyter's search, so it shadows the user's `deno` for these processes only.
const jupyterPath = join(work, "jupyter");
mkdirSync(join(jupyterPath, "kernels", "deno"), { recursive: true });
writeFileSync(
  join(jupyterPath, "kernels", "deno", "kernel.json"),
  JSON.stringify({ argv: [DENO, "jupyter", "--kernel", "--conn", "{connection_file}"], display_name: "Deno", language: "typescript" }),
);
/** The environment of a notebook's execution: its own datastore, this checkout's kernel. */
const nbEnv = (store: string) => ({ ...process.env, TSFLOW_DATASTORE: store, JUPYTER_PATH: [jupyterPath, process.env.JUPYTER_PATH].filter(Boolean).join(":") });

interface Output {
  output_type: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
}
const join_ = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join("") : (v ?? ""));
const outputsOf = (cell: Cell) => (cell.outputs ?? []).map((o) => join_(o.text) + Object.values(o.data ?? {}).map(join_).join("\n")).join("\n");
const errorsOf = (cells: Cell[]) => cells.flatMap((c) => (c.outputs ?? []).filter((o) => o.output_type === "error").map((o) => `${o.ename}: ${o.evalue}`));
/** The code cell whose source starts with `start`. */
const cell = (cells: Cell[], start: string) => {
  const found = cells.filter((c) => c.cell_type === "code" && join_(c.source).startsWith(start));
  expect(found.length, `one cell starting with ${start}`).toBeGreaterThan(0);
  return found;
};

/** Runs a notebook in `cwd` (the kernel's working directory) with its own datastore; returns the executed cells. */
function execute(notebook: string, cwd: string, store: string): Cell[] {
  const out = join(work, `out-${Math.random().toString(36).slice(2)}.ipynb`);
  // nbclient (what nbconvert --execute uses) with an explicit working directory, so a notebook
  // written to a temp dir still runs beside the project's deno.json.
  execFileSync(
    PY,
    [
      "-c",
      "import sys, nbformat, nbclient; nb = nbformat.read(sys.argv[1], as_version=4); nbclient.NotebookClient(nb, timeout=600, startup_timeout=180, kernel_name='deno', allow_errors=True, resources={'metadata': {'path': sys.argv[2]}}).execute(); nbformat.write(nb, sys.argv[3])",
      notebook,
      cwd,
      out,
    ],
    { env: nbEnv(store), stdio: ["ignore", "ignore", "pipe"], timeout: 600_000 },
  );
  return (JSON.parse(readFileSync(out, "utf8")) as { cells: Cell[] }).cells;
}

// Deno 2.9's kernel sometimes lets a cell finish before the display of its last value is sent, and
// nbclient then drops that output (seen under load; docs/notebooks.md). A notebook whose outputs
// come back incomplete is executed again, up to twice, before the test fails; each attempt on a
// datastore of its own (the explore notebook counts the runs it finds).
const RETRY = 2;

describe.skipIf(!kernelReady)(`notebooks on Deno's kernel (${kernelReady ? "ready" : why})`, () => {
  it("quickstart.ipynb: runs PetsFlow on workers, shows the run, the live handle, a failure and its resume", { timeout: 600_000, retry: RETRY }, () => {
    // The very command the docs give, on the committed notebook.
    // A fresh store per attempt: a retry must not see the runs of the attempt before it.
    const store = mkdtempSync(join(work, "qs-store-"));
    execFileSync("jupyter-nbconvert", ["--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=600", "--output-dir", work, "--output", "quickstart.out", join(NB_DIR, "quickstart.ipynb")], {
      env: nbEnv(store),
      stdio: ["ignore", "ignore", "pipe"],
      timeout: 600_000,
    });
    const cells = (JSON.parse(readFileSync(join(work, "quickstart.out.ipynb"), "utf8")) as { cells: Cell[] }).cells;
    expect(errorsOf(cells)).toEqual([]);
    const [runCell] = cell(cells, "const run = await runFlow(PetsFlow");
    const runHtml = outputsOf(runCell!);
    expect(runHtml).toContain('<svg class="dag"');
    expect(runHtml).toMatch(/data-step="join" data-state="succeeded"/);
    expect(runHtml).toContain("<th>Parameter</th>");
    expect(runHtml).toMatch(/greeting<\/td><td><code>hello/);
    expect(outputsOf(cell(cells, "console.log(String(run))")[0]!)).toMatch(/Run PetsFlow\/\S+ succeeded .*\n\[ "dogs", "cats", "lions", "wolves" \]/);
    // The join task: its logs, its artifacts; the artifact: a tree.
    const joinTask = outputsOf(cell(cells, 'await Deno.jupyter.display(await run.step("join")')[0]!);
    expect(joinTask).toContain("Good pets (a) are dogs, cats");
    expect(joinTask).toContain("<h4>Artifacts</h4>");
    expect(outputsOf(cell(cells, "await Deno.jupyter.display(await (await run.endTask())")[0]!)).toContain("Array(4)");
    // The live handle's line ended on the finished run.
    expect(outputsOf(cell(cells, "const handle = startFlow")[0]!)).toMatch(/PetsFlow\/\S+ succeeded in [\d.]+ s · 5 of 5 tasks done/);
    const [failedCell, fixedCell] = cell(cells, "class PetsFlow extends FlowSpec");
    const failed = outputsOf(failedCell!);
    expect(failed).toContain("no wild animals today");
    expect(failed).toMatch(/data-step="b" data-state="failed"/);
    const fixed = outputsOf(fixedCell!);
    expect(fixed).toMatch(/succeeded .*\[ "dogs", "cats", "budgies", "hamsters" \]/);
    expect(fixed).toMatch(/<td>start<\/td><td>.*?<\/td><td>1 \(1 cloned\)/);
  });

  it("explore.ipynb: the client across runs, a records table, a Vega-Lite chart, a card", { timeout: 600_000, retry: RETRY }, () => {
    const store = mkdtempSync(join(work, "ex-store-"));
    execFileSync("jupyter-nbconvert", ["--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=600", "--output-dir", work, "--output", "explore.out", join(NB_DIR, "explore.ipynb")], {
      env: nbEnv(store),
      stdio: ["ignore", "ignore", "pipe"],
      timeout: 600_000,
    });
    const cells = (JSON.parse(readFileSync(join(work, "explore.out.ipynb"), "utf8")) as { cells: Cell[] }).cells;
    expect(errorsOf(cells)).toEqual([]);
    expect(outputsOf(cell(cells, "class ScoresFlow")[0]!).match(/succeeded/g)).toHaveLength(3);
    const flow = outputsOf(cell(cells, 'await Deno.jupyter.display(Flow.get("ScoresFlow"))')[0]!);
    expect(flow.match(/rate&#34;:0\.(05|1|3)/g)).toHaveLength(3);
    expect(outputsOf(cell(cells, "const rows = []")[0]!)).toContain("3 runs");
    const table = outputsOf(cell(cells, "const latest")[0]!);
    expect(table).toContain("20 records");
    expect(table).toContain("<th>epoch</th><th>loss</th>");
    const chart = outputsOf(cell(cells, "await Deno.jupyter.display(htmlFrame(await vegaLiteHtml")[0]!);
    expect(chart).toContain("<iframe");
    expect(chart).toContain("final loss by learning rate");
    const card = outputsOf(cell(cells, "await Deno.jupyter.display((await (await latest")[0]!);
    expect(card).toContain("<iframe");
    expect(card).toMatch(/Final loss/);
  });

  it("a flow cell edited and run again runs the new code on new workers", { timeout: 600_000, retry: RETRY }, () => {
    const flowCell = (word: string) =>
      `class EditFlow extends FlowSpec {\n  word = "";\n  pid = 0;\n  @step start() { this.word = ${JSON.stringify(word)}; this.pid = process.pid; this.next(this.end); }\n  @step end() { console.log("said", this.word); }\n}\nconst r = await runFlow(EditFlow);\nconsole.log("result", await r.data("word"), "kernel", process.pid, "worker", await r.data("pid"));`;
    const code = (source: string, id: string) => ({ cell_type: "code", id, metadata: {}, outputs: [], execution_count: null, source });
    const nb = {
      cells: [
        code('import { FlowSpec, step, runFlow } from "tsflow";', "a"),
        code(flowCell("before"), "b"),
        code(flowCell("after"), "c"),
        // console.log of a run: one short line, no internals.
        code("console.log(r);", "d"),
        // A name that cannot be rebuilt in a worker is refused, by name, before anything runs.
        code(
          'import * as path from "node:path";\nclass BadFlow extends FlowSpec {\n  sep = "";\n  @step start() { this.sep = path.sep; this.next(this.end); }\n  @step end() {}\n}\ntry { await runFlow(BadFlow); } catch (e) { console.log("refused:", (e as Error).message); }',
          "e",
        ),
      ],
      metadata: { kernelspec: { name: "deno", display_name: "Deno", language: "typescript" } },
      nbformat: 4,
      nbformat_minor: 5,
    };
    const file = join(work, "edit.ipynb");
    writeFileSync(file, JSON.stringify(nb));
    const cells = execute(file, NB_DIR, mkdtempSync(join(work, "edit-store-")));
    expect(errorsOf(cells)).toEqual([]);
    const first = /result (\w+) kernel (\d+) worker (\d+)/.exec(outputsOf(cells[1]!));
    const second = /result (\w+) kernel (\d+) worker (\d+)/.exec(outputsOf(cells[2]!));
    expect(first?.[1]).toBe("before");
    expect(second?.[1]).toBe("after");
    // The steps ran in worker processes, not in the kernel.
    expect(first?.[3]).not.toBe(first?.[2]);
    expect(second?.[3]).not.toBe(second?.[2]);
    expect(outputsOf(cells[3]!).trim()).toMatch(/^Run EditFlow\/\S+ succeeded in [\d.]+ (ms|s)$/);
    expect(outputsOf(cells[4]!)).toContain("refused: flow BadFlow (defined without a file, e.g. in a notebook cell) uses 'path' from the notebook, which worker processes cannot rebuild (an imported module)");
  });
});
