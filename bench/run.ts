/**
 * `npm run bench`: every benchmark of tsflow in one table, with the targets beside the
 * figures, written to bench/results/latest.json too. Machines here are noisy: compare
 * ratios inside one run (the raw disk and hash limits are measured in the same run).
 *
 *   npm run bench              everything
 *   npm run bench -- core big  only some groups (core, big, s3, bigartifact, client, viewer, executors, startup, cards, spin, scale;
 *                                TSFLOW_BENCH_SCALE_BIG=1 adds a 100,000-way foreach and 100,000 runs)
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { measure, type Row } from "./_measure.ts";

export type { Row };

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "bin", "tsflow.mjs");

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function benchCore(): Promise<Row[]> {
  const rows: Row[] = [];
  const ds = mkdtempSync(join(tmpdir(), "tsflow-bench-"));
  const workloads: { name: string; file: string; args: string[]; target: number; reference: string; repeat: number; rss?: number }[] = [
    { name: "hello", file: "examples/hello.ts", args: [], target: 0.2, reference: "1.7 s", repeat: 5 },
    { name: "linear10", file: "bench/flows/linear10.ts", args: [], target: 0.6, reference: "6.9 s", repeat: 3 },
    { name: "foreach100", file: "examples/foreach.ts", args: ["--n", "100"], target: 1.5, reference: "55 s", repeat: 3 },
    { name: "foreach1000", file: "examples/foreach.ts", args: ["--n", "1000"], target: 6, reference: "437 s", repeat: 1 },
    { name: "bigartifact", file: "examples/bigartifact.ts", args: ["--mb", "100"], target: 1.5, reference: "10.3 s / 457 MB", repeat: 3, rss: 400 },
  ];
  try {
    for (const w of workloads) {
      const runs = [];
      for (let i = 0; i < w.repeat; i++) runs.push(await measure(process.execPath, [cli, "run", w.file, ...w.args, "--datastore", ds], { cpu: true }));
      const secs = median(runs.map((r) => r.seconds));
      rows.push({ name: `${w.name} wall`, value: secs, unit: "s", target: `≤ ${w.target} s`, reference: w.reference });
      const cpus = runs.map((r) => r.cpuSeconds).filter((c): c is number => c !== undefined);
      if (cpus.length) rows.push({ name: `${w.name} CPU (user+sys, all processes)`, value: median(cpus), unit: "s" });
      rows.push({ name: `${w.name} peak RSS, largest process`, value: Math.max(...runs.map((r) => r.peakOneMb)), unit: "MB", target: w.rss ? `≤ ${w.rss} MB` : undefined });
      rows.push({ name: `${w.name} peak RSS, all processes`, value: Math.max(...runs.map((r) => r.peakTreeMb)), unit: "MB" });
    }
  } finally {
    rmSync(ds, { recursive: true, force: true });
  }
  return rows;
}

/** Put+get of one big artifact in a child process, against the raw copy and hash limits. */
async function benchBig(): Promise<Row[]> {
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), "tsflow-big-"));
  try {
    for (const mb of [100, 1024]) {
      // Raw limits: copying a file of the same size, and SHA-256 over it.
      const file = join(dir, "raw.bin");
      const buf = Buffer.alloc(mb * 1024 * 1024, 7);
      writeFileSync(file, buf);
      // Two raw copies: cp (in-kernel copy_file_range, no user-space pass over the bytes) and
      // dd (read+write through user space, what a program that touches its data can do).
      const c0 = performance.now();
      await measure("cp", [file, join(dir, "raw-copy.bin")]);
      const copySecs = (performance.now() - c0) / 1000;
      rmSync(join(dir, "raw-copy.bin"));
      const d0 = performance.now();
      await measure("dd", [`if=${file}`, `of=${join(dir, "raw-copy.bin")}`, "bs=4M", "status=none"]);
      const ddSecs = (performance.now() - d0) / 1000;
      const h0 = performance.now();
      createHash("sha256").update(buf).digest("hex");
      const hashSecs = (performance.now() - h0) / 1000;
      rmSync(file);
      rmSync(join(dir, "raw-copy.bin"));
      rows.push({ name: `raw file copy ${mb} MB (cp)`, value: mb / copySecs, unit: "MB/s" });
      rows.push({ name: `raw file copy ${mb} MB (dd bs=4M)`, value: mb / ddSecs, unit: "MB/s" });
      rows.push({ name: `raw sha256 ${mb} MB (node:crypto)`, value: mb / hashSecs, unit: "MB/s" });
      const script = join(root, "bench", "_artifact.ts");
      const put = await measure(process.execPath, ["--import", "tsx", script, "put", join(dir, "store"), String(mb)]);
      const { ref, putSecs } = JSON.parse(put.out.trim().split("\n").pop()!) as { ref: unknown; putSecs: number };
      const get = await measure(process.execPath, ["--import", "tsx", script, "get", join(dir, "store"), JSON.stringify(ref)]);
      const { getSecs } = JSON.parse(get.out.trim().split("\n").pop()!) as { getSecs: number };
      const result = { putSecs, getSecs };
      const r = { peakOneMb: Math.max(put.peakOneMb, get.peakOneMb) };
      const roundTrip = (2 * mb) / (result.putSecs + result.getSecs);
      rows.push({ name: `fs artifact put ${mb} MB`, value: mb / result.putSecs, unit: "MB/s" });
      rows.push({ name: `fs artifact get ${mb} MB (verified)`, value: mb / result.getSecs, unit: "MB/s" });
      rows.push({ name: `fs artifact round trip ${mb} MB vs dd copy`, value: (100 * roundTrip) / (mb / ddSecs), unit: "%", target: "≥ 50 %" });
      rows.push({ name: `fs artifact round trip ${mb} MB vs cp copy`, value: (100 * roundTrip) / (mb / copySecs), unit: "%" });
      rows.push({ name: `fs artifact ${mb} MB peak RSS`, value: r.peakOneMb, unit: "MB", target: mb >= 1024 ? "≤ 1536 MB" : undefined });
      rmSync(join(dir, "store"), { recursive: true, force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

type Group = () => Promise<Row[]>;

/** Benchmarks of other parts live in their own modules; a missing one is reported, not fatal. */
function external(module: string, fn: string): Group {
  return async () => {
    const mod = (await import(module)) as Record<string, () => Promise<Row[]>>;
    return mod[fn]!();
  };
}

const groups: Record<string, Group> = {
  core: benchCore,
  big: benchBig,
  s3: external("./s3.ts", "benchS3"),
  bigartifact: external("./bigartifact.ts", "benchBigArtifact"),
  client: external("./client.ts", "benchClient"),
  viewer: external("./viewer.ts", "benchViewer"),
  executors: external("./executors.ts", "benchExecutors"),
  startup: external("./startup.ts", "benchStartup"),
  cards: external("./cards.ts", "benchCards"),
  spin: external("./spin.ts", "benchSpin"),
  scale: external("./scale.ts", "benchScale"),
};

async function main() {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
  const names = wanted.length ? wanted : Object.keys(groups);
  const all: (Row & { group: string })[] = [];
  await measure(process.execPath, [join(root, "build.mjs")]);
  for (const name of names) {
    const group = groups[name];
    if (!group) throw new Error(`unknown bench group '${name}' (have: ${Object.keys(groups).join(", ")})`);
    process.stderr.write(`bench: ${name}…\n`);
    try {
      for (const row of await group()) all.push({ group: name, ...row });
    } catch (e) {
      process.stderr.write(`bench: ${name} skipped: ${(e as Error).message.split("\n")[0]}\n`);
    }
  }
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(3));
  const width = Math.max(...all.map((r) => r.name.length), 10);
  const lines = [`${"group".padEnd(9)} ${"benchmark".padEnd(width)} ${"value".padStart(10)} unit   target        reference / note`];
  for (const r of all) {
    lines.push(`${r.group.padEnd(9)} ${r.name.padEnd(width)} ${fmt(r.value).padStart(10)} ${r.unit.padEnd(6)} ${(r.target ?? "").padEnd(13)} ${r.reference ?? r.note ?? ""}`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  mkdirSync(join(root, "bench", "results"), { recursive: true });
  writeFileSync(join(root, "bench", "results", "latest.json"), JSON.stringify({ at: new Date().toISOString(), rows: all }, null, 2));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
