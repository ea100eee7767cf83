/**
 * A card-type plugin: a leaderboard of one artifact's records, ranked by a metric. A team ships
 * its own report layout this way — one file, one default export — and a step uses it with
 * `@card({ type: leaderboard, options: { artifact: "results", metric: "loss" } })` (see
 * examples/cards.ts). It runs in the task after the step; what it returns is stored, so the
 * viewer, `tsflow card` and the client show it without this file.
 *
 * `render(card, helpers)` gets the card's data — the task's facts (`card.task`: parameters,
 * artifacts with previews, timings, graph) and the components the step appended — and returns an
 * HTML fragment. Escape user text with `helpers.escape`; reuse tsflow's look with
 * `helpers.components(...)` and `helpers.section("header", card)`.
 */
import { type CardData, type CardHelpers, defineCardType } from "tsflow";

export interface LeaderboardOptions {
  /** The artifact holding the records (an array of objects). */
  artifact: string;
  /** The column to rank by. */
  metric: string;
  /** Higher is better (default: lower is better, like a loss). */
  higherIsBetter?: boolean;
}

const cellText = (c: unknown) => (typeof c === "number" ? String(Number(c.toPrecision(5))) : c === null || typeof c === "object" ? "" : String(c));

export default defineCardType({
  name: "leaderboard",
  render(card: CardData, h: CardHelpers): string {
    const o = card.options as unknown as LeaderboardOptions;
    const art = card.task.artifacts.find((a) => a.name === o.artifact);
    const table = art?.preview?.type === "table" ? art.preview : undefined;
    if (!table) return `${h.section("header", card)}<p>No records in artifact '${h.escape(o.artifact)}' to rank.</p>`;
    const col = table.headers.indexOf(o.metric);
    if (col < 0) return `<p>Artifact '${h.escape(o.artifact)}' has no column '${h.escape(o.metric)}' (it has ${h.escape(table.headers.join(", "))}).</p>`;
    const value = (row: (typeof table.rows)[number]) => Number(row[col]);
    const ranked = [...table.rows].sort((a, b) => (o.higherIsBetter ? value(b) - value(a) : value(a) - value(b)));
    const rows = ranked.map(
      (row, i) =>
        `<tr${i === 0 ? ' style="background:#fff7d6;font-weight:600"' : ""}><td>${i === 0 ? "★ 1" : i + 1}</td>${row.map((c) => `<td>${h.escape(cellText(c))}</td>`).join("")}</tr>`,
    );
    return `<h1>Leaderboard <span class="mute">by ${h.escape(o.metric)} (${o.higherIsBetter ? "higher" : "lower"} is better)</span></h1>
<table><thead><tr><th>#</th>${table.headers.map((x) => `<th>${h.escape(x)}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>
${h.components(card.components)}<p class="mute">${h.escape(card.task.pathspec)}</p>`;
  },
});
