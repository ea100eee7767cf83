/**
 * Server-rendered pages. Every piece of user content goes through {@link esc} (or {@link attr}),
 * so a log line `<script>…` is text. Links come from a {@link Links} object, so the same pages
 * serve the live app and the static export.
 */
import { jsonText } from "../core/_json.ts";
import type { ArtifactRef } from "../core/types.ts";
import type { AttemptInfo, RunInfo, StepSummary, TaskDetail, TaskRow, TaskState } from "./data.ts";

export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
const attr = esc;

/** Where each page lives: the server's routes, or relative files in a static export. */
export interface Links {
  home?(): string;
  runs?(q?: Record<string, string>): string;
  run(flow: string, run: string, q?: Record<string, string>): string;
  task(flow: string, run: string, step: string, task: string, attempt?: number): string;
  /** `format`: raw (serialized blob), json, bytes; `undefined` when the export left it out. */
  artifact(flow: string, run: string, step: string, task: string, name: string, ref: ArtifactRef, format: "raw" | "json" | "bytes" | "image"): string | undefined;
  asset(name: "app.css" | "app.js"): string;
  /** A card's self-contained document (shown in a sandboxed frame); `undefined` leaves it out. */
  card?(flow: string, run: string, step: string, task: string, attempt: number, id: string): string | undefined;
  /** A card's live fragment as JSON (the served viewer only). */
  cardLive?(flow: string, run: string, step: string, task: string, attempt: number, id: string): string;
  live?(flow: string, run: string, step?: string, task?: string): string;
}

export const qs = (q?: Record<string, string | undefined>) => {
  const p = Object.entries(q ?? {}).filter(([, v]) => v !== undefined && v !== "");
  return p.length ? `?${p.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v!)}`).join("&")}` : "";
};

export function page(links: Links, title: string, body: string, live?: { url: string; sig: string }): string {
  const nav = [links.home ? `<a href="${attr(links.home())}"><b>tsflow</b></a>` : "<b>tsflow</b>", links.runs ? `<a href="${attr(links.runs())}">Runs</a>` : ""].join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)} · tsflow</title><link rel="stylesheet" href="${attr(links.asset("app.css"))}">${live ? `<meta name="tsflow-live" content="${attr(live.url)}" data-sig="${attr(live.sig)}">` : ""}
<script src="${attr(links.asset("app.js"))}" defer></script></head><body><header>${nav}</header><main>${body}</main></body></html>`;
}

export const status = (s: string) => `<span class="st st-${attr(s)}">${esc(s)}</span>`;
const tags = (ts: string[] | undefined) => (ts ?? []).map((t) => `<span class="tag">${esc(t)}</span>`).join("");

export function fmtTime(ms: number | undefined): string {
  if (!ms) return "";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}
export function fmtDur(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return m < 60 ? `${m} min ${Math.round((ms % 60_000) / 1000)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
export function fmtSize(n: number): string {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KB` : n < 1 << 30 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${(n / (1 << 30)).toFixed(2)} GB`;
}
const runDuration = (r: RunInfo) => (r.finishedAt ?? (r.state === "running" ? Date.now() : undefined)) !== undefined ? (r.finishedAt ?? Date.now()) - r.createdAt : undefined;
const params = (r: RunInfo) =>
  Object.entries(r.parameterValues ?? {})
    .map(([k, v]) => `<span class="tag">${esc(k)}=${esc(short(v))}</span>`)
    .join("");
const short = (v: unknown) => {
  const s = typeof v === "string" ? v : jsonText(v, { maxChars: 61, maxValues: 100, truncate: true });
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
};

export function runsTable(links: Links, runs: RunInfo[], showFlow = true): string {
  if (runs.length === 0) return `<p class="mute">No runs.</p>`;
  const rows = runs.map(
    (r) =>
      `<tr>${showFlow ? `<td>${esc(r.flow)}</td>` : ""}<td><a href="${attr(links.run(r.flow, r.runId))}">${esc(r.runId)}</a></td><td>${status(r.state)}</td><td>${fmtTime(r.createdAt)}</td><td>${fmtDur(runDuration(r))}</td><td>${tags(r.tags)}</td><td>${params(r)}</td></tr>`,
  );
  return `<table class="runs"><thead><tr>${showFlow ? "<th>Flow</th>" : ""}<th>Run</th><th>Status</th><th>Started</th><th>Duration</th><th>Tags</th><th>Parameters</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

// ---------------------------------------------------------------- DAG

export interface StepStat {
  counts: Record<TaskState, number>;
  total: number;
  expected?: number;
  state: TaskState;
  /** Counted from a listing, task states not read (a run too big for one page). */
  unread?: boolean;
}

export function stepStats(run: RunInfo, tasks: TaskRow[]): Record<string, StepStat> {
  const steps = run.graph?.steps ?? {};
  const out: Record<string, StepStat> = {};
  for (const name of run.graph?.order ?? []) out[name] = { counts: { pending: 0, running: 0, succeeded: 0, failed: 0 }, total: 0, state: "pending" };
  const splits: Record<string, number> = {};
  for (const t of tasks) {
    const s = (out[t.step] ??= { counts: { pending: 0, running: 0, succeeded: 0, failed: 0 }, total: 0, state: "pending" });
    s.counts[t.state]++;
    s.total++;
    if (t.done?.foreachCount !== undefined) splits[t.step] = (splits[t.step] ?? 0) + t.done.foreachCount;
  }
  for (const [name, spec] of Object.entries(steps)) {
    if (spec.foreach && spec.next[0] && out[spec.next[0]] && splits[name] !== undefined) out[spec.next[0]]!.expected = splits[name];
  }
  for (const s of Object.values(out)) {
    s.state = s.counts.failed ? "failed" : s.counts.running ? "running" : s.total === 0 ? "pending" : s.expected !== undefined && s.counts.succeeded < s.expected ? "running" : s.counts.pending ? "running" : "succeeded";
    if (s.state === "running" && run.state !== "running") s.state = s.counts.failed ? "failed" : "pending";
  }
  return out;
}

const COLORS: Record<TaskState, string> = { succeeded: "#2e9d57", failed: "#d0453a", running: "#2f6fd6", pending: "#9aa3ad" };

export function dagSvg(links: Links, run: RunInfo, stats: Record<string, StepStat>, firstTask: Record<string, string>): string {
  const order = run.graph?.order ?? [];
  const steps = run.graph?.steps ?? {};
  if (order.length === 0) return `<p class="mute">This run has no stored graph.</p>`;
  // Layer = longest path from the start; the graph is a DAG, so order.length passes suffice.
  const layer: Record<string, number> = Object.fromEntries(order.map((s) => [s, 0]));
  for (let pass = 0; pass < order.length; pass++) {
    let changed = false;
    for (const s of order) {
      for (const n of steps[s]?.next ?? []) {
        if (n in layer && layer[n]! < layer[s]! + 1) {
          layer[n] = layer[s]! + 1;
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  const layers: string[][] = [];
  for (const s of order) (layers[layer[s]!] ??= []).push(s);
  const W = 200, H = 58, GX = 24, GY = 30;
  const width = Math.max(...layers.map((l) => l.length)) * (W + GX) + GX;
  const pos: Record<string, { x: number; y: number }> = {};
  layers.forEach((l, i) => {
    const off = (width - l.length * (W + GX) + GX) / 2;
    l.forEach((s, j) => {
      pos[s] = { x: off + j * (W + GX), y: GY / 2 + i * (H + GY) };
    });
  });
  const height = layers.length * (H + GY);
  const edges: string[] = [];
  for (const s of order) {
    const spec: StepSummary | undefined = steps[s];
    for (const n of spec?.next ?? []) {
      const a = pos[s], b = pos[n];
      if (!a || !b) continue;
      const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
      const label = spec?.cases ? Object.entries(spec.cases).find(([, v]) => v === n)?.[0] : undefined;
      edges.push(`<path d="M${x1} ${y1} C${x1} ${y1 + GY / 2} ${x2} ${y2 - GY / 2} ${x2} ${y2 - 4}" fill="none" stroke="#8a95a3" stroke-width="1.5" marker-end="url(#arr)"${spec?.foreach ? ' stroke-dasharray="5 3"' : ""}/>`);
      if (label) edges.push(`<text x="${(x1 + x2) / 2 + 4}" y="${(y1 + y2) / 2}" fill="#555">${esc(label)}</text>`);
    }
  }
  const nodes = order.map((s) => {
    const p = pos[s]!;
    const st = stats[s]!;
    const spec = steps[s];
    const kind = spec?.foreach ? `foreach ${spec.foreach}` : spec?.condition ? `switch ${spec.condition}` : (spec?.type ?? "");
    const of = st.expected ?? st.total;
    const count = of === 0 ? "no tasks yet" : st.unread ? `${of} ${of === 1 ? "task" : "tasks"}` : `${st.counts.succeeded}/${of} ${of === 1 ? "task" : "tasks"}`;
    const extra = (st.counts.failed ? ` · ${st.counts.failed} failed` : "") + (st.counts.running ? ` · ${st.counts.running} running` : "");
    const href = firstTask[s] ? links.task(run.flow, run.runId, s, firstTask[s]!) : undefined;
    const box = `<rect x="${p.x}" y="${p.y}" width="${W}" height="${H}" rx="7" fill="${COLORS[st.state]}"/><text class="lbl" x="${p.x + 10}" y="${p.y + 20}" font-weight="700">${esc(s)}</text><text class="lbl" x="${p.x + 10}" y="${p.y + 37}">${esc(kind)}</text><text class="lbl" x="${p.x + 10}" y="${p.y + 52}">${esc(count + extra)}</text>`;
    return `<g class="step" data-step="${attr(s)}" data-state="${st.state}">${href ? `<a href="${attr(href)}">${box}</a>` : box}</g>`;
  });
  return `<svg class="dag" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="DAG"><defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0L10 5L0 10z" fill="#8a95a3"/></marker></defs>${edges.join("")}${nodes.join("")}</svg>`;
}

// ---------------------------------------------------------------- Gantt

/**
 * One lane per step; attempts packed into sub-lanes greedily (a 10,000-task foreach run on 8
 * workers draws 8 sub-lanes, not 10,000 rows). Clicking a bar opens its task.
 */
export function ganttSvg(links: Links, run: RunInfo, tasks: TaskRow[]): string {
  const bars: { step: string; task: string; a: AttemptInfo; start: number; end: number }[] = [];
  const now = Date.now();
  for (const t of tasks) for (const a of t.attempts) if (a.startedAt) bars.push({ step: t.step, task: t.task, a, start: a.startedAt, end: a.finishedAt ?? (run.state === "running" ? now : a.startedAt) });
  if (bars.length === 0) return `<p class="mute">No task has started yet.</p>`;
  // From the first task, not the run's creation: start-up (bundling, workers) would squash a
  // short run's tasks into the right edge. The axis says how long that start-up took.
  let t0 = Number.POSITIVE_INFINITY;
  for (const b of bars) t0 = Math.min(t0, b.start);
  const startup = t0 - run.createdAt;
  let t1 = t0 + 1;
  for (const b of bars) t1 = Math.max(t1, b.end);
  // Past a few thousand bars, hover titles would double the page for little use.
  const dense = bars.length > 2000;
  const LW = 140, W = 1000, RH = dense ? 6 : 14;
  const scale = (W - LW - 10) / (t1 - t0);
  const out: string[] = [];
  let y = 18;
  const order = [...(run.graph?.order ?? []), ...new Set(tasks.map((t) => t.step))].filter((s, i, a) => a.indexOf(s) === i);
  for (const step of order) {
    const mine = bars.filter((b) => b.step === step).sort((a, b) => a.start - b.start);
    if (mine.length === 0) continue;
    const lanes: number[] = [];
    const rects: string[] = [];
    // Lanes are packed in pixels: two bars share a lane when they do not overlap on screen.
    // Past a few thousand bars, touching bars of one colour in a lane merge into one rect
    // (titled with their count, opening the first): 10,000 tasks draw a few hundred shapes.
    type Open = { x: number; end: number; color: string; n: number; href: string; title: string };
    const open: (Open | undefined)[] = [];
    const flush = (lane: number) => {
      const o = open[lane];
      if (!o) return;
      const title = o.n > 1 ? `${o.n} tasks` : o.title;
      rects.push(`<rect x="${o.x.toFixed(1)}" y="${y + lane * (RH + 2)}" width="${(o.end - o.x).toFixed(1)}" height="${RH}" fill="${o.color}" data-href="${attr(o.href)}"><title>${esc(title)}</title></rect>`);
      open[lane] = undefined;
    };
    for (const b of mine) {
      const x = LW + (b.start - t0) * scale;
      const end = x + Math.max(1.5, (b.end - b.start) * scale);
      let lane = lanes.findIndex((e) => e <= x);
      if (lane < 0) lane = lanes.push(0) - 1;
      lanes[lane] = end + 0.5;
      const color = b.a.ok === true ? COLORS.succeeded : b.a.ok === false ? COLORS.failed : run.state === "running" && !b.a.finishedAt ? COLORS.running : COLORS.failed;
      const o = open[lane];
      if (dense && o && o.color === color && x <= o.end + 1) {
        o.end = Math.max(o.end, end);
        o.n++;
        continue;
      }
      flush(lane);
      open[lane] = { x, end, color, n: 1, href: links.task(run.flow, run.runId, b.step, b.task, b.a.attempt), title: `${b.step}/${b.task} attempt ${b.a.attempt}: ${fmtDur(b.end - b.start)}` };
    }
    for (let i = 0; i < open.length; i++) flush(i);
    out.push(`<text x="4" y="${y + RH - 2}">${esc(step)}</text>`, ...rects, `<line x1="0" x2="${W}" y1="${y + lanes.length * (RH + 2) + 3}" y2="${y + lanes.length * (RH + 2) + 3}" stroke="#e3e6ea"/>`);
    y += lanes.length * (RH + 2) + 8;
  }
  const axis = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${(LW + f * (W - LW - 10)).toFixed(0)}" y="12" fill="#66707c" text-anchor="${f === 0 ? "start" : f === 1 ? "end" : "middle"}">+${esc(fmtDur(f * (t1 - t0)) || "0 ms")}</text>`);
  const note = startup > 0 ? `<p class="mute">first task started ${esc(fmtDur(startup))} after the run was created</p>` : "";
  return `${note}<svg class="gantt" width="100%" viewBox="0 0 ${W} ${y + 4}" role="img" aria-label="Timeline">${axis.join("")}${out.join("")}</svg>`;
}

// ---------------------------------------------------------------- run and task pages

export function runHeader(run: RunInfo): string {
  const err = run.error ? `<pre class="err">${esc(`${run.error.pathspec ?? ""} ${run.error.type}: ${run.error.message}`)}</pre>` : "";
  return `<table class="kv"><tbody><tr><td>Status</td><td>${status(run.state)}</td></tr><tr><td>Started</td><td>${fmtTime(run.createdAt)}</td></tr><tr><td>Duration</td><td>${fmtDur(runDuration(run))}</td></tr><tr><td>User</td><td>${esc(run.user ?? "")}</td></tr><tr><td>Tags</td><td>${tags(run.tags)} ${tags(run.systemTags)}</td></tr>${run.originRunId ? `<tr><td>Resumed from</td><td>${esc(run.originRunId)}</td></tr>` : ""}</tbody></table>${err}`;
}

export function paramsTable(run: RunInfo): string {
  const entries = Object.entries(run.parameterValues ?? {});
  if (entries.length === 0) return `<p class="mute">No parameters.</p>`;
  return `<table class="params"><thead><tr><th>Parameter</th><th>Value</th></tr></thead><tbody>${entries.map(([k, v]) => `<tr><td>${esc(k)}</td><td><code>${esc(typeof v === "string" ? v : jsonText(v, { maxChars: 10_000, maxValues: 2_000, truncate: true }))}</code></td></tr>`).join("")}</tbody></table>`;
}

export function tasksTable(links: Links, run: RunInfo, tasks: TaskRow[]): string {
  return `<table class="tasks"><thead><tr><th>Task</th><th>Status</th><th>Attempts</th><th>Started</th><th>Duration</th></tr></thead><tbody>${tasks
    .map((t) => {
      const last = t.attempts[t.attempts.length - 1];
      return `<tr><td><a href="${attr(links.task(run.flow, run.runId, t.step, t.task))}">${esc(`${t.step}/${t.task}`)}</a></td><td>${status(t.state)}</td><td>${t.attempts.length}</td><td>${fmtTime(t.attempts[0]?.startedAt)}</td><td>${fmtDur(last?.finishedAt && t.attempts[0]?.startedAt ? last.finishedAt - t.attempts[0].startedAt : undefined)}</td></tr>`;
    })
    .join("")}</tbody></table>`;
}

export function taskMeta(links: Links, flow: string, detail: TaskDetail, shown: TaskDetail["attempts"][number] | undefined, runId?: string): string {
  const d = detail.doc;
  const rows: [string, string][] = [];
  const parent = (p: string) => {
    const [run, step, task] = p.split("/");
    // A static export holds one run: a parent in another run (a resumed run's origin) is text.
    const reachable = links.home !== undefined || runId === undefined || run === runId;
    return run && step && task && reachable ? `<a href="${attr(links.task(flow, run, step, task))}">${esc(p)}</a>` : esc(p);
  };
  if (d?.parents?.length) rows.push(["Parents", d.parents.map(parent).join("<br>")]);
  if (d?.foreach?.length) rows.push(["Foreach", d.foreach.map((f) => esc(`${f.step}: item ${f.index + 1} of ${f.count}`)).join("<br>")]);
  if (shown) {
    rows.push(["Attempt", esc(shown.attempt)], ["Mode", esc(shown.mode ?? "")], ["Executor", esc(shown.executor ?? "")], ["Started", fmtTime(shown.startedAt)], ["Finished", fmtTime(shown.finishedAt)], ["Duration", fmtDur(shown.finishedAt && shown.startedAt ? shown.finishedAt - shown.startedAt : undefined)]);
  }
  if (detail.done) {
    rows.push(["Next", esc(detail.done.next.join(", "))]);
    if (detail.done.foreachCount !== undefined) rows.push(["Foreach split", esc(`${detail.done.foreachCount} items`)]);
    if (detail.done.condition !== undefined) rows.push(["Condition", esc(detail.done.condition)]);
    if (detail.done.clonedFrom) rows.push(["Cloned from", esc(detail.done.clonedFrom)]);
  }
  const err = shown?.error ? `<pre class="err">${esc(`${shown.error.type}: ${shown.error.message}\n${shown.error.stack ?? ""}`)}</pre>` : "";
  return `<table class="kv"><tbody>${rows.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("")}</tbody></table>${err}`;
}
