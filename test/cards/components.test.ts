/** The card data model (core/cards.ts) and the renderer (cards/), without running a flow. */
import { describe, expect, it, vi } from "vitest";
import { renderCard } from "../../cards/render.ts";
import { ArtifactValue, CardError, Chart, card, cardSpecsOf, Image, Markdown, ProgressBar, Table, toBase64 } from "../../core/cards.ts";
import { FlowSpec, getStepMeta, step } from "../../core/flow.ts";
import { cardHtml, vegaLiteHtml } from "../../mod.ts";

const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);

describe("components become plain data", () => {
  it("Table takes records (columns from their keys) or arrays with headers; cells may be components", () => {
    expect(new Table([{ a: 1, b: "x" }, { b: "y", c: null }]).toData()).toEqual({ type: "table", headers: ["a", "b", "c"], rows: [[1, "x", null], [null, "y", null]] });
    const t = new Table([[new Markdown("**m**"), Number.NaN, { deep: [1] }]], { headers: ["md", "nan", "obj"], pageSize: 10 }).toData();
    expect(t.rows[0]).toEqual([{ type: "markdown", text: "**m**" }, "NaN", '{"deep":[1]}']);
    expect(t.pageSize).toBe(10);
  });

  it("Image knows PNG and SVG, and turns other bytes into an error component", () => {
    expect(new Image(PNG, { label: "p" }).toData()).toEqual({ type: "image", mime: "image/png", base64: Buffer.from(PNG).toString("base64"), label: "p" });
    expect(new Image('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>').toData()).toMatchObject({ type: "image", mime: "image/svg+xml" });
    expect(new Image(new Uint8Array([1, 2, 3])).toData()).toMatchObject({ type: "error" });
    expect(new Image(42 as unknown as Uint8Array).toData()).toMatchObject({ type: "error", message: expect.stringContaining("got number") });
  });

  it("base64 agrees with Node's for every tail length", () => {
    for (let n = 0; n < 70_000; n += 4099) {
      const b = new Uint8Array(n).map((_, i) => (i * 31) & 255);
      for (const cut of [0, 1, 2]) expect(toBase64(b.subarray(cut))).toBe(Buffer.from(b.subarray(cut)).toString("base64"));
    }
  });

  it("ArtifactValue keeps Maps, Sets, Dates, bigints and cycles readable", () => {
    const v: Record<string, unknown> = { m: new Map([["k", 1n]]), s: new Set([1]), d: new Date(0), b: new Uint8Array(4) };
    v.self = v;
    expect(new ArtifactValue(v, { name: "v" }).toData()).toEqual({
      type: "artifact",
      name: "v",
      valueType: "Object",
      value: { m: { "[Map]": [["k", "1n"]] }, s: { "[Set]": [1] }, d: "1970-01-01T00:00:00.000Z", b: "Uint8Array(4)", self: "[circular]" },
    });
  });

  it("ProgressBar clamps, Chart copies its spec, CardError keeps the stack", () => {
    expect(new ProgressBar({ max: 10, value: 12 }).toData()).toEqual({ type: "progress", max: 10, value: 10 });
    const spec = { mark: "line", data: { values: [{ x: 1 }] } };
    const chart = new Chart(spec).toData();
    spec.mark = "bar";
    expect(chart).toMatchObject({ type: "chart", spec: { mark: "line" } });
    expect(new CardError(new TypeError("boom")).toData()).toMatchObject({ type: "error", message: "TypeError: boom", detail: expect.stringContaining("TypeError: boom") });
  });
});

describe("@card", () => {
  it("keeps several cards in source order, accepts the bare form, and rejects bad ids and attributes", () => {
    class F extends FlowSpec {
      @card({ id: "a" })
      @card({ type: "blank", id: "b" })
      @step
      start() {}
      @card
      @step
      end() {}
    }
    const specs = (name: "start" | "end") => cardSpecsOf(getStepMeta(F.prototype[name])!.decorators);
    expect(specs("start").map((s) => [s.id, s.type])).toEqual([
      ["a", "default"],
      ["b", "blank"],
    ]);
    expect(specs("end").map((s) => s.id)).toEqual(["default"]);
    expect(() => card({ id: "no spaces" })).toThrow("card id 'no spaces' is invalid");
    expect(() => card({ idd: "x" } as never)).toThrow("@card has no attribute 'idd' (valid: type, id, options, refreshInterval)");
    expect(() => {
      class G extends FlowSpec {
        @card()
        @card()
        @step
        start() {}
      }
      return G;
    }).toThrow("two cards of one step have the id 'default'");
  });
});

describe("rendering", () => {
  it("escapes Markdown's HTML and renders paged tables, charts and progress", async () => {
    const rows = Array.from({ length: 120 }, (_, i) => [i, `<b>${i}</b>`]);
    const { html, vega } = await renderCard({
      version: 1,
      id: "x",
      type: "blank",
      options: {},
      final: true,
      renderedAt: 0,
      components: [new Markdown("<script>x()</script> *ok*").toData(), new Table(rows, { headers: ["n", "html"] }).toData(), new ProgressBar({ max: 4, value: 1 }).toData()],
      task: { flow: "F", runId: "1", step: "s", taskId: "1", attempt: 0, pathspec: "F/1/s/1", status: "succeeded", startedAt: 0, parents: [], foreach: [], parameters: {}, artifacts: [] },
    });
    expect(vega).toBe(false);
    expect(html).toContain("&lt;script&gt;x()&lt;/script&gt; <em>ok</em>");
    expect(html).not.toContain("<b>");
    expect(html).toContain('data-page-size="50" data-rows="120"');
    expect(html.match(/<tr>/g)?.length).toBe(1 + 50); // header + the first page
    expect(html).toContain('"\\u003cb>119\\u003c/b>"'); // every row as JSON, `<` escaped
    expect(html).toContain("1 / 4 (25%)");
  });

  it("cardHtml and vegaLiteHtml make self-contained documents for notebooks", async () => {
    const doc = await cardHtml([new Markdown("# Hi <script>"), new Table([[1]])], { title: "t" });
    expect(doc).toMatch(/^<!doctype html>/);
    expect(doc).toContain("<h1>Hi &lt;script&gt;</h1>");
    expect(doc.length).toBeLessThan(50_000);
    const chart = await vegaLiteHtml({ mark: "bar", data: { values: [{ a: 1 }] }, encoding: { x: { field: "a", type: "quantitative" } } });
    expect(chart).toContain('class="tf-chart"');
    expect(chart.length).toBeGreaterThan(800_000);
    expect(chart).not.toMatch(/<script[^>]+src=/);
  });
});

describe("current.card in a task", () => {
  const spec = { flowName: "F", runId: "1", step: "s", taskId: "2", attempt: 0, parents: [], foreach: [] } as unknown as import("../../core/types.ts").TaskSpec;

  it("refresh() is rate-limited: a burst stores one snapshot now and one trailing snapshot with the last state", async () => {
    const { CardSession, readCardRefs, loadCardData } = await import("../../core/cards.ts");
    const { default: memoryDatastore } = await import("../../plugins/datastores/memory.ts");
    const { default: nodeHost } = await import("../../plugins/host/node.ts");
    const store = memoryDatastore();
    const puts: { key: string; at: number }[] = [];
    const put = store.put.bind(store);
    store.put = (key, data, o) => {
      if (key.includes("/cards/")) puts.push({ key, at: Date.now() });
      return put(key, data, o);
    };
    const session = new CardSession(spec, store, nodeHost(), [{ id: "default", type: "blank", options: {}, refreshInterval: 300 }]);
    const bar = new ProgressBar({ max: 100 });
    session.append(bar);
    const t0 = Date.now();
    for (let i = 1; i <= 100; i++) {
      bar.update(i);
      session.refresh();
    }
    // The first call stores a snapshot; the other 99 wait for one trailing refresh, an interval
    // later. Waited for rather than timed: a snapshot's write goes through the event loop, so a
    // starved process can see it after a fixed sleep meant to come before or after it.
    await vi.waitFor(() => expect(puts).toHaveLength(2), { timeout: 15_000 });
    expect(puts[1]!.at - t0).toBeGreaterThanOrEqual(290);
    // Nothing else is pending: two more intervals bring no third snapshot.
    await new Promise((r) => setTimeout(r, 600));
    expect(puts).toHaveLength(2);
    const [live] = await readCardRefs(store, "F", "1", "s", "2", 0);
    expect(live!.final).toBe(false);
    expect((await loadCardData(store, nodeHost(), live!)).components[0]).toMatchObject({ type: "progress", value: 100 });
    const [final] = await session.finish({ ok: true, startedAt: 0, finishedAt: 1, artifacts: [] });
    expect(final!.final).toBe(true);
    expect(puts).toHaveLength(3); // the final card replaces the live snapshot readers may have seen
  });

  it("without @card, append does nothing but warn once", async () => {
    const { CardSession } = await import("../../core/cards.ts");
    const { default: memoryDatastore } = await import("../../plugins/datastores/memory.ts");
    const { default: nodeHost } = await import("../../plugins/host/node.ts");
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (m: string) => warnings.push(m);
    try {
      const session = new CardSession(spec, memoryDatastore(), nodeHost(), []);
      session.append(new Markdown("a")).append(new Markdown("b"));
      session.refresh();
      expect(session.components).toEqual([]);
      expect(await session.finish({ ok: true, startedAt: 0, finishedAt: 1, artifacts: [] })).toEqual([]);
    } finally {
      console.warn = warn;
    }
    expect(warnings).toEqual(["[tsflow] step 's' has no @card: current.card.append() does nothing (add @card() to the step or run with --with card)"]);
  });
});
