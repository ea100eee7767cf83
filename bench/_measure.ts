/** Shared by every benchmark module (kept apart from run.ts, whose top-level await would deadlock an import cycle). */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
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


/** GNU time, which reports the CPU of a command and of every process it waited for. */
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
const CPU_MARK = "tsflow-bench-cpu";

/**
 * The CPU of a whole process tree, for `measure` with `cpu`: a run's workers outlive the CLI by
 * their teardown (the CLI stops waiting at their last word), so GNU time, which counts the
 * processes the command waited for, would leave them out. This wrapper makes itself the child
 * subreaper (Linux prctl PR_SET_CHILD_SUBREAPER) before it starts the command, so the workers,
 * once orphaned, are its children: it reaps every process of the tree (for up to 10 s after the
 * command), sums their user+sys CPU, and reports the command's own wall time, fork to exit.
 */
const REAPER = `
import ctypes, os, sys, time
if ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit(97)
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
cpu, wall, code, deadline = 0.0, None, 1, None
while True:
    try:
        p, status, ru = os.wait4(-1, os.WNOHANG if deadline else 0)
    except ChildProcessError:
        break
    if p == 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.002)
        continue
    cpu += ru.ru_utime + ru.ru_stime
    if p == pid:
        wall = time.monotonic() - t0
        code = os.waitstatus_to_exitcode(status)
        deadline = time.monotonic() + 10
sys.stderr.write("${CPU_MARK} %f %f\\n" % (cpu, wall))
sys.exit(code if code >= 0 else 1)
`;
/** The python3 executable itself (not a launcher such as pyenv's shim, which runs helpers of its own first). */
const PYTHON = (() => {
  if (process.platform !== "linux") return undefined;
  const exe = spawnSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).stdout?.trim();
  if (!exe) return undefined;
  const probe = spawnSync(exe, ["-c", REAPER, "true"], { encoding: "utf8" });
  return probe.status === 0 && probe.stderr.includes(CPU_MARK) ? exe : undefined;
})();

/**
 * Runs a command, sampling the resident memory of its whole process tree. With `cpu`,
 * `cpuSeconds` is the user+sys CPU of the command and of every process it started (workers,
 * also those that end after it), measured by {@link REAPER} where python3 can run it, else by
 * /usr/bin/time (the processes the command waited for); `seconds` is then the command's own
 * wall time as the wrapper saw it. On a shared machine CPU moves far less with the load than
 * the wall time does.
 */
export async function measure(cmd: string, args: string[], options: { cwd?: string; env?: Record<string, string>; cpu?: boolean } = {}) {
  const t0 = performance.now();
  const wrapper = options.cpu ? (PYTHON ?? TIME) : undefined;
  if (wrapper === PYTHON && PYTHON) {
    args = ["-c", REAPER, cmd, ...args];
    cmd = PYTHON;
  } else if (wrapper === TIME && TIME) {
    args = ["-f", `${CPU_MARK} %U %S`, cmd, ...args];
    cmd = TIME;
  }
  const child = spawn(cmd, args, { cwd: options.cwd ?? root, env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  let peakTree = 0;
  let peakOne = 0;
  /** The command's own process (under GNU time, its child): the orchestrator of a run. */
  let peakMain = 0;
  /** The command's own process's CPU (user+sys, s), as last sampled: the orchestrator's share. */
  let mainCpu = 0;
  /** The largest of the other processes (a run's workers; a foreach's join worker holds every input). */
  let peakWorker = 0;
  const wrapped = wrapper !== undefined;
  /** Fixed once seen: after the command exits, a worker it left is the wrapper's child (REAPER). */
  let mainPid: number | undefined;
  const sample = () => {
    const pids = treeOf(child.pid!);
    mainPid ??= wrapped ? pids[1] : pids[0];
    const main = mainPid !== undefined && pids.includes(mainPid) ? mainPid : undefined;
    if (main !== undefined) {
      peakMain = Math.max(peakMain, rssOf(main));
      mainCpu = Math.max(mainCpu, cpuOf(main));
    }
    let sum = 0;
    for (const pid of pids) {
      const rss = rssOf(pid);
      sum += rss;
      peakOne = Math.max(peakOne, rss);
      if (pid !== main && pid !== pids[0]) peakWorker = Math.max(peakWorker, rss);
    }
    peakTree = Math.max(peakTree, sum);
  };
  const timer = setInterval(sample, 15);
  const code: number = await new Promise((r) => child.on("exit", (c) => r(c ?? 1)));
  clearInterval(timer);
  let seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${code}):\n${err || out}`);
  const cpu = new RegExp(`${CPU_MARK} ([0-9.]+) ([0-9.]+)`).exec(err);
  let cpuSeconds: number | undefined;
  if (cpu && cmd === PYTHON) {
    cpuSeconds = Number(cpu[1]);
    seconds = Number(cpu[2]);
  } else if (cpu) cpuSeconds = Number(cpu[1]) + Number(cpu[2]);
  return { seconds, cpuSeconds, peakTreeMb: peakTree / 1024 / 1024, peakOneMb: peakOne / 1024 / 1024, peakMainMb: peakMain / 1024 / 1024, peakWorkerMb: peakWorker / 1024 / 1024, mainCpuSeconds: mainCpu, out };
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

const TICKS = 100; // USER_HZ on Linux

/** User+sys CPU seconds of a process so far, from /proc (0 once it is gone). */
function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return 0;
  }
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

