/**
 * The viewer in a real browser: Debian's chromium driven by playwright-core against
 * `tsflow view` over a datastore made by running the examples. Screenshots of each page go
 * to test/artifacts/viewer-*.png (git-ignored). Skipped, saying why, when chromium is missing
 * (`.ci/chromium.sh` installs it).
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, cli, launchChromium, ROOT, startViewer, tempStore } from "../_helpers.ts";

const SHOTS = join(ROOT, "test", "artifacts");
const XSS = "<script>alert(1)</script>";
const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `viewer-${name}.png`) });

if (!CHROMIUM) console.warn("[viewer browser tests] skipped: no chromium at /usr/lib/chromium/chromium or /usr/bin/chromium (install it with .ci/chromium.sh, or set CHROMIUM)");

describe.skipIf(!CHROMIUM)("the viewer in chromium", () => {
  let store: string;
  let base: string;
  let server: ChildProcess;
  let browser: Browser;
  let page: Page;
  let dialogs = 0;
  const runs: Record<string, string> = {};

  const runFlow = async (file: string, ...args: string[]) => {
    const res = await cli(["run", file, "--datastore", store, ...args], { timeoutMs: 60_000 });
    expect(res.code, res.stderr).toBe(0);
    const [, flow, id] = /Run (\w+)\/(\S+) succeeded/.exec(res.stdout)!;
    runs[flow!] = id!;
  };

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    store = tempStore();
    await Promise.all([
      runFlow("examples/pets.ts"),
      runFlow("examples/foreach.ts"),
      runFlow("examples/switch.ts"),
      runFlow("examples/parameters.ts"),
      runFlow("test/viewer/fixtures/showcase.ts", "--tag", "<b>tag</b>"),
    ]);
    ({ server, base } = await startViewer(store));
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
    page.on("dialog", (d) => {
      dialogs++;
      void d.dismiss();
    });
  });

  afterAll(async () => {
    await browser?.close();
    server?.kill("SIGTERM");
  });

  it("tours runs → run → DAG → task → logs → artifact preview", async () => {
    await page.goto(`${base}/`);
    await expect.poll(() => page.locator("h2").allTextContents(), { timeout: 15_000 }).toEqual(expect.arrayContaining([expect.stringContaining("PetsFlow")]));
    await shot(page, "flows");

    await page.goto(`${base}/runs`);
    expect(await page.locator("table.runs tbody tr").count()).toBe(5);
    await shot(page, "runs");
    await page.getByRole("link", { name: runs.PetsFlow! }).click();
    await page.waitForURL(`**/runs/PetsFlow/${runs.PetsFlow}`);
    const steps = page.locator("svg.dag g.step");
    expect(await steps.count()).toBe(5);
    expect(await steps.evaluateAll((gs) => gs.map((g) => g.getAttribute("data-state")))).toEqual(Array(5).fill("succeeded"));
    expect(await page.locator("svg.gantt rect").count()).toBe(5);
    await shot(page, "run");

    await page.locator('svg.dag g[data-step="join"] a').click();
    await page.waitForURL("**/PetsFlow/**/join/*");
    expect(await page.locator("#stdout").textContent()).toContain("Good pets (a) are dogs, cats, budgies");
    expect(await page.locator("#artifact-pets .preview").textContent()).toContain("elephants");
    await shot(page, "task");

    await page.goto(`${base}/runs/ForeachFlow/${runs.ForeachFlow}`);
    expect(await page.locator('svg.dag g[data-step="square_it"]').textContent()).toContain("10/10 tasks");
    await page.goto(`${base}/runs/ShowcaseFlow/${runs.ShowcaseFlow}/start/1`);
    expect(await page.locator("#artifact-pets table.records tbody tr").count()).toBe(3);
    expect(await page.locator("#artifact-config details").count()).toBeGreaterThan(2);
    expect(await page.locator("#artifact-image img").evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(96);
    expect(await page.locator("#artifact-blob .hex").textContent()).toContain("00 01 02 03");
    expect(await page.locator("#artifact-big").textContent()).toContain("too large to preview");
    await page.locator("#artifact-pets").evaluate((e) => e.scrollIntoView());
    await shot(page, "artifacts");
  });

  it("shows hostile logs, tags, parameters and artifacts as text", async () => {
    await page.goto(`${base}/runs/ShowcaseFlow/${runs.ShowcaseFlow}/start/1`);
    expect(await page.locator("#stdout").textContent()).toContain(XSS);
    expect(await page.locator("#stderr").textContent()).toContain("<b>not bold</b>");
    expect(await page.locator("#artifact-text pre").textContent()).toContain("<script>alert(3)</script>");
    expect(await page.locator("main script, main img[src='x'], pre b, pre i, td i, .tag b").count()).toBe(0);
    await page.goto(`${base}/runs?flow=ShowcaseFlow`);
    expect(await page.locator("table.runs").textContent()).toContain("<b>tag</b>");
    expect(await page.locator("table.runs").textContent()).toContain("note=<img src=x onerror=alert(2)>");
    expect(await page.locator("table.runs b, table.runs img").count()).toBe(0);
    expect(dialogs).toBe(0);
  });

  it("updates a running run without a reload", async () => {
    // Each work item holds until the test opens its gate, so the pages below meet the task and
    // the run while they run however slowly chromium starts (a 2.5 s sleep per item was a race).
    const gate = join(tempStore(), "gate");
    const open = (item: number | string) => writeFileSync(`${gate}-${item}`, "");
    const running = cli(["run", "test/viewer/fixtures/slow.ts", "--datastore", store, "--max-workers", "1", "--gate", gate], { timeoutMs: 120_000 });
    try {
      const dir = join(store, "flows", "SlowFlow", "runs");
      await expect.poll(() => existsSync(dir) && readdirSync(dir).some((r) => existsSync(join(dir, r, "tasks", "work"))), { timeout: 30_000, interval: 100 }).toBe(true);
      const id = readdirSync(dir)[0]!;
      // The task page of the first work task, while it runs: its logs and state arrive by themselves.
      const taskPage = await browser.newPage({ viewport: { width: 1000, height: 760 } });
      const workDir = join(dir, id, "tasks", "work");
      const first = readdirSync(workDir).sort((a, b) => Number(a) - Number(b))[0]!;
      await taskPage.goto(`${base}/runs/SlowFlow/${id}/work/${first}`);
      expect(await taskPage.locator("h1 .st").textContent()).toBe("running");
      await taskPage.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
      // Which item this task is, from its own live log; then let it finish.
      await expect.poll(() => taskPage.locator("#stdout").textContent(), { timeout: 30_000, interval: 250 }).toMatch(/working on item \d/);
      open(/working on item (\d)/.exec((await taskPage.locator("#stdout").textContent())!)![1]!);
      await expect.poll(() => taskPage.locator("#stdout").textContent(), { timeout: 30_000, interval: 250 }).toMatch(/item \d done/);
      await expect.poll(() => taskPage.locator("h1 .st").textContent(), { timeout: 30_000, interval: 250 }).toBe("succeeded");
      expect(await taskPage.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(7);
      await taskPage.close();
      // The other items wait at their gates: the run is running.
      await page.goto(`${base}/runs/SlowFlow/${id}`);
      expect(await page.locator("h1 .st").textContent()).toBe("running");
      await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
      await shot(page, "live-running");
      const bars = await page.locator("svg.gantt rect").count();
      for (const item of [0, 1, 2]) open(item);
      await expect.poll(() => page.locator("h1 .st").textContent(), { timeout: 30_000, interval: 250 }).toBe("succeeded");
      expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
      expect(await page.locator('svg.dag g[data-step="work"]').textContent()).toContain("3/3 tasks");
      expect(await page.locator("svg.gantt rect").count()).toBeGreaterThan(bars);
      await shot(page, "live-done");
      expect((await running).code).toBe(0);
    } finally {
      for (const item of [0, 1, 2]) open(item);
      await running.catch(() => {});
    }
  }, 180_000);

  it("exports a static copy of a run that opens from disk", async () => {
    const out = join(tempStore(), "export");
    const res = await cli(["view", "--export", out, `PetsFlow/${runs.PetsFlow}`, "--datastore", store]);
    expect(res.code, res.stderr).toBe(0);
    await page.goto(`file://${out}/index.html`);
    expect(await page.locator("svg.dag g.step").count()).toBe(5);
    await page.locator('svg.dag g[data-step="join"] a').click();
    expect(await page.locator("#stdout").textContent()).toContain("Good pets");
    await shot(page, "export");
  });
});
