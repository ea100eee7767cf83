/**
 * Card data → an HTML fragment. Every piece of user text goes through {@link esc}; Markdown
 * goes through markdown-it with raw HTML off, so a `<script>` in it is text. Charts become a
 * placeholder holding their spec as JSON, drawn in the browser by the card's runtime (see
 * document.ts); large tables carry their rows as JSON and page in the browser.
 *
 * The built-in card types are `default` (the task's facts, then the components) and `blank`
 * (the components only); plugins come from `@card({ type: defineCardType(…) })`.
 */
import type MarkdownIt from "markdown-it";
import type { RunInfo } from "../viewer/data.ts";
import { dagSvg, type Links, type StepStat } from "../viewer/html.ts";
import { type CardData, type CardHelpers, type CardTaskInfo, type ComponentData, cardTypes, type Json, type TableData } from "../core/cards.ts";

export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON inside `<script type="application/json">`: `<` escaped, so no `</script>` can close it. */
export function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

let md: MarkdownIt | undefined;
async function markdownIt(): Promise<MarkdownIt> {
  if (!md) {
    const { default: Md } = await import("markdown-it");
    // html: false escapes raw HTML; markdown-it's validateLink already refuses javascript:,
    // vbscript:, file: and non-image data: links.
    md = new Md({ html: false, linkify: true, typographer: false });
  }
  return md;
}

/** Rows shown per table page by default. */
export const PAGE_SIZE = 50;
/** Past this many points a chart is drawn on a canvas (thousands of SVG nodes open slowly). */
const CANVAS_POINTS = 2000;

const fmtNum = (n: number) => (Number.isInteger(n) && Math.abs(n) < 1e15 ? String(n) : Math.abs(n) >= 1e-3 && Math.abs(n) < 1e15 ? String(Number(n.toPrecision(6))) : n.toExponential(4));

function cell(c: unknown, r: Renderer): string {
  if (c === null || c === undefined) return "";
  if (typeof c === "number") return `<span class="num">${esc(fmtNum(c))}</span>`;
  if (typeof c === "object") return r.component(c as ComponentData);
  return esc(c);
}

function points(spec: Json): number {
  let n = 0;
  const walk = (v: Json, depth: number) => {
    if (depth > 6 || v === null || typeof v !== "object") return;
    if (Array.isArray(v)) {
      for (const x of v) walk(x, depth + 1);
      return;
    }
    for (const [k, x] of Object.entries(v)) {
      if (k === "values" && Array.isArray(x)) n += x.length;
      else if (k === "datasets" && x && typeof x === "object" && !Array.isArray(x)) for (const d of Object.values(x)) if (Array.isArray(d)) n += d.length;
      else walk(x, depth + 1);
    }
  };
  walk(spec, 0);
  return n;
}

function tree(v: Json, depth: number): string {
  if (v === null) return `<span class="n">null</span>`;
  if (typeof v === "string") return `<span class="s">${esc(JSON.stringify(v))}</span>`;
  if (typeof v !== "object") return `<span class="n">${esc(String(v))}</span>`;
  const entries: [string, Json][] = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
  const label = Array.isArray(v) ? `Array(${v.length})` : `{${entries.length}}`;
  return `<details${depth < 2 ? " open" : ""}><summary>${esc(label)}</summary>${entries.map(([k, x]) => `<div><span class="k">${esc(k)}</span>: ${tree(x, depth + 1)}</div>`).join("")}</details>`;
}

/** Renders components; one per card (it carries the pre-rendered Markdown). */
class Renderer {
  vega = false;
  constructor(private markdown: Map<string, string>) {}

  component(c: ComponentData): string {
    switch (c?.type) {
      case "markdown":
        return `<div class="tf-md">${this.markdown.get(c.text) ?? esc(c.text)}</div>`;
      case "table":
        return this.table(c);
      case "image":
        return `<figure class="tf-image"><img alt="${esc(c.label ?? "image")}" src="data:${esc(c.mime)};base64,${esc(c.base64)}">${c.label ? `<figcaption>${esc(c.label)}</figcaption>` : ""}</figure>`;
      case "chart": {
        this.vega = true;
        const renderer = points(c.spec) > CANVAS_POINTS ? "canvas" : "svg";
        return `<figure class="tf-chart" data-renderer="${renderer}"><div class="tf-vis"></div><script type="application/json" class="tf-spec">${scriptJson(c.spec)}</script>${c.label ? `<figcaption>${esc(c.label)}</figcaption>` : ""}</figure>`;
      }
      case "progress": {
        const pct = c.max > 0 ? Math.round((c.value / c.max) * 1000) / 10 : 0;
        return `<div class="tf-progress" data-value="${esc(c.value)}" data-max="${esc(c.max)}">${c.label ? `<span class="tf-label">${esc(c.label)}</span>` : ""}<div class="tf-bar"><div style="width:${pct}%"></div></div><span class="tf-pct">${esc(fmtNum(c.value))} / ${esc(fmtNum(c.max))} (${pct}%)</span></div>`;
      }
      case "artifact": {
        const head = `${c.name ? `<b>${esc(c.name)}</b> ` : ""}<span class="mute">${esc(c.valueType)}</span>`;
        const body =
          typeof c.value === "string" && (c.value.length > 80 || c.value.includes("\n"))
            ? `<pre>${esc(c.value)}</pre>`
            : c.value !== null && typeof c.value === "object"
              ? `<div class="tf-tree">${tree(c.value, 0)}</div>`
              : ` <code>${esc(typeof c.value === "string" ? JSON.stringify(c.value) : String(c.value))}</code>`;
        return `<div class="tf-artifact">${head}${body}${c.truncated ? `<p class="mute">(truncated)</p>` : ""}</div>`;
      }
      case "error":
        return `<div class="tf-error"><b>${esc(c.message)}</b>${c.detail ? `<pre>${esc(c.detail)}</pre>` : ""}</div>`;
      default:
        return `<div class="tf-error"><b>unknown component type '${esc((c as { type?: unknown })?.type)}'</b></div>`;
    }
  }

  components(list: readonly ComponentData[]): string {
    return list.map((c) => `<section class="tf-c">${this.component(c)}</section>`).join("");
  }

  table(t: TableData): string {
    const size = Math.max(1, Math.floor(t.pageSize ?? PAGE_SIZE));
    const head = t.headers.length ? `<thead><tr>${t.headers.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>` : "";
    const paged = t.rows.length > size;
    const first = t.rows.slice(0, size).map((r) => `<tr>${r.map((c) => `<td>${cell(c, this)}</td>`).join("")}</tr>`);
    // The first page is in the HTML (readable without scripts); every row also travels as
    // compact JSON (text, {n: number text} or {h: a component's HTML}) and pages in the browser:
    // 10,000 rows cost a few hundred KB, not megabytes of markup.
    let pager = "";
    if (paged) {
      const rows = t.rows.map((r) => r.map((c) => (c === null || c === undefined ? "" : typeof c === "number" ? { n: fmtNum(c) } : typeof c === "object" ? { h: this.component(c) } : String(c))));
      pager = `<div class="tf-pager"><button type="button" data-tf-go="-1">← previous</button><span class="tf-pos">rows 1–${size} of ${t.rows.length}</span><button type="button" data-tf-go="1">next →</button></div><script type="application/json" class="tf-rows">${scriptJson(rows)}</script>`;
    }
    return `<div class="tf-table"${paged ? ` data-page-size="${size}" data-rows="${t.rows.length}"` : ""}>${t.label ? `<div class="mute">${esc(t.label)}</div>` : ""}<table>${head}<tbody>${first.join("")}</tbody></table>${pager}</div>`;
  }
}

// ---------------------------------------------------------------- the default card's sections

const fmtTime = (ms: number | undefined) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "");
const fmtDur = (ms: number) => (ms < 1000 ? `${Math.round(ms)} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`);
const fmtSize = (n: number) => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KB` : `${(n / (1 << 20)).toFixed(1)} MB`);

function header(t: CardTaskInfo): string {
  const dur = t.finishedAt ? fmtDur(t.finishedAt - t.startedAt) : "running";
  const fe = t.foreach.length ? ` · foreach item ${t.foreach.map((f) => `${f.index + 1} of ${f.count}`).join(", ")}` : "";
  return `<header class="tf-head"><h1>${esc(t.step)}<span class="mute">/${esc(t.taskId)}</span> <span class="tf-st tf-${esc(t.status)}">${esc(t.status)}</span></h1><p class="mute">${esc(t.pathspec)} · attempt ${esc(t.attempt)} · started ${esc(fmtTime(t.startedAt))} · ${esc(dur)}${esc(fe)}</p></header>`;
}

function errorSection(t: CardTaskInfo): string {
  return t.error ? `<div class="tf-error"><b>${esc(`${t.error.type}: ${t.error.message}`)}</b>${t.error.stack ? `<pre>${esc(t.error.stack)}</pre>` : ""}</div>` : "";
}

function parameters(t: CardTaskInfo): string {
  const e = Object.entries(t.parameters);
  if (!e.length) return "";
  return `<h2>Parameters</h2><table class="tf-kv"><tbody>${e.map(([k, v]) => `<tr><td>${esc(k)}</td><td><code>${esc(typeof v === "string" ? v : JSON.stringify(v))}</code></td></tr>`).join("")}</tbody></table>`;
}

function artifacts(t: CardTaskInfo, r: Renderer): string {
  if (!t.artifacts.length) return "";
  return `<h2>Artifacts</h2>${t.artifacts
    .map((a) => `<div class="tf-art"><b>${esc(a.name)}</b> <span class="mute">${esc(a.type)} · ${esc(fmtSize(a.size))}</span>${a.preview ? r.component(a.preview) : `<p class="mute">passed on unchanged (not loaded)</p>`}</div>`)
    .join("")}`;
}

/** The flow's DAG as the viewer draws it, this step in blue and the others grey. */
function graph(t: CardTaskInfo): string {
  const g = t.graph;
  if (!g?.order?.length) return "";
  const stats: Record<string, StepStat> = {};
  for (const s of g.order) {
    const here = s === t.step;
    stats[s] = { counts: { pending: 0, running: 0, succeeded: 0, failed: 0 }, total: 0, state: here ? "running" : "pending" };
  }
  const run = { flow: t.flow, runId: t.runId, graph: g } as unknown as RunInfo;
  const noLinks: Links = { run: () => "", task: () => "", artifact: () => undefined, asset: () => "" };
  // The viewer's drawing prints task counts; a card is about one task, so those labels go.
  const svg = dagSvg(noLinks, run, stats, {}).replace(/<text class="lbl"[^>]*>no tasks yet<\/text>/g, "");
  return `<h2>Graph</h2><div class="tf-graph">${svg}</div>`;
}

function helpers(r: Renderer): CardHelpers {
  return {
    components: (list) => r.components(list),
    section(name, card) {
      switch (name) {
        case "header":
          return header(card.task);
        case "error":
          return errorSection(card.task);
        case "parameters":
          return parameters(card.task);
        case "artifacts":
          return artifacts(card.task, r);
        case "graph":
          return graph(card.task);
        default:
          return "";
      }
    },
    escape: esc,
  };
}

/** Markdown is rendered first (markdown-it loads only when a card has some). */
async function renderMarkdown(card: CardData): Promise<Map<string, string>> {
  const texts = new Set<string>();
  const visit = (c: ComponentData | undefined) => {
    if (!c) return;
    if (c.type === "markdown") texts.add(c.text);
    else if (c.type === "table") for (const row of c.rows) for (const x of row) if (x && typeof x === "object") visit(x);
  };
  for (const c of card.components) visit(c);
  for (const a of card.task.artifacts ?? []) visit(a.preview);
  const out = new Map<string, string>();
  if (texts.size === 0) return out;
  const m = await markdownIt();
  for (const t of texts) out.set(t, m.render(t));
  return out;
}

/** Renders a card to an HTML fragment; `vega` says whether its document needs the chart bundles. */
export async function renderCard(card: CardData): Promise<{ html: string; vega: boolean }> {
  const r = new Renderer(await renderMarkdown(card));
  const h = helpers(r);
  let html: string;
  if (card.type === "default") {
    const appended = card.components.length ? `<div class="tf-components">${r.components(card.components)}</div>` : "";
    html = `${header(card.task)}${errorSection(card.task)}${appended}${parameters(card.task)}${artifacts(card.task, r)}${graph(card.task)}`;
  } else if (card.type === "blank") {
    html = card.components.length ? r.components(card.components) : `<p class="mute">This card is empty${card.final ? "" : " so far"}.</p>`;
  } else {
    const plugin = cardTypes().get(card.type);
    if (!plugin) throw new Error(`no card type '${card.type}' is registered: pass the plugin object to @card({ type }) so the task knows it`);
    html = String(await plugin.render(card, h));
    if (plugin.vega) r.vega = true;
  }
  return { html, vega: r.vega };
}
