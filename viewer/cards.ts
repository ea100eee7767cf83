/**
 * Cards in the viewer: a task page shows each card in a sandboxed frame (its own origin-less
 * document with its own CSP, see cards/document.ts), a run page lists the run's cards. The
 * frame's document comes from `Links.card`: a route of the served viewer, or a file of a
 * static export.
 */
import { type CardRef, readCardRefs } from "../core/cards.ts";
import type { Datastore } from "../core/types.ts";
import { getTask, type TaskRow } from "./data.ts";
import { esc, type Links } from "./html.ts";

/** The cards section of a task page (empty when the attempt has no cards). */
export async function taskCardsHtml(store: Datastore, links: Links, flow: string, run: string, step: string, task: string, attempt: number, final: CardRef[] | undefined): Promise<string> {
  if (!links.card) return "";
  const refs = await readCardRefs(store, flow, run, step, task, attempt, final).catch(() => []);
  if (refs.length === 0) return "";
  const boxes = refs.map((ref) => {
    const src = links.card!(flow, run, step, task, attempt, ref.id);
    if (!src) return "";
    const live = links.cardLive ? ` data-live="${esc(links.cardLive(flow, run, step, task, attempt, ref.id))}"` : "";
    const note = ref.error ? `<pre class="err">${esc(ref.error)}</pre>` : "";
    const state = ref.final ? "" : ` <span class="st st-running">live</span>`;
    // sandbox without allow-same-origin: the card runs in an opaque origin, so its scripts cannot
    // read this page or call the viewer's API with the visitor's cookies.
    return `<div class="card cardbox" id="card-${esc(ref.id)}"><b>${esc(ref.id)}</b> <span class="mute">${esc(ref.type)} card</span>${state} <span class="downloads"><a href="${esc(src)}" target="_blank" rel="noopener">open</a></span>${note}<iframe class="cardframe" sandbox="allow-scripts" src="${esc(src)}" title="card ${esc(ref.id)}" data-card="${esc(ref.id)}" data-version="${esc(ref.html ?? ref.data)}" data-vega="${ref.vega === true}"${live}></iframe></div>`;
  });
  return `<h2>Cards</h2>${boxes.join("")}`;
}

/** The cards section of a run page: every finished task's cards, linking to its task page. */
export function runCardsHtml(links: Links, flow: string, run: string, tasks: TaskRow[], max = 500): string {
  const rows: string[] = [];
  let total = 0;
  for (const t of tasks) {
    const cards = t.done?.cards;
    if (!cards?.length) continue;
    total += cards.length;
    if (rows.length >= max) continue;
    const href = links.task(flow, run, t.step, t.task);
    rows.push(`<tr><td><a href="${esc(href)}">${esc(`${t.step}/${t.task}`)}</a></td><td>${cards.map((c) => `<a href="${esc(`${href}#card-${c.id}`)}">${esc(c.id)}</a> <span class="mute">${esc(c.type)}</span>${c.error ? ` <span class="st st-failed">render failed</span>` : ""}`).join(" · ")}</td></tr>`);
  }
  if (total === 0) return "";
  const more = rows.length < tasks.filter((t) => t.done?.cards?.length).length ? `<p class="mute">showing the first ${rows.length} tasks with cards</p>` : "";
  return `<h2>Cards</h2><table class="cards"><thead><tr><th>Task</th><th>Cards</th></tr></thead><tbody>${rows.join("")}</tbody></table>${more}`;
}

/** A task's card by id, of the given attempt (default: the one that counts, else the last). */
export async function findCard(store: Datastore, flow: string, run: string, step: string, task: string, attempt: number | undefined, id: string): Promise<CardRef | undefined> {
  const detail = await getTask(store, flow, run, step, task);
  if (!detail) return undefined;
  const n = attempt ?? detail.done?.attempt ?? detail.attempts.at(-1)?.attempt;
  if (n === undefined) return undefined;
  const final = detail.attempts.find((a) => a.attempt === n)?.cards ?? (detail.done?.attempt === n ? detail.done.cards : undefined);
  return (await readCardRefs(store, flow, run, step, task, n, final)).find((r) => r.id === id);
}
