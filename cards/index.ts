/**
 * tsflow's card renderer, installed by `mod.ts` so tasks render their cards and readers build
 * card documents. Everything heavy (markdown-it, the vega bundles) loads on first use only:
 * a task without cards, or a card without Markdown or charts, never loads them.
 *
 * `cardHtml` and `vegaLiteHtml` are for notebooks and scripts: a card (or a list of components)
 * or a Vega-Lite spec → one self-contained HTML document that renders offline.
 */
import { CardComponent, type CardData, type CardRenderer, type ComponentData, safeData } from "../core/cards.ts";

export const defaultCardRenderer: CardRenderer = {
  async render(card) {
    return (await import("./render.ts")).renderCard(card);
  },
  async document(fragment, options) {
    return (await import("./document.ts")).cardDocument(fragment, options);
  },
};

/** A card's data, or components (as classes or data), as a self-contained HTML document. */
export async function cardHtml(card: CardData | readonly (CardComponent | ComponentData)[], options: { title?: string } = {}): Promise<string> {
  const { renderCardDocument } = await import("./document.ts");
  if (!Array.isArray(card)) return renderCardDocument(card as CardData, options.title);
  const components = (card as readonly (CardComponent | ComponentData)[]).map((c) => (c instanceof CardComponent ? safeData(c) : c));
  const data: CardData = {
    version: 1,
    id: "card",
    type: "blank",
    options: {},
    components,
    final: true,
    renderedAt: Date.now(),
    task: { flow: "", runId: "", step: "", taskId: "", attempt: 0, pathspec: "", status: "succeeded", startedAt: 0, parents: [], foreach: [], parameters: {}, artifacts: [] },
  };
  return renderCardDocument(data, options.title ?? "card");
}

/** A Vega-Lite spec as a self-contained HTML document (the vega bundles inlined: no CDN). */
export async function vegaLiteHtml(spec: Record<string, unknown>, options: { title?: string } = {}): Promise<string> {
  return (await import("./document.ts")).vegaLiteDocument(spec, options.title);
}
