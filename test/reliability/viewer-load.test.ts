/**
 * The viewer process under load (issue #18 item 6): the real `tsflow view` over a datastore
 * holding its biggest pages — a 3,000-task run (in soak: 10,000, and a 1,000,000-task one), a 2 GB
 * artifact whose record claims 100 bytes, a 20 MB run.json, an artifact of shared sub-objects —
 * answers 20 concurrent requests for them with pages or clear 413s, and its peak RSS
 * (VmHWM from /proc) stays bounded. The figure is printed for the record.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeBigDatastore } from "../../bench/viewer.ts";
import { mapLimit, putJson } from "../../core/_datastore.ts";
import { blobKey, doneKey, runKey, stepsPrefix } from "../../core/_layout.ts";
import { serialize } from "../../core/serialize.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { CLI, tempStore } from "../_helpers.ts";
import { F, R, writeRun } from "../viewer/_run.ts";
import { SOAK } from "./_util.ts";

// The run page past 50,000 tasks is built from the listing; the default suite checks that path
// through app.request() (test/viewer/limits.test.ts), the soak here with a million tasks.
const WIDE = SOAK ? 1_000_000 : 0;
const BIG = SOAK ? 10_000 : 3_000;
const WIDE_RUN = "1790000000009-wide";
let root: string;
let dir: string;
let child: ChildProcess;
let base: string;
let bigRun: string;

/** A run with `n` tasks of one step, listed as directories (done.json only for the first 200). */
async function writeWideRun(n: number) {
  const store = fsDatastore({ root });
  await putJson(store, runKey(F, WIDE_RUN), { flow: F, runId: WIDE_RUN, status: "succeeded", createdAt: 1_790_000_000_000, graph: { order: ["start", "work"], steps: { start: { type: "foreach", foreach: "xs", next: ["work"] }, work: { type: "end", next: [] } } } });
  const dir = join(root, stepsPrefix(F, WIDE_RUN), "work");
  mkdirSync(dir, { recursive: true });
  for (let i = 1; i <= n; i++) mkdirSync(join(dir, String(i)));
  await mapLimit(
    Array.from({ length: 200 }, (_, i) => i + 1),
    16,
    (i) => putJson(store, doneKey(F, WIDE_RUN, "work", String(i)), { ok: true, attempt: 0, artifacts: {}, next: [], startedAt: 1_790_000_000_000 + i, finishedAt: 1_790_000_000_010 + i }),
  );
}

beforeAll(async () => {
  dir = tempStore();
  root = join(dir, "store");
  const store = fsDatastore({ root });
  ({ bigRun } = await writeBigDatastore(root, 50, BIG));
  // 2 GB of blob on disk (sparse), under a reference that claims 100 bytes; and one that says 2 GB.
  const head = serialize("x", "huge").chunks;
  const hash = "f".repeat(64);
  mkdirSync(join(root, blobKey(hash), ".."), { recursive: true });
  const fd = openSync(join(root, blobKey(hash)), "w");
  for (const c of head) writeSync(fd, c);
  writeSync(fd, new Uint8Array(1), 0, 1, 2 ** 31);
  closeSync(fd);
  let shared: Record<string, unknown> = { v: 1 };
  for (let i = 0; i < 40; i++) shared = { l: shared, r: shared };
  await writeRun(store, { shared }, { refs: { liar: { hash, size: 100, type: "string" }, huge: { hash, size: 2 ** 31 + 1, type: "string" } } });
  await putJson(store, runKey(F, "1790000000001-huge"), { flow: F, runId: "1790000000001-huge", status: "succeeded", createdAt: 1, tags: Array.from({ length: 2_500_000 }, (_, i) => `tag${i}`) });
  if (WIDE) await writeWideRun(WIDE);
  base = await new Promise<string>((resolve, reject) => {
    child = spawn(process.execPath, [CLI, "view", "--port", "0", "--datastore", root], { env: { ...process.env, NO_COLOR: "1" } });
    let out = "";
    child.stdout!.on("data", (c) => {
      out += c;
      const m = /viewer on (\S+)/.exec(out);
      if (m) resolve(m[1]!.replace(/\/$/, ""));
    });
    child.on("exit", (code) => reject(new Error(`tsflow view exited with ${code}`)));
  });
}, SOAK ? 1_200_000 : 300_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill();
    await exited;
  }
  // A temp directory made in beforeAll is not removed by tempStore's hooks; this one is big.
  rmSync(dir, { recursive: true, force: true });
});

const peakRssMb = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

describe("the viewer under 20 concurrent requests for its biggest pages", () => {
  it("answers every one with a page or a clear 413, within bounded memory", async () => {
    const before = peakRssMb(child.pid!);
    const pages: [string, number, RegExp][] = [
      [`/runs/BigFlow/${bigRun}`, 200, new RegExp(`${BIG}/${BIG} tasks`)],
      ...(WIDE ? [[`/runs/${F}/${WIDE_RUN}`, 200, new RegExp(`This run has ${WIDE.toLocaleString("en-US")} tasks`)] as [string, number, RegExp]] : []),
      [`/runs/${F}/${R}/end/2`, 200, /too large to preview/],
      [`/artifacts/${F}/${R}/end/2/liar?format=json`, 413, /too large to load here \(2147483\d+ bytes/],
      [`/artifacts/${F}/${R}/end/2/huge?format=json`, 413, /too large to convert/],
      [`/artifacts/${F}/${R}/end/2/shared?format=json`, 200, /\[shared: same as \$\.l\]/],
      [`/runs/${F}/1790000000001-huge`, 413, /too large to load here/],
      ["/runs", 200, /Runs/],
    ];
    const requests = Array.from({ length: 20 }, (_, i) => pages[i % pages.length]!);
    const t0 = performance.now();
    const answers = await Promise.all(
      requests.map(async ([path, status, body]) => {
        const res = await fetch(base + path);
        const text = await res.text();
        expect(res.status, path).toBe(status);
        expect(text, path).toMatch(body);
        return text.length;
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const peak = peakRssMb(child.pid!);
    console.log(`viewer: 20 concurrent requests (${WIDE ? `${WIDE.toLocaleString("en-US")}-task run, ` : ""}${BIG.toLocaleString("en-US")}-task run, 2 GB artifact, 20 MB run.json, 2^40-path value) in ${seconds.toFixed(1)} s; peak RSS ${peak.toFixed(0)} MB (before: ${before.toFixed(0)} MB); ${(answers.reduce((a, b) => a + b, 0) / 1e6).toFixed(1)} MB sent`);
    expect(child.exitCode).toBeNull();
    expect(peak).toBeLessThan(SOAK ? 1500 : 800);
  }, 300_000);
});
