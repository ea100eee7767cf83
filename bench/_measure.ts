/** Shared by every benchmark module (kept apart from run.ts, whose top-level await would deadlock an import cycle). */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

export interface Row {
  name: string;
  value: number;
  unit: string;
  target?: string;
  /** Reference figure from the issue (Metaflow measured on the same machine). */
  reference?: string;
  /** Said beside the figure when there is no reference (e.g. the CPU time of a phase). */
  note?: string;
}


/** Runs a command, sampling the resident memory of its whole process tree. */
export async function measure(cmd: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const t0 = performance.now();
  const child = spawn(cmd, args, { cwd: options.cwd ?? root, env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  let peakTree = 0;
  let peakOne = 0;
  const sample = () => {
    const pids = treeOf(child.pid!);
    let sum = 0;
    for (const pid of pids) {
      const rss = rssOf(pid);
      sum += rss;
      peakOne = Math.max(peakOne, rss);
    }
    peakTree = Math.max(peakTree, sum);
  };
  const timer = setInterval(sample, 15);
  const code: number = await new Promise((r) => child.on("exit", (c) => r(c ?? 1)));
  clearInterval(timer);
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${code}):\n${err || out}`);
  return { seconds, peakTreeMb: peakTree / 1024 / 1024, peakOneMb: peakOne / 1024 / 1024, out };
}

/** A process and all its descendants, from /proc. */
export function treeOf(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      const children = readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, "utf8").trim();
      if (children) out.push(...children.split(/\s+/).map(Number));
    } catch {}
  }
  return out;
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

