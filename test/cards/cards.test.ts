/**
 * Cards end to end through the real CLI and workers: the example flow's cards are stored with
 * their tasks and read back by `tsflow card`, the client and after `tsflow gc`; `--with card`
 * gives every step the default card; a card type that throws, or a failing step, fails no card.
 */
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import { collectGarbage } from "../../core/gc.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import "../../mod.ts"; // installs the card renderer, as `import "tsflow"` does
import { cli, tempStore } from "../_helpers.ts";

const runId = (stdout: string) => /Run \w+\/(\S+) (?:succeeded|failed)/.exec(stdout)?.[1];

describe("cards of examples/cards.ts", () => {
  let store: string;
  let run: string;
  beforeAll(async () => {
    store = tempStore();
    const res = await cli(["run", "examples/cards.ts", "--datastore", store, "--epochs", "20", "--pause", "0"], { timeoutMs: 60_000 });
    expect(res.code, res.stderr).toBe(0);
    run = runId(res.stdout)!;
  });

  it("tsflow card get prints a self-contained document with the chart and its scripts", async () => {
    const res = await cli(["card", "get", `CardsFlow/${run}/compare`, "--id", "default", "--datastore", store]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^<!doctype html>/);
    expect(res.stdout).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;`);
    expect(res.stdout).toContain('class="tf-chart"');
    expect(res.stdout.length).toBeGreaterThan(800_000); // the vega bundles are inlined: no CDN
    expect(res.stdout).not.toMatch(/<script[^>]+src=/);
    expect(res.stdout).toContain("Models compared");
  });

  it("names the card ids when a task has several and --id is missing", async () => {
    const client = createClient(fsDatastore({ root: store }), nodeHost());
    client.namespace(null);
    const train = await ((await client.get(`CardsFlow/${run}/train`)) as any).tasks();
    const res = await cli(["card", "get", `CardsFlow/${run}/train/${train[0]!.id}`, "--datastore", store]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("choose one with --id (training, default)");
    const many = await cli(["card", "get", `CardsFlow/${run}/train`, "--datastore", store]);
    expect(many.code).toBe(2);
    expect(many.stderr).toContain("has 4 tasks");
    const missing = await cli(["card", "get", `CardsFlow/${run}/end`, "--datastore", store]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("has no cards (add @card() to its step");
  });

  it("the client lists each task's cards with id, type, data and HTML", async () => {
    const client = createClient(fsDatastore({ root: store }), nodeHost());
    client.namespace(null);
    const step = await client.get(`CardsFlow/${run}/train`);
    const tasks = await (step as any).tasks();
    expect(tasks).toHaveLength(4);
    for (const t of tasks) {
      const cards = await t.cards();
      expect(cards.map((c: any) => [c.id, c.type, c.final])).toEqual([
        ["training", "blank", true],
        ["default", "default", true],
      ]);
      const data = await cards[1].data();
      expect(data.components.map((c: any) => c.type)).toEqual(["chart", "table"]);
      expect(data.task.status).toBe("succeeded");
      expect(data.task.parameters).toEqual({ epochs: 20, points: 200, pause: 0 });
      const progress = (await cards[0].data()).components.find((c: any) => c.type === "progress");
      expect(progress).toMatchObject({ value: 20, max: 20 });
      expect(await cards[1].html()).toContain("tf-chart");
    }
  });

  it("a card-type plugin (examples/plugins/leaderboard-card.ts) ranks the join's results", async () => {
    const res = await cli(["card", "get", `CardsFlow/${run}/compare`, "--id", "leaderboard", "--datastore", store]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain("Leaderboard <span");
    const ranks = [...res.stdout.matchAll(/<tr[^>]*><td>(★ 1|\d)<\/td><td>([\d.]+)<\/td>/g)].map((m) => [m[1], m[2]]);
    expect(ranks.map((r) => r[0])).toEqual(["★ 1", "2", "3", "4"]);
    expect(ranks[0]![1]).toBe("0.6"); // the best learning rate of the toy problem
    expect(res.stdout.length).toBeLessThan(100_000); // no charts: no vega bundles
  });

  it("tsflow card view writes the card to a file and says where, with no browser to open", async () => {
    const res = await cli(["card", "view", `CardsFlow/${run}/start`, "--datastore", store], { env: { TSFLOW_NO_BROWSER: "1" } });
    expect(res.code, res.stderr).toBe(0);
    const file = res.stdout.trim();
    expect(file).toMatch(/tsflow-cards\/CardsFlow_.+_start_1_default\.html$/);
    expect(readFileSync(file, "utf8")).toContain("Toy regression");
    expect(res.stderr).toContain("open the file above");
  });

  it("gc keeps the blobs of cards", async () => {
    const ds = fsDatastore({ root: store });
    await collectGarbage(ds, { graceMs: 0 });
    const res = await cli(["card", "get", `CardsFlow/${run}/compare`, "--id", "default", "--datastore", store]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain("Models compared");
  });
});

describe("cards that misbehave", () => {
  it("a throwing card type, HTML in Markdown and a failing step fail no card", async () => {
    const store = tempStore();
    const res = await cli(["run", "test/cards/fixtures/hostile.ts", "--datastore", store], { timeoutMs: 60_000 });
    expect(res.code).toBe(1); // the end step fails on purpose
    expect(res.stdout + res.stderr).toContain("has no card 'nope' (its cards: default, broken)");
    const run = runId(res.stdout + res.stderr)!;
    const client = createClient(fsDatastore({ root: store }), nodeHost());
    client.namespace(null);
    const start = await client.get(`HostileCardsFlow/${run}/start/1`);
    expect((start as any).successful).toBe(true);
    const cards = await (start as any).cards();
    const broken = cards.find((c: any) => c.id === "broken");
    expect(broken.error).toContain("card type 'broken' failed: this card type always fails");
    expect(await broken.html()).toContain("This card could not be rendered");

    const html = await cards.find((c: any) => c.id === "default").html();
    expect(html).not.toContain('<script>document.title="pwned"');
    expect(html).toContain("&lt;script&gt;document.title=");
    expect(html).not.toContain("<img src=x");
    expect(html).not.toContain('href="javascript:');
    expect(html).toContain("<strong>bold cell</strong>");
    expect(html).toContain("Image: the bytes are not a PNG, JPEG, GIF, WebP or SVG image");
    expect(html).toContain("RangeError: shown, not thrown");
    expect(html).toContain("&#60;b&#62;artifact html&#60;/b&#62;");

    // The failed end task still has its card, showing the error.
    const list = await cli(["card", "get", `HostileCardsFlow/${run}/end`, "--datastore", store]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain("the end step fails on purpose");
    expect(list.stdout).toContain("tf-failed");
  });

  it("--with card gives every step the default card", async () => {
    const store = tempStore();
    const res = await cli(["run", "examples/parameters.ts", "--datastore", store, "--with", "card"], { timeoutMs: 60_000 });
    expect(res.code, res.stderr).toBe(0);
    const run = runId(res.stdout)!;
    const client = createClient(fsDatastore({ root: store }), nodeHost());
    client.namespace(null);
    const r = await client.get(`ParametersFlow/${run}`);
    for (const name of (r as any).doc.graph.order) {
      const [task] = await (r as any).step(name).tasks();
      const cards = await task.cards();
      expect(cards.map((c: any) => c.id), name).toEqual(["default"]);
      const data = await cards[0].data();
      expect(data.task.step).toBe(name);
      expect(data.task.graph.order).toContain(name);
    }
  });
});
