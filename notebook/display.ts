/**
 * How the client's objects look in a notebook: the mimebundles Jupyter kernels show (Deno's
 * kernel asks each value for `[Symbol.for("Jupyter.display")]()`; core/client.ts forwards to
 * the renderer installed here). Runs draw the viewer's DAG (viewer/html.ts) coloured by status;
 * artifacts holding records become tables, image bytes images, other values a tree; cards are
 * their own self-contained documents in sandboxed frames.
 *
 * Outputs are read in JupyterLab, VS Code and on GitHub (which drops `<style>`): every colour that
 * carries meaning is an inline attribute, and the one style block is scoped to `.tsflow-nb`.
 */
import { Artifact, Card, Flow, type NotebookRenderer, Run, Step, Task } from "../core/client.ts";
import type { Datastore } from "../core/types.ts";
import { getRun, getTasks, type RunInfo, type TaskRow } from "../viewer/data.ts";
import { dagSvg, esc, fmtDur, fmtSize, fmtTime, type Links, stepStats } from "../viewer/html.ts";

const STYLE = `<style>.tsflow-nb{font:13px/1.45 system-ui,-apple-system,Segoe UI,sans-serif}.tsflow-nb table{border-collapse:collapse;margin:4px 0 8px}.tsflow-nb th,.tsflow-nb td{padding:3px 9px;border-bottom:1px solid #dde1e6;text-align:left;vertical-align:top}.tsflow-nb th{background:#eef1f4}.tsflow-nb pre{background:#11161c;color:#e3e8ee;padding:8px;max-height:260px;overflow:auto;white-space:pre-wrap;margin:4px 0}.tsflow-nb svg text{font:12px system-ui,sans-serif}.tsflow-nb details{margin-left:14px}.tsflow-nb h4{margin:10px 0 4px}</style>`;
const COLORS: Record<string, string> = { succeeded: "#2e9d57", failed: "#d0453a", abandoned: "#d0453a", running: "#2f6fd6", pending: "#9aa3ad" };
const pill = (s: string) => `<span style="display:inline-block;padding:0 8px;border-radius:9px;color:#fff;font-size:12px;background:${COLORS[s] ?? "#9aa3ad"}">${esc(s)}</span>`;
const wrap = (body: string) => `${STYLE}<div class="tsflow-nb">${body}</div>`;
const kv = (rows: [string, string][]) => `<table><tbody>${rows.map(([k, v]) => `<tr><td style="color:#66707c">${esc(k)}</td><td>${v}</td></tr>`).join("")}</tbody></table>`;
const short = (v: unknown, max = 80) => {
  const s = typeof v === "string" ? v : (JSON.stringify(v) ?? String(v));
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
};
/** Links in a notebook lead nowhere: the DAG's boxes are not links. */
const NO_LINKS: Links = { run: () => "", task: () => "", artifact: () => undefined, asset: () => "" };

/** tsflow's renderer of client objects; mod.ts installs it. */
export const notebookRenderer: NotebookRenderer = async (obj, store) => {
  if (obj instanceof Run) return { "text/html": await runHtml(obj, store) };
  if (obj instanceof Step) return { "text/html": await stepHtml(obj, store) };
  if (obj instanceof Task) return { "text/html": wrap(await taskHtml(obj)) };
  if (obj instanceof Artifact) return artifactBundle(obj.name, await obj.value());
  if (obj instanceof Card) return { "text/html": cardFrame(await obj.html()) };
  if (obj instanceof Flow) return { "text/html": await flowHtml(obj) };
  return {};
};

async function runInfo(run: Run, store: Datastore): Promise<{ info: RunInfo; tasks: TaskRow[] }> {
  const info = await getRun(store, run.flow, run.id);
  if (!info) throw new Error(`run ${run.pathspec} is not in ${store.url}`);
  return { info, tasks: await getTasks(store, info) };
}

/** Status, timings, parameters, the DAG coloured by status, the steps and the first failure. */
async function runHtml(run: Run, store: Datastore): Promise<string> {
  const { info, tasks } = await runInfo(run, store);
  const stats = stepStats(info, tasks);
  // The viewer's DAG, its labels made white by attribute (no stylesheet on GitHub).
  const dag = dagSvg(NO_LINKS, info, stats, {}).replaceAll('class="lbl"', 'class="lbl" fill="#fff"');
  const took = run.finishedAt ? run.finishedAt.getTime() - run.createdAt.getTime() : Date.now() - run.createdAt.getTime();
  const head = kv([
    ["Status", pill(info.state)],
    ["Started", esc(fmtTime(run.createdAt.getTime()))],
    ["Duration", esc(fmtDur(took))],
    ["Tasks", esc(String(tasks.length))],
    ...(run.tags.length ? ([["Tags", esc(run.tags.join(", "))]] as [string, string][]) : []),
    ...(run.originRunId ? ([["Resumed from", esc(run.originRunId)]] as [string, string][]) : []),
  ]);
  const params = Object.entries(run.parameters);
  const paramTable = params.length ? `<table><thead><tr><th>Parameter</th><th>Value</th></tr></thead><tbody>${params.map(([k, v]) => `<tr><td>${esc(k)}</td><td><code>${esc(short(v, 200))}</code></td></tr>`).join("")}</tbody></table>` : `<p style="color:#66707c">No parameters.</p>`;
  const steps = (info.graph?.order ?? []).map((name) => {
    const rows = tasks.filter((t) => t.step === name);
    const starts = rows.flatMap((t) => t.attempts.map((a) => a.startedAt ?? Infinity));
    const ends = rows.flatMap((t) => t.attempts.map((a) => a.finishedAt ?? -Infinity));
    const span = rows.length && Math.min(...starts) < Infinity && Math.max(...ends) > -Infinity ? Math.max(...ends) - Math.min(...starts) : undefined;
    const cloned = rows.filter((t) => t.done?.clonedFrom).length;
    return `<tr><td>${esc(name)}</td><td>${pill(stats[name]?.state ?? "pending")}</td><td>${rows.length}${cloned ? ` (${cloned} cloned)` : ""}</td><td>${esc(fmtDur(span))}</td></tr>`;
  });
  const err = info.error ? `<h4>Error</h4><pre style="color:#ffb4ab">${esc(`${info.error.pathspec ?? ""} ${info.error.type}: ${info.error.message}`)}</pre>` : "";
  return wrap(
    `<h4>Run ${esc(run.pathspec)}</h4><div style="display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start"><div>${head}<h4>Parameters</h4>${paramTable}<h4>Steps</h4><table><thead><tr><th>Step</th><th>Status</th><th>Tasks</th><th>Took</th></tr></thead><tbody>${steps.join("")}</tbody></table></div><div>${dag}</div></div>${err}`,
  );
}

async function flowHtml(flow: Flow): Promise<string> {
  const runs: Run[] = [];
  for await (const r of flow.runs()) {
    runs.push(r);
    if (runs.length >= 10) break;
  }
  const rows = runs.map((r) => `<tr><td>${esc(r.id)}</td><td>${pill(r.status)}</td><td>${esc(fmtTime(r.createdAt.getTime()))}</td><td>${esc(r.finishedAt ? fmtDur(r.finishedAt.getTime() - r.createdAt.getTime()) : "")}</td><td><code>${esc(short(r.parameters))}</code></td></tr>`);
  return wrap(`<h4>Flow ${esc(flow.name)}: latest runs</h4><table><thead><tr><th>Run</th><th>Status</th><th>Started</th><th>Duration</th><th>Parameters</th></tr></thead><tbody>${rows.join("")}</tbody></table>`);
}

async function stepHtml(step: Step, store: Datastore): Promise<string> {
  const tasks = await step.tasks().toArray();
  if (tasks.length === 1) return wrap(`<h4>Step ${esc(step.pathspec)}</h4>${await taskHtml(tasks[0]!)}`);
  const info = await getRun(store, step.run.flow, step.run.id);
  const ids = tasks.map((t) => ({ step: step.name, task: t.id }));
  const rows = info ? await getTasks(store, info, ids) : [];
  const body = rows
    .map((t) => {
      const first = t.attempts[0]?.startedAt;
      const last = t.attempts.at(-1)?.finishedAt;
      return `<tr><td>${esc(t.task)}</td><td>${pill(t.state)}</td><td>${t.attempts.length}</td><td>${esc(fmtTime(first))}</td><td>${esc(fmtDur(first && last ? last - first : undefined))}</td></tr>`;
    })
    .join("");
  const failed = tasks.filter((t) => t.exception);
  const errors = failed.map((t) => `<pre style="color:#ffb4ab">${esc(`${t.pathspec} ${t.exception!.type}: ${t.exception!.message}`)}</pre>`).join("");
  return wrap(`<h4>Step ${esc(step.pathspec)}: ${tasks.length} tasks</h4><table><thead><tr><th>Task</th><th>Status</th><th>Attempts</th><th>Started</th><th>Duration</th></tr></thead><tbody>${body}</tbody></table>${errors}`);
}

/** Status and timings, artifacts (small values inline), the logs' last lines, the error, the cards. */
async function taskHtml(task: Task): Promise<string> {
  const started = task.startedAt?.getTime();
  const ended = task.finishedAt?.getTime();
  const head = kv([
    ["Task", esc(task.pathspec)],
    ["Status", pill(task.successful ? "succeeded" : task.finished ? "failed" : "running")],
    ["Attempt", esc(String(task.attempt))],
    ["Started", esc(fmtTime(started))],
    ["Duration", esc(fmtDur(started && ended ? ended - started : undefined))],
    ...(task.clonedFrom ? ([["Cloned from", esc(task.clonedFrom)]] as [string, string][]) : []),
  ]);
  const arts = await task.artifacts();
  const artRows = await Promise.all(
    arts.map(async (a) => {
      let preview = "";
      if (a.size <= 4096) {
        try {
          const v = await a.value();
          preview = v instanceof Uint8Array ? `${v.byteLength} bytes` : short(v);
        } catch (e) {
          preview = `(cannot load: ${(e as Error).message})`;
        }
      }
      return `<tr><td>${esc(a.name)}</td><td>${esc(a.type)}</td><td>${esc(fmtSize(a.size))}</td><td><code>${esc(preview)}</code></td></tr>`;
    }),
  );
  const artTable = arts.length ? `<h4>Artifacts</h4><table><thead><tr><th>Name</th><th>Type</th><th>Size</th><th>Value</th></tr></thead><tbody>${artRows.join("")}</tbody></table>` : "";
  const logs: string[] = [];
  for (const stream of ["stdout", "stderr"] as const) {
    const tail = await task.logTail(stream, 8192).catch(() => undefined);
    if (tail?.text) logs.push(`<h4>${stream}${tail.truncated ? ` (last ${fmtSize(tail.text.length)} of ${fmtSize(tail.size)})` : ""}</h4><pre>${esc(tail.text)}</pre>`);
  }
  const e = task.exception;
  const err = e ? `<h4>Error</h4><pre style="color:#ffb4ab">${esc(`${e.type}: ${e.message}\n${e.stack ?? ""}`)}</pre>` : "";
  const cards = await task.cards().catch(() => []);
  const frames = await Promise.all(cards.map(async (c) => `<h4>Card ${esc(c.id)}</h4>${cardFrame(await c.html())}`));
  return `${head}${err}${artTable}${logs.join("")}${frames.join("")}`;
}

/** A card document in a sandboxed frame: its scripts run, but apart from the notebook. */
function cardFrame(html: string): string {
  return `<iframe sandbox="allow-scripts" style="width:100%;height:420px;border:1px solid #dde1e6;background:#fff" srcdoc="${esc(html)}"></iframe>`;
}

const IMAGE_TYPES: [string, (b: Uint8Array) => boolean][] = [
  ["image/png", (b) => b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47],
  ["image/jpeg", (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff],
  ["image/gif", (b) => b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46],
];

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** An artifact's value: records → a table, image bytes → an image, anything else → a tree. */
export function artifactBundle(name: string, value: unknown): Record<string, unknown> {
  if (value instanceof Uint8Array) {
    const image = IMAGE_TYPES.find(([, test]) => test(value));
    if (image) return { [image[0]]: base64(value) };
    return { "text/html": wrap(`<b>${esc(name)}</b>: ${value.byteLength} bytes<pre>${esc(hexHead(value))}</pre>`) };
  }
  if (isRecords(value)) return { "text/html": wrap(`<b>${esc(name)}</b>: ${value.length} records${recordsTable(value)}`) };
  return { "text/html": wrap(`<b>${esc(name)}</b>${tree(value, 0)}`) };
}

function hexHead(b: Uint8Array): string {
  return Array.from(b.subarray(0, 64), (x) => x.toString(16).padStart(2, "0")).join(" ") + (b.length > 64 ? " …" : "");
}

const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);
const isRecords = (v: unknown): v is Record<string, unknown>[] => Array.isArray(v) && v.length > 0 && v.every(isPlain);

function recordsTable(rows: Record<string, unknown>[], max = 100): string {
  const cols = [...new Set(rows.slice(0, max).flatMap((r) => Object.keys(r)))];
  const body = rows
    .slice(0, max)
    .map((r) => `<tr>${cols.map((c) => `<td>${esc(r[c] === undefined ? "" : short(r[c], 60))}</td>`).join("")}</tr>`)
    .join("");
  const more = rows.length > max ? `<p style="color:#66707c">… and ${rows.length - max} more rows</p>` : "";
  return `<table><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>${body}</tbody></table>${more}`;
}

/** A collapsible tree: the first levels open, long collections cut. */
function tree(v: unknown, depth: number): string {
  const leaf = (s: string, color: string) => `<code style="color:${color}">${esc(s)}</code>`;
  if (v === null || v === undefined) return leaf(String(v), "#66707c");
  if (typeof v === "string") return leaf(JSON.stringify(v.length > 500 ? `${v.slice(0, 500)}…` : v), "#2e7d32");
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return leaf(String(v), "#1565c0");
  if (v instanceof Date) return leaf(v.toISOString(), "#1565c0");
  if (v instanceof Uint8Array) return leaf(`<${v.byteLength} bytes>`, "#66707c");
  if (depth > 6) return leaf(short(v), "#66707c");
  const entries: [string, unknown][] = v instanceof Map ? [...v.entries()].map(([k, x]) => [short(k, 40), x]) : v instanceof Set ? [...v].map((x, i) => [String(i), x]) : Object.entries(v as object);
  const label = Array.isArray(v) ? `Array(${v.length})` : v instanceof Map ? `Map(${v.size})` : v instanceof Set ? `Set(${v.size})` : `{${entries.length} keys}`;
  const items = entries
    .slice(0, 200)
    .map(([k, x]) => `<div><span style="color:#7a3e9d">${esc(k)}</span>: ${tree(x, depth + 1)}</div>`)
    .join("");
  const more = entries.length > 200 ? `<div style="color:#66707c">… ${entries.length - 200} more</div>` : "";
  return `<details${depth < 2 ? " open" : ""}><summary>${esc(label)}</summary>${items}${more}</details>`;
}

/**
 * A self-contained HTML document (a `vegaLiteHtml` chart, a `cardHtml` card) as notebook output:
 * shown in a sandboxed frame, so its scripts run apart from the notebook's page.
 */
export function htmlFrame(html: string, options: { height?: number } = {}): { [k: symbol]: () => Record<string, unknown>; toString(): string } {
  const bundle = { "text/html": `<iframe sandbox="allow-scripts" style="width:100%;height:${options.height ?? 420}px;border:0;background:#fff" srcdoc="${esc(html)}"></iframe>`, "text/plain": `<HTML document, ${html.length} characters>` };
  return { [Symbol.for("Jupyter.display")]: () => bundle, toString: () => bundle["text/plain"] };
}
