/**
 * The four pages (flows, runs, run, task), built from the read layer and the HTML pieces.
 * Shared by the server (viewer/app.ts) and the static export (viewer/export.ts).
 */
import { loadArtifact } from "../core/artifacts.ts";
import { isTsflowError } from "../core/errors.ts";
import type { ArtifactRef, Datastore, Host } from "../core/types.ts";
import type { TaskId } from "./data.ts";
import { fingerprint, getLog, getRun, getRuns, getTask, getTasks, listFlows, listRunIds, newestFirst, type RunInfo, runTasks } from "./data.ts";
import { dagSvg, esc, fmtSize, ganttSvg, type Links, page, paramsTable, runHeader, runsTable, status, stepStats, taskMeta, tasksTable } from "./html.ts";
import { runCardsHtml, taskCardsHtml } from "./cards.ts";
import { bytesOf, imageType, PREVIEW_MAX, previewHtml } from "./preview.ts";

export const PAGE_SIZE = 50;
const TASKS_PER_PAGE = 200;

export async function flowsPage(store: Datastore, links: Links): Promise<string> {
  const flows = await listFlows(store);
  const sections = await Promise.all(
    flows.map(async (flow) => {
      const ids = await listRunIds(store, flow);
      const damaged: string[] = [];
      const runs = await getRuns(store, ids.slice(0, 5).map((runId) => ({ flow, runId })), damaged);
      const more = links.runs ? ` · <a href="${esc(links.runs({ flow }))}">all ${ids.length} ${ids.length === 1 ? "run" : "runs"}</a>` : "";
      return `<h2>${esc(flow)} <span class="mute">${ids.length} ${ids.length === 1 ? "run" : "runs"}${more}</span></h2>${runsTable(links, runs, false)}${damagedNote(damaged)}`;
    }),
  );
  return page(links, "Flows", `<h1>Flows</h1>${sections.join("") || `<p class="mute">No flows in this datastore yet. Run one: <code>tsflow run flow.ts</code></p>`}`);
}

/** Runs whose run.json cannot be read: named, not shown (tsflow delete removes them). */
function damagedNote(damaged: string[]): string {
  if (damaged.length === 0) return "";
  return `<p class="mute">Skipped ${damaged.length} damaged run${damaged.length === 1 ? "" : "s"} (run.json unreadable; <code>tsflow delete</code> removes one): ${damaged.map((d) => `<code>${esc(d)}</code>`).join(" ")}</p>`;
}

export interface RunsQuery {
  flow?: string;
  status?: string;
  tag?: string;
  page?: number;
}

/**
 * Runs newest first. Without a status or tag filter only the shown page's `run.json` files
 * are read; with one, every candidate's (5,000 small reads stay well under a second).
 */
export async function runsPage(store: Datastore, links: Links, q: RunsQuery): Promise<string> {
  const flows = q.flow ? [q.flow] : await listFlows(store);
  const refs = (await Promise.all(flows.map(async (flow) => (await listRunIds(store, flow)).map((runId) => ({ flow, runId }))))).flat();
  refs.sort((a, b) => newestFirst(a.runId, b.runId));
  const pageNo = Math.max(1, q.page ?? 1);
  let shown: RunInfo[];
  let total: number;
  const damaged: string[] = [];
  if (q.status || q.tag) {
    const all = (await getRuns(store, refs, damaged)).filter((r) => (!q.status || r.state === q.status) && (!q.tag || r.tags?.includes(q.tag) || r.systemTags?.includes(q.tag)));
    total = all.length;
    shown = all.slice((pageNo - 1) * PAGE_SIZE, pageNo * PAGE_SIZE);
  } else {
    total = refs.length;
    shown = await getRuns(store, refs.slice((pageNo - 1) * PAGE_SIZE, pageNo * PAGE_SIZE), damaged);
  }
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const base = { flow: q.flow ?? "", status: q.status ?? "", tag: q.tag ?? "" };
  const link = (p: number, label: string) => (links.runs ? `<a href="${esc(links.runs({ ...base, page: String(p) }))}">${label}</a>` : "");
  const pager = `<div class="pager">${pageNo > 1 ? link(pageNo - 1, "← newer") : ""}<span>page ${pageNo} of ${pages} (${total} ${total === 1 ? "run" : "runs"})</span>${pageNo < pages ? link(pageNo + 1, "older →") : ""}</div>`;
  const opt = (v: string, cur?: string) => `<option value="${esc(v)}"${v === (cur ?? "") ? " selected" : ""}>${esc(v || "any")}</option>`;
  const form = `<form class="filters" method="get" action="${esc(links.runs?.() ?? "")}"><label>Flow <select name="flow">${["", ...(await listFlows(store))].map((f) => opt(f, q.flow)).join("")}</select></label><label>Status <select name="status">${["", "running", "succeeded", "failed", "abandoned"].map((s) => opt(s, q.status)).join("")}</select></label><label>Tag <input name="tag" value="${esc(q.tag ?? "")}" size="14"></label><button>Filter</button></form>`;
  return page(links, "Runs", `<h1>Runs</h1>${form}${runsTable(links, shown)}${damagedNote(damaged)}${pager}`);
}

export interface RunView {
  /** Restrict the task table to one step. */
  step?: string;
  taskPage?: number;
  /** The live-refresh endpoint, when served (not in a static export). */
  live?: boolean;
  /** List every task on one page (the static export has no query strings). */
  allTasks?: boolean;
  /**
   * Most tasks whose records one page reads (default {@link RUN_TASKS_MAX}). A bigger run is
   * shown from its listing: counts per step, the shown page of tasks, no timeline.
   */
  maxTasks?: number;
}

/** 5× the 10,000-task run the viewer is benchmarked on; a million-task run stays a listing. */
export const RUN_TASKS_MAX = 50_000;

export async function runPage(store: Datastore, links: Links, flow: string, runId: string, view: RunView = {}): Promise<string | null> {
  const run = await getRun(store, flow, runId);
  if (!run) return null;
  const max = view.maxTasks ?? RUN_TASKS_MAX;
  const { ids, rows: tasks } = await runTasks(store, run, max);
  if (!tasks) return hugeRunPage(store, links, run, ids, view, max);
  const stats = stepStats(run, tasks);
  const firstTask: Record<string, string> = {};
  for (const t of tasks) firstTask[t.step] ??= t.task;
  const listed = view.step ? tasks.filter((t) => t.step === view.step) : tasks;
  const tp = Math.max(1, view.taskPage ?? 1);
  const perPage = view.allTasks ? Math.max(1, listed.length) : TASKS_PER_PAGE;
  const tpages = Math.max(1, Math.ceil(listed.length / perPage));
  const stepTabs = view.allTasks ? "" : `<div class="tabs"><a class="${view.step ? "" : "on"}" href="${esc(links.run(flow, runId))}">all steps</a>${(run.graph?.order ?? []).map((s) => `<a class="${view.step === s ? "on" : ""}" href="${esc(links.run(flow, runId, { step: s }))}">${esc(s)} (${stats[s]?.total ?? 0})</a>`).join("")}</div>`;
  const tlink = (p: number, label: string) => `<a href="${esc(links.run(flow, runId, { ...(view.step ? { step: view.step } : {}), tp: String(p) }))}">${label}</a>`;
  const tpager = tpages > 1 ? `<div class="pager">${tp > 1 ? tlink(tp - 1, "← previous") : ""}<span>tasks ${(tp - 1) * perPage + 1}–${Math.min(tp * perPage, listed.length)} of ${listed.length}</span>${tp < tpages ? tlink(tp + 1, "next →") : ""}</div>` : "";
  const body = `<h1>${esc(flow)} / ${esc(runId)} ${status(run.state)}</h1>
<div class="top"><div>${runHeader(run)}<h2>Parameters</h2>${paramsTable(run)}</div><div><h2 class="first">Graph</h2><div class="card">${dagSvg(links, run, stats, firstTask)}</div></div></div>
<h2>Timeline</h2><div class="card">${ganttSvg(links, run, tasks)}</div>
${runCardsHtml(links, flow, runId, tasks)}<h2>Tasks</h2>${stepTabs}${tasksTable(links, run, listed.slice((tp - 1) * perPage, tp * perPage))}${tpager}`;
  const live = view.live && links.live && run.state === "running" ? { url: links.live(flow, runId), sig: (await fingerprint(store, flow, runId)).sig } : undefined;
  return page(links, `${flow}/${runId}`, body, live);
}

/**
 * A run with more tasks than one page may read: everything comes from the listing (task ids
 * per step) except the records of the page of tasks shown, so the cost is the listing.
 */
async function hugeRunPage(store: Datastore, links: Links, run: RunInfo, ids: TaskId[], view: RunView, max: number): Promise<string> {
  const { flow, runId } = run;
  const stats = stepStats(run, []);
  const firstTask: Record<string, string> = {};
  for (const t of ids) {
    firstTask[t.step] ??= t.task;
    const s = (stats[t.step] ??= { counts: { pending: 0, running: 0, succeeded: 0, failed: 0 }, total: 0, state: "pending" });
    s.total++;
  }
  for (const s of Object.values(stats)) s.unread = true;
  const listed = view.step ? ids.filter((t) => t.step === view.step) : ids;
  const perPage = view.allTasks ? Math.max(1, listed.length) : TASKS_PER_PAGE;
  const tpages = Math.max(1, Math.ceil(listed.length / perPage));
  const tp = Math.min(tpages, Math.max(1, view.taskPage ?? 1));
  const shown = await getTasks(store, run, listed.slice((tp - 1) * perPage, tp * perPage));
  const stepTabs = view.allTasks ? "" : `<div class="tabs"><a class="${view.step ? "" : "on"}" href="${esc(links.run(flow, runId))}">all steps</a>${(run.graph?.order ?? []).map((s) => `<a class="${view.step === s ? "on" : ""}" href="${esc(links.run(flow, runId, { step: s }))}">${esc(s)} (${stats[s]?.total ?? 0})</a>`).join("")}</div>`;
  const tlink = (p: number, label: string) => `<a href="${esc(links.run(flow, runId, { ...(view.step ? { step: view.step } : {}), tp: String(p) }))}">${label}</a>`;
  const tpager = tpages > 1 ? `<div class="pager">${tp > 1 ? tlink(tp - 1, "← previous") : ""}<span>tasks ${(tp - 1) * perPage + 1}–${Math.min(tp * perPage, listed.length)} of ${listed.length}</span>${tp < tpages ? tlink(tp + 1, "next →") : ""}</div>` : "";
  const note = `<p class="note">This run has ${ids.length.toLocaleString("en-US")} tasks, more than the ${max.toLocaleString("en-US")} whose records the viewer reads for one page: step counts come from the listing, the timeline and per-step states are left out, and task states are read for the page of tasks shown. Use the client API (<code>run.step(name).tasks()</code>) for the rest.</p>`;
  const body = `<h1>${esc(flow)} / ${esc(runId)} ${status(run.state)}</h1>
<div class="top"><div>${runHeader(run)}<h2>Parameters</h2>${paramsTable(run)}</div><div><h2 class="first">Graph</h2><div class="card">${dagSvg(links, run, stats, firstTask)}</div></div></div>
${note}<h2>Tasks</h2>${stepTabs}${tasksTable(links, run, shown)}${tpager}`;
  return page(links, `${flow}/${runId}`, body);
}

/** The artifacts a task shows: its done record's, else the shown attempt's. */
export async function taskArtifacts(store: Datastore, flow: string, runId: string, step: string, task: string, attempt?: number): Promise<Record<string, ArtifactRef>> {
  const detail = await getTask(store, flow, runId, step, task);
  if (!detail) return {};
  const shown = attempt === undefined ? undefined : detail.attempts.find((a) => a.attempt === attempt);
  return shown?.artifacts ?? detail.done?.artifacts ?? detail.attempts[detail.attempts.length - 1]?.artifacts ?? {};
}

export async function taskPage(store: Datastore, host: Host, links: Links, flow: string, runId: string, step: string, task: string, attempt?: number, live = false): Promise<string | null> {
  const [run, detail] = await Promise.all([getRun(store, flow, runId), getTask(store, flow, runId, step, task)]);
  if (!run || !detail) return null;
  const shownNo = attempt ?? detail.done?.attempt ?? detail.attempts[detail.attempts.length - 1]?.attempt;
  const shown = detail.attempts.find((a) => a.attempt === shownNo);
  const attemptTabs = detail.attempts.length > 1 ? `<div class="tabs attempts">Attempt: ${detail.attempts.map((a) => `<a class="${a.attempt === shownNo ? "on" : ""}" href="${esc(links.task(flow, runId, step, task, a.attempt))}">${a.attempt}${a.ok === false ? " ✗" : a.ok ? " ✓" : ""}</a>`).join("")}</div>` : "";
  const logs = shown
    ? await Promise.all(
        (["stdout", "stderr"] as const).map(async (s) => {
          const log = await getLog(store, flow, runId, step, task, shown.attempt, s);
          const note = log?.truncated ? `<p class="mute">showing the last 256 KB of ${fmtSize(log.size)}</p>` : "";
          return `<h3>${s}</h3>${note}<pre class="log ${s === "stderr" ? "err" : ""}" id="${s}">${log ? esc(log.text) : `<span class="mute">(empty)</span>`}</pre>`;
        }),
      )
    : [];
  const refs = shown?.artifacts ?? detail.done?.artifacts ?? {};
  const arts = await Promise.all(Object.entries(refs).map(([name, ref]) => artifactCard(store, host, links, flow, runId, step, task, name, ref)));
  const state = detail.done ? "succeeded" : run.state === "running" ? "running" : "failed";
  const cardsNo = shown?.attempt ?? detail.done?.attempt;
  const cards = cardsNo === undefined ? "" : await taskCardsHtml(store, links, flow, runId, step, task, cardsNo, shown?.cards ?? (detail.done?.attempt === cardsNo ? detail.done.cards : undefined));
  const body = `<p><a href="${esc(links.run(flow, runId))}">← ${esc(flow)}/${esc(runId)}</a></p><h1>${esc(step)}/${esc(task)} ${status(state)}</h1>${attemptTabs}
<div class="top"><div><h2>Metadata</h2>${taskMeta(links, flow, detail, shown, runId)}</div><div class="logs"><h2>Logs</h2>${logs.join("") || `<p class="mute">No attempt has started yet.</p>`}</div></div>
${cards}<h2>Artifacts</h2>${arts.join("") || `<p class="mute">No artifacts.</p>`}`;
  const liveOn = live && links.live && run.state === "running" ? { url: links.live(flow, runId, step, task), sig: (await fingerprint(store, flow, runId, step, task)).sig } : undefined;
  return page(links, `${flow}/${runId}/${step}/${task}`, body, liveOn);
}

async function artifactCard(store: Datastore, host: Host, links: Links, flow: string, runId: string, step: string, task: string, name: string, ref: ArtifactRef): Promise<string> {
  const dl = (format: "raw" | "json" | "bytes", label: string) => {
    const href = links.artifact(flow, runId, step, task, name, ref, format);
    return href ? `<a href="${esc(href)}" download="${esc(name)}.${format === "raw" ? "tsf" : format === "json" ? "json" : "bin"}">${label}</a>` : "";
  };
  let preview: string;
  let extra = "";
  if (ref.size > PREVIEW_MAX) {
    preview = `<p class="mute">too large to preview (${fmtSize(ref.size)})</p>`;
  } else {
    try {
      // By the blob's real size, not the size done.json claims, and never inflated past it.
      const value = await loadArtifact(store, host, ref, name, `${flow}/${runId}/${step}/${task}`, { maxBytes: PREVIEW_MAX });
      const bytes = bytesOf(value);
      const img = bytes && imageType(bytes) ? links.artifact(flow, runId, step, task, name, ref, "image") : undefined;
      preview = previewHtml(value, img);
      extra = bytes ? dl("bytes", "bytes") : dl("json", "JSON");
    } catch (e) {
      preview = isTsflowError(e) && e.code === "TooLarge" ? `<p class="mute">too large to preview (${esc(e.message)})</p>` : `<pre class="err">${esc((e as Error).message)}</pre>`;
    }
  }
  return `<div class="card artifact" id="artifact-${esc(name)}"><b>${esc(name)}</b> <span class="mute">${esc(ref.type)} · ${fmtSize(ref.size)}</span> <span class="downloads">${[dl("raw", "download (serialized)"), extra].filter(Boolean).join(" · ")}</span><div class="preview">${preview}</div></div>`;
}
