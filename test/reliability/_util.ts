/** Helpers of the reliability suite: datastore invariants, seeded randomness, killing the CLI. */
import { spawn } from "node:child_process";
import { matchesBlobName } from "../_blobs.ts";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const SOAK = process.env.TSFLOW_SOAK === "1";
export const rfixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** mulberry32: a tiny seeded PRNG, so a failing kill point can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function walk(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

export interface Consistency {
  doneTasks: number;
  runs: number;
  /** Leftover temporary files of interrupted writes (harmless: listings skip them). */
  tempFiles: number;
  problems: string[];
}

/**
 * The datastore invariants a crash must never break: every blob's content matches its name;
 * every done.json parses and every artifact it names loads and verifies (loadArtifact); every
 * run.json parses and its parameters load.
 */
export async function checkConsistency(root: string): Promise<Consistency> {
  const { default: fsDatastore } = await import("../../plugins/datastores/fs.ts");
  const { default: nodeHost } = await import("../../plugins/host/node.ts");
  const { loadArtifact } = await import("../../core/artifacts.ts");
  const store = fsDatastore({ root });
  const host = nodeHost();
  const problems: string[] = [];
  const files = walk(root);
  let tempFiles = 0;
  for (const f of files) {
    const name = f.slice(f.lastIndexOf("/") + 1);
    if (name.startsWith(".tmp-")) {
      tempFiles++;
      continue;
    }
    if (f.startsWith(join(root, "blobs"))) {
      if (!matchesBlobName(readFileSync(f), name)) problems.push(`blob ${f} does not match its hash`);
    }
  }
  let doneTasks = 0;
  let runs = 0;
  const loadAll = async (where: string, refs: Record<string, { hash: string; size: number; type: string }>) => {
    for (const [name, ref] of Object.entries(refs ?? {})) {
      try {
        await loadArtifact(store, host, ref, name, where);
      } catch (e) {
        problems.push(`${where}: ${(e as Error).message}`);
      }
    }
  };
  for (const f of files) {
    const name = f.slice(f.lastIndexOf("/") + 1);
    if (name !== "done.json" && name !== "run.json") continue;
    let doc: any;
    try {
      doc = JSON.parse(readFileSync(f, "utf8"));
    } catch (e) {
      problems.push(`${f} does not parse: ${(e as Error).message}`);
      continue;
    }
    if (name === "done.json") {
      doneTasks++;
      if (doc.ok !== true) problems.push(`${f} is a done marker of a task that did not succeed`);
      await loadAll(f, doc.artifacts);
    } else {
      runs++;
      await loadAll(f, doc.parameters);
    }
  }
  return { doneTasks, runs, tempFiles, problems };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident memory of a process in kB, from /proc (0 when it is gone). */
export function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Number of done.json files under a run directory tree. */
export function countDone(root: string): number {
  return walk(root).filter((f) => f.endsWith("/done.json")).length;
}

/** The run directories of `flow` in a datastore root. */
export function runDirs(root: string, flow: string): string[] {
  const dir = join(root, "flows", flow, "runs");
  return existsSync(dir) ? readdirSync(dir).filter((d) => statSync(join(dir, d)).isDirectory()).sort() : [];
}

/** Tries a shell command as root; false when not permitted (containers without CAP_SYS_ADMIN). */
export async function tryRun(cmd: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: "ignore" });
    c.on("error", () => resolve(false));
    c.on("close", (code) => resolve(code === 0));
  });
}

/** Pids of the live children of `pid` (the CLI's workers). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {}
  }
  return out;
}

/** True while a process with this pid exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** The worker processes (`… __worker`) among the children of `pid`. */
export function workersOf(pid: number): number[] {
  return childrenOf(pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("__worker");
    } catch {
      return false;
    }
  });
}

/** The artifacts of the `end` task of a run, loaded and verified. */
export async function endArtifacts(root: string, flow: string, runId: string): Promise<Record<string, unknown>> {
  const { default: fsDatastore } = await import("../../plugins/datastores/fs.ts");
  const { default: nodeHost } = await import("../../plugins/host/node.ts");
  const { loadArtifact } = await import("../../core/artifacts.ts");
  const store = fsDatastore({ root });
  const host = nodeHost();
  const dir = join(root, "flows", flow, "runs", runId, "tasks", "end");
  const task = readdirSync(dir).find((t) => existsSync(join(dir, t, "done.json")));
  if (!task) throw new Error(`run ${flow}/${runId} has no finished end task`);
  const done = JSON.parse(readFileSync(join(dir, task, "done.json"), "utf8"));
  const out: Record<string, unknown> = {};
  for (const [name, ref] of Object.entries(done.artifacts as Record<string, any>)) out[name] = await loadArtifact(store, host, ref, name);
  return out;
}
