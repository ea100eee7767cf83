/**
 * Cards: (1) what `@card` adds to a task that appends nothing — linear10 run in-process with
 * the inline executor, with and without `--with card`, median of alternating runs; (2) how long
 * a card with a 10,000-row table and a 10,000-point chart takes to open in the viewer, in
 * chromium: from navigating to its task page until the card's chart is drawn.
 *
 *   npx tsx bench/cards.ts
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CHROMIUM, launchChromium } from "../test/_chromium.ts";
import type { Row } from "./_measure.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function overhead(): Promise<Row[]> {
  const { runFlow } = await import("../mod.ts");
  const { default: Linear10 } = await import("./flows/linear10.ts");
  const dir = mkdtempSync(join(tmpdir(), "tsflow-bench-cards-"));
  try {
    // CPU time as well as wall time: on a machine shared with other jobs the wall clock
    // mostly measures the queue for a core; this process's CPU time does not.
    const once = async (withCard: boolean) => {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const res = await runFlow(Linear10, { datastore: dir, executor: "inline", ...(withCard ? { with: { card: {} } } : {}) });
      if (!res.successful) throw new Error(`linear10 failed: ${res.error?.message}`);
      const c = process.cpuUsage(c0);
      return { ms: performance.now() - t0, cpu: (c.user + c.system) / 1000, tasks: res.tasks };
    };
    await once(false);
    await once(true); // loads the renderer once, as a warm worker would
    const plain: { ms: number; cpu: number }[] = [];
    const carded: { ms: number; cpu: number }[] = [];
    let tasks = 10;
    for (let i = 0; i < 11; i++) {
      const a = await once(false);
      const b = await once(true);
      plain.push({ ms: a.ms / a.tasks, cpu: a.cpu / a.tasks });
      carded.push({ ms: b.ms / b.tasks, cpu: b.cpu / b.tasks });
      tasks = a.tasks;
    }
    const p = median(plain.map((x) => x.ms));
    const c = median(carded.map((x) => x.ms));
    const pc = median(plain.map((x) => x.cpu));
    const cc = median(carded.map((x) => x.cpu));
    return [
      { name: `@card, task appending nothing: wall per task without (linear10, ${tasks} tasks, in-process)`, value: p, unit: "ms" },
      { name: "@card, task appending nothing: wall per task with --with card", value: c, unit: "ms" },
      { name: "@card, task appending nothing: added wall per task", value: c - p, unit: "ms", target: "< 20 ms" },
      { name: "@card, task appending nothing: wall ratio with/without", value: c / p, unit: "×" },
      { name: "@card, task appending nothing: CPU per task without", value: pc, unit: "ms" },
      { name: "@card, task appending nothing: CPU per task with --with card", value: cc, unit: "ms" },
      { name: "@card, task appending nothing: added CPU per task", value: cc - pc, unit: "ms", target: "< 20 ms" },
      { name: "@card, task appending nothing: CPU ratio with/without", value: cc / pc, unit: "×" },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function openTime(): Promise<Row[]> {
  if (!CHROMIUM) return [{ name: "card open in the viewer: skipped (no chromium at /usr/lib/chromium/chromium)", value: Number.NaN, unit: "ms", target: "< 1000 ms" }];
  const dir = mkdtempSync(join(tmpdir(), "tsflow-bench-bigcard-"));
  const run = spawnSync(process.execPath, [join(root, "bin", "tsflow.mjs"), "run", "bench/flows/bigcard.ts", "--datastore", dir], { cwd: root, encoding: "utf8" });
  if (run.status !== 0) throw new Error(`bigcard run failed: ${run.stderr}`);
  const runId = /Run BigCardFlow\/(\S+) succeeded/.exec(run.stdout)![1]!;
  const [{ createViewerApp }, { serve }, { default: fsDatastore }, { default: nodeHost }]= await Promise.all([
    import("../viewer/app.ts"),
    import("@hono/node-server"),
    import("../plugins/datastores/fs.ts"),
    import("../plugins/host/node.ts"),
  ]);
  const app = createViewerApp({ store: fsDatastore({ root: dir }), host: nodeHost() });
  const server = await new Promise<ReturnType<typeof serve>>((ok) => {
    const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => ok(s));
  });
  const addr = server.address();
  const base = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
  const browser = await launchChromium();
  try {
    const times: number[] = [];
    const firsts: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 4; i++) {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const t0 = performance.now();
      await page.goto(`${base}/runs/BigCardFlow/${runId}/start/1`);
      const frame = page.frameLocator("#card-default iframe.cardframe");
      await frame.locator(".tf-table tbody tr").first().waitFor({ timeout: 30_000 });
      firsts.push(performance.now() - t0);
      await frame.locator("body[data-rendered]").waitFor({ timeout: 30_000 });
      times.push(performance.now() - t0);
      if ((await frame.locator(".tf-chart canvas, .tf-chart svg").count()) === 0) throw new Error("the big card drew no chart");
      if (i === 0) bytes = (await (await fetch(`${base}/cards/BigCardFlow/${runId}/start/1/default?attempt=0`)).arrayBuffer()).byteLength;
      await page.close();
    }
    // The browser's own CPU for the card document, opened alone (the frame's content), from the
    // DevTools metrics: what the open costs without waiting for a core on a shared machine.
    const cpu: number[] = [];
    for (let i = 0; i < 3; i++) {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const cdp = await page.context().newCDPSession(page);
      await cdp.send("Performance.enable");
      const metric = async (name: string) => (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === name)?.value ?? 0;
      const before = await metric("ThreadTime");
      await page.goto(`${base}/cards/BigCardFlow/${runId}/start/1/default?attempt=0`);
      await page.locator("body[data-rendered]").waitFor({ timeout: 30_000 });
      cpu.push(((await metric("ThreadTime")) - before) * 1000);
      await page.close();
    }
    const load = (await import("node:os")).loadavg()[0]!;
    return [
      { name: "card open in the viewer: 10,000-row table + 10,000-point chart, wall (first)", value: times[0]!, unit: "ms", target: "< 1000 ms" },
      { name: "card open in the viewer: 10,000-row table + 10,000-point chart, wall (median of 3 more)", value: median(times.slice(1)), unit: "ms", target: "< 1000 ms" },
      { name: "card open in the viewer: its table shown, wall (median of 3 more)", value: median(firsts.slice(1)), unit: "ms" },
      { name: "card open: the card document's main-thread CPU in chromium (median of 3)", value: median(cpu), unit: "ms", target: "< 1000 ms" },
      { name: "card open: size of the card's document", value: bytes / 1024, unit: "KB" },
      { name: "card open: machine load average while measuring (2 cores)", value: load, unit: "" },
    ];
  } finally {
    await browser.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchCards(): Promise<Row[]> {
  return [...(await overhead()), ...(await openTime())];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchCards()) console.log(`${r.name.padEnd(90)} ${r.value.toFixed(1).padStart(9)} ${r.unit}${r.target ? `  (target ${r.target})` : ""}`);
}
