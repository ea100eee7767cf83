/**
 * Cards in a real browser (Debian's chromium through playwright-core) against `tsflow view`:
 * the example's charts are drawn, a live card moves while its task runs without any reload,
 * a card's own script cannot reach the viewer, and Markdown's `<script>` stays text. Skipped,
 * saying why, when chromium is missing (`.ci/chromium.sh` installs it).
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { CHROMIUM, cli, launchChromium, spawnCli, startViewer, tempStore, workersOf } from "../_helpers.ts";

if (!CHROMIUM) console.warn("[card browser tests] skipped: no chromium at /usr/lib/chromium/chromium or /usr/bin/chromium (install it with .ci/chromium.sh, or set CHROMIUM)");

const runIdOf = (out: string) => /Run \w+\/(\S+) (?:succeeded|failed)/.exec(out)?.[1];

describe.skipIf(!CHROMIUM)("cards in chromium", () => {
  let store: string;
  let base: string;
  let server: ChildProcess;
  let browser: Browser;
  let page: Page;
  let dialogs = 0;
  const runs: Record<string, string> = {};

  const run = async (file: string, ...args: string[]) => {
    const res = await cli(["run", file, "--datastore", store, ...args], { timeoutMs: 90_000 });
    expect(res.code, res.stderr).toBe(0);
    return runIdOf(res.stdout)!;
  };

  beforeAll(async () => {
    store = tempStore();
    [runs.cards, runs.probe] = await Promise.all([run("examples/cards.ts", "--epochs", "30", "--pause", "0"), run("test/cards/fixtures/probe.ts")]);
    ({ server, base } = await startViewer(store));
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.on("dialog", (d) => {
      dialogs++;
      void d.dismiss();
    });
    // Nothing a card shows may come from the network: every request stays on the viewer.
    page.on("request", (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith("data:") && r.url() !== "about:blank") throw new Error(`a card requested ${r.url()}`);
    });
  });

  afterAll(async () => {
    await browser?.close();
    server?.kill("SIGTERM");
  });

  it("draws the example's charts, tables and progress bars", async () => {
    await page.goto(`${base}/runs/CardsFlow/${runs.cards}`);
    const listed = page.locator("table.cards tbody tr");
    expect(await listed.count()).toBe(6); // start, 4 × train, compare
    await page.locator("table.cards a", { hasText: "default" }).last().click();
    await page.waitForURL("**/compare/*#card-default");
    const frame = page.frameLocator("#card-default iframe.cardframe");
    await frame.locator("body[data-rendered]").waitFor({ timeout: 30_000 });
    // One line per learning rate, each a path with real geometry.
    const lines = frame.locator(".tf-chart svg .mark-line path");
    expect(await lines.count()).toBe(4);
    for (const d of await lines.evaluateAll((ps) => ps.map((p) => p.getAttribute("d") ?? ""))) expect(d.length).toBeGreaterThan(50);
    expect(await frame.locator(".tf-components .tf-table tbody tr").count()).toBe(4);
    expect(await frame.locator(".tf-artifact").textContent()).toContain("best");
    // The frame grew to its content: no inner scrollbar.
    const height = await page.locator("#card-default iframe").evaluate((f: HTMLIFrameElement) => f.getBoundingClientRect().height);
    expect(height).toBeGreaterThan(600);

    const trains = readdirSync(join(store, "flows", "CardsFlow", "runs", runs.cards!, "tasks", "train"));
    await page.goto(`${base}/runs/CardsFlow/${runs.cards}/train/${trains[0]}`);
    const card = page.frameLocator("#card-default iframe.cardframe");
    await card.locator("body[data-rendered]").waitFor({ timeout: 30_000 });
    expect(await card.locator(".tf-chart svg .mark-line path").count()).toBe(1);
    expect(await card.locator(".tf-components .tf-table tbody tr").count()).toBe(4);
    const training = page.frameLocator("#card-training iframe.cardframe");
    expect(await training.locator(".tf-progress").getAttribute("data-value")).toBe("30");
    expect(dialogs).toBe(0);
  });

  it("updates a live card while its task runs, without reloading the page or the card", async () => {
    // The four models train at once (6 s each): one at a time, the run took 24 s of the suite.
    const running = spawnCli(["run", "examples/cards.ts", "--datastore", store, "--epochs", "150", "--pause", "40", "--max-workers", "4"]);
    // While the page loads, the tasks' workers are stopped (SIGSTOP), so the page meets the task
    // running and its progress short of the end however slowly chromium starts: the first
    // task's 6 s of epochs was a race against the page's load on a loaded machine.
    let stopped: number[] = [];
    const resume = () => {
      for (const pid of stopped) {
        try {
          process.kill(pid, "SIGCONT");
        } catch {}
      }
      stopped = [];
    };
    const dir = join(store, "flows", "CardsFlow", "runs");
    const known = new Set(readdirSync(dir));
    let id = "";
    let task = "";
    await expect
      .poll(
        () => {
          id = readdirSync(dir).find((r) => !known.has(r)) ?? "";
          const train = id && join(dir, id, "tasks", "train");
          const first = train && existsSync(train) ? readdirSync(train).sort((a, b) => Number(a) - Number(b))[0] : undefined;
          task = first ?? "";
          return first !== undefined && existsSync(join(train, first, "0", "cards", "training.json"));
        },
        { timeout: 30_000, interval: 100 },
      )
      .toBe(true);
    stopped = workersOf(running.child.pid!);
    for (const pid of stopped) process.kill(pid, "SIGSTOP");
    onTestFinished(() => {
      resume();
      running.child.kill("SIGKILL");
    });
    const live = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    await live.goto(`${base}/runs/CardsFlow/${id}/train/${task}`);
    expect(await live.locator("h1 .st").textContent()).toBe("running");
    await live.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
    const frameEl = live.locator("#card-training iframe.cardframe");
    await live.frameLocator("#card-training iframe.cardframe").locator(".tf-progress").waitFor();
    const frame = (await frameEl.elementHandle())!;
    const inner = (await frame.contentFrame())!;
    await inner.evaluate(() => ((window as unknown as { marker: number }).marker = 9));
    const value = async () => Number(await inner.locator(".tf-progress").getAttribute("data-value"));
    const first = await value();
    expect(first).toBeLessThan(150);
    resume();
    await expect.poll(value, { timeout: 30_000, interval: 200 }).toBeGreaterThan(first);
    const second = await value();
    await expect.poll(value, { timeout: 30_000, interval: 200 }).toBeGreaterThan(second);
    await expect.poll(value, { timeout: 30_000, interval: 250 }).toBe(150);
    // Same page, same card document: both markers survived every update.
    expect(await live.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(7);
    expect(await inner.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(9);
    await expect.poll(() => live.locator("h1 .st").textContent(), { timeout: 30_000, interval: 250 }).toBe("succeeded");
    await live.close();
    expect((await running.exited).code, running.stderr()).toBe(0);
  }, 150_000);

  it("keeps a card's script away from the viewer's page and API", async () => {
    await page.goto(`${base}/runs/ProbeFlow/${runs.probe}/start/1`);
    const frame = page.frameLocator("#card-probe iframe.cardframe");
    await frame.locator("body[data-probed]").waitFor({ timeout: 15_000 });
    const found = await frame.locator("#probe").textContent();
    expect(found).toContain("script ran");
    expect(found).toMatch(/parent\.document: blocked \(SecurityError\)/);
    expect(found).toMatch(/fetch: blocked/);
    expect(found).not.toContain("READ");
    // Opened on its own (the "open" link), the card is still sandboxed by its response headers.
    const alone = await browser.newPage();
    await alone.goto(`${base}/cards/ProbeFlow/${runs.probe}/start/1/probe?attempt=0`);
    await alone.locator("body[data-probed]").waitFor({ timeout: 15_000 });
    expect(await alone.locator("#probe").textContent()).toMatch(/fetch: blocked[\s\S]*storage: blocked/);
    await alone.close();
  });

  it("shows Markdown's <script> and event handlers as inert text", async () => {
    await page.goto(`${base}/runs/ProbeFlow/${runs.probe}/start/1`);
    const frame = page.frameLocator("#card-markdown iframe.cardframe");
    await frame.locator("body[data-rendered]").waitFor({ timeout: 15_000 });
    const md = frame.locator(".tf-md");
    expect(await md.textContent()).toContain('<script>document.title="pwned"');
    expect(await md.locator("script, img").count()).toBe(0);
    await page.waitForTimeout(300);
    expect(await frame.locator("body").getAttribute("data-pwned")).toBeNull();
    expect(dialogs).toBe(0);
  });

  it("exports a run with its cards, drawn from disk", async () => {
    const out = join(tempStore(), "export");
    const res = await cli(["view", "--export", out, `CardsFlow/${runs.cards}`, "--datastore", store]);
    expect(res.code, res.stderr).toBe(0);
    const files = readdirSync(join(out, "cards"));
    expect(files.filter((f) => f.endsWith("-default.html"))).toHaveLength(6);
    const compare = readdirSync(out).find((f) => f.startsWith("task-compare-"))!;
    const offline = await browser.newPage();
    offline.on("request", (r) => {
      if (!r.url().startsWith("file://") && !r.url().startsWith("data:") && r.url() !== "about:blank") throw new Error(`the export requested ${r.url()}`);
    });
    await offline.goto(`file://${join(out, compare)}`);
    const frame = offline.frameLocator("#card-default iframe.cardframe");
    await frame.locator("body[data-rendered]").waitFor({ timeout: 30_000 });
    expect(await frame.locator(".tf-chart svg .mark-line path").count()).toBe(4);
    await offline.close();
  });
});
