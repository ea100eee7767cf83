/**
 * The local executor: a pool of warm worker processes. Each worker loads the flow module
 * once and then runs task after task, so a task costs milliseconds instead of a process
 * start and a TypeScript load. Module-level state of the flow file therefore survives
 * between tasks of one worker; `fresh: true` (`--fresh-workers`) gives every task its own
 * process instead.
 *
 * Workers start on demand: `warm` starts at most one per CPU ahead of the first task (what can
 * run at once anyway), and `run` starts another only when every worker is busy, so
 * `--max-workers 40` on a 2-task flow costs one or two processes, not 40.
 *
 * A worker that dies mid-task fails that task cleanly (the orchestrator may retry it) and is
 * replaced; a worker whose memory grew past `maxRssMb` is retired after its task.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import type { ExecutionContext, Executor, RunContext, TaskError, TaskExit, TaskSpec } from "../../core/types.ts";
import { reduceExtraCaCerts, workerCaEnv } from "../host/extra-ca.mjs";
import { type PreforkedWorker, selfCommand, takePreforkedWorker } from "../host/self.ts";
import { Demuxer, type WorkerCommand, type WorkerMessage } from "./_protocol.ts";

export const NAME = "process";

type WarmFlow = Parameters<NonNullable<Executor["warm"]>>[1] & {};

/** How long a worker may take to load the flow before a step under `@timeout` starts. */
const LOAD_GRACE_SECONDS = 60;
/** How long an idle worker has to leave once the executor closes, before it is killed. */
const CLOSE_GRACE_SECONDS = 2;
/** How long a task waits for one of the starting workers to get ready before it takes one anyway. */
const TAKE_WAIT_MS = 10_000;

export interface ProcessOptions {
  /** Command that starts a tsflow CLI; `__worker` is appended. Defaults to this tsflow. */
  command?: string[];
  /** One process per task instead of warm workers. */
  fresh?: boolean;
  /** Retire a worker after a task that left it above this resident size (MB). */
  maxRssMb?: number;
  /** Extra environment of the workers. */
  env?: Record<string, string>;
  /** Seconds between SIGTERM and SIGKILL when stopping a task. */
  killGraceSeconds?: number;
}

interface Task {
  spec: TaskSpec;
  context: ExecutionContext;
  resolve: (exit: TaskExit) => void;
  done?: WorkerMessage & { type: "done" };
  stderrEnded: boolean;
  stopReason?: TaskError;
  timer?: ReturnType<typeof setTimeout>;
  /** Called when the worker starts the step (after loading the flow). */
  started?: () => void;
}

/**
 * Workers that said `bye` but have not exited yet, killed when this process exits: they have
 * nothing left to do, and no worker may outlive its orchestrator for long.
 */
const leaving = new Set<ChildProcess>();
let reapOnExit = false;

class Worker {
  readonly nonce: string;
  readonly child: ChildProcess;
  task: Task | undefined;
  exited = false;
  ready: Promise<void>;
  /** The worker said it is ready: a task sent now starts at once. */
  isReady = false;
  /** Resolves once the worker has said `bye` on both streams (then it only exits), or has exited. */
  readonly finished: Promise<void>;
  private loaded = new Set<string>();

  /** Spawns `command __worker`, or takes over a worker already started the same way (`adopted`). */
  constructor(command: string[], env: Record<string, string>, onExit: (w: Worker) => void, adopted?: PreforkedWorker, ownWorker = false) {
    if (adopted) {
      this.nonce = adopted.nonce;
      this.child = adopted.child;
    } else {
      this.nonce = randomBytes(12).toString("hex");
      const [cmd, ...args] = command;
      // A tsflow worker gets the reduced copy of NODE_EXTRA_CA_CERTS, as bin/tsflow.mjs's does;
      // another command (`docker run`, a wrapper) gets the environment as it is.
      const caEnv = ownWorker ? workerCaEnv({ ...process.env, ...env }) : {};
      this.child = spawn(cmd!, [...args, "__worker"], {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, ...env, ...caEnv, TSFLOW_WORKER_NONCE: this.nonce },
      });
    }
    let markReady: () => void;
    this.ready = new Promise((r) => (markReady = r));
    let markFinished: () => void;
    this.finished = new Promise((r) => (markFinished = r));
    // `bye` on both streams: every byte the worker will ever write has been read.
    let byes = 0;
    const bye = () => {
      if (++byes === 2) markFinished();
    };
    const out = new Demuxer(
      this.nonce,
      (text) => this.task?.context.output("stdout", new TextEncoder().encode(text)),
      (payload) => {
        const msg = JSON.parse(payload) as WorkerMessage;
        if (msg.type === "ready") {
          this.isReady = true;
          markReady();
        }
        else if (msg.type === "started") this.task?.started?.();
        else if (msg.type === "bye") bye();
        else if (msg.type === "done" && this.task) {
          this.task.done = msg;
          this.maybeFinish();
        }
      },
    );
    const err = new Demuxer(
      this.nonce,
      (text) => {
        if (this.task) this.task.context.output("stderr", new TextEncoder().encode(text));
        else if (text.trim()) process.stderr.write(`[tsflow worker ${this.child.pid}] ${text}`);
      },
      (payload) => {
        if (payload === "end" && this.task) {
          this.task.stderrEnded = true;
          this.maybeFinish();
        } else if (payload === "bye") bye();
      },
    );
    this.child.stdout!.setEncoding("utf8").on("data", (c: string) => out.push(c));
    this.child.stderr!.setEncoding("utf8").on("data", (c: string) => err.push(c));
    this.child.stdin!.on("error", () => {});
    this.child.on("error", () => {});
    this.child.on("exit", (code, signal) => {
      this.exited = true;
      out.end();
      err.end();
      markReady();
      markFinished();
      const task = this.task;
      if (task) {
        this.task = undefined;
        if (task.timer) clearTimeout(task.timer);
        task.resolve({
          completed: false,
          error: task.stopReason ?? {
            type: "WorkerCrashed",
            message: `the worker process running task ${task.spec.runId}/${task.spec.step}/${task.spec.taskId} exited ${signal ? `with signal ${signal}` : `with code ${code}`}`,
          },
        });
      }
      onExit(this);
    });
  }

  send(command: WorkerCommand) {
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  preload(load: Omit<WorkerCommand & { type: "load" }, "type">) {
    const key = JSON.stringify(load);
    if (this.loaded.has(key)) return;
    this.loaded.add(key);
    this.send({ type: "load", ...load });
  }

  private maybeFinish() {
    const task = this.task;
    if (!task?.done || !task.stderrEnded) return;
    this.task = undefined;
    if (task.timer) clearTimeout(task.timer);
    const { result, error } = task.done;
    task.resolve(result ? { completed: true, result } : { completed: false, error: error ?? { type: "Executor", message: "worker reported no result" } });
  }

  /**
   * Ends the worker's input, which tells an idle worker to leave, and resolves when it is
   * finished (see {@link finished}): with `untilExit`, only once the process has exited.
   * A worker that does neither within `graceSeconds` is killed.
   */
  close(graceSeconds: number, untilExit: boolean): Promise<void> {
    this.closing ??= this.leave(graceSeconds, untilExit);
    return this.closing;
  }

  private closing?: Promise<void>;

  private leave(graceSeconds: number, untilExit: boolean): Promise<void> {
    if (this.exited) return Promise.resolve();
    this.child.stdin!.end();
    const timer = setTimeout(() => this.kill({ type: "Cancelled", message: "executor closed" }, 1), graceSeconds * 1000);
    timer.unref();
    const done = untilExit ? new Promise<void>((r) => this.child.once("exit", () => r())) : this.finished;
    return done.then(() => {
      // All that is left is the process's own end (the kernel freeing a big heap takes 10-20
      // ms) and its pipes' end of file, which may come after its 'exit' event: neither may
      // keep an embedding process (a script awaiting runFlow) alive, nor delay a CLI that exits
      // now.
      this.child.unref();
      for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
      if (this.exited) return clearTimeout(timer);
      // Should it not end (a flow's own `exit` listener that hangs), the timer still kills it
      // while this process lives, and this process's own exit does.
      leaving.add(this.child);
      this.child.once("exit", () => leaving.delete(this.child));
      if (leaving.size === 1 && !reapOnExit) {
        reapOnExit = true;
        process.once("exit", () => {
          for (const child of leaving) child.kill("SIGKILL");
        });
      }
    });
  }

  kill(reason: TaskError, graceSeconds: number) {
    if (this.task) this.task.stopReason ??= reason;
    if (this.exited) return;
    this.child.kill(reason.type === "Timeout" ? "SIGKILL" : "SIGTERM");
    setTimeout(() => {
      if (!this.exited) this.child.kill("SIGKILL");
    }, graceSeconds * 1000).unref();
  }
}

export default function processExecutor(options: ProcessOptions = {}): Executor {
  const idle: Worker[] = [];
  const all = new Set<Worker>();
  let command: string[] | undefined;
  let fresh = options.fresh ?? false;
  let context: RunContext | undefined;
  // The flow, when known before the run starts (see Executor.warm).
  let flow: WarmFlow | undefined;
  const maxRss = (options.maxRssMb ?? Number(process.env.TSFLOW_WORKER_MAX_RSS_MB ?? 4096)) * 1024 * 1024;
  const grace = options.killGraceSeconds ?? 3;
  // A worker of this tsflow is the child itself: once it said `bye` it has nothing left to do,
  // and it gets the reduced NODE_EXTRA_CA_CERTS. Another command (`docker run`, a wrapper) may
  // still have work after its worker's last word (removing the container), so its end is the
  // process's exit, and it gets the environment as it is.
  const ownWorkers = options.command === undefined;
  const untilExit = !ownWorkers;
  let caPrepared = false;

  const spawnWorker = () => {
    command ??= options.command ?? selfCommand();
    // The worker bin/tsflow.mjs started for `tsflow run` is this tsflow's default worker.
    const adopted = ownWorkers && options.env === undefined ? takePreforkedWorker() : undefined;
    const w = new Worker(command, options.env ?? {}, (dead) => {
      all.delete(dead);
      const i = idle.indexOf(dead);
      if (i >= 0) idle.splice(i, 1);
    }, adopted, ownWorkers);
    all.add(w);
    const load = context ?? flow;
    if (load) w.preload({ flowFile: load.flowFile, exportName: load.exportName, flowName: load.flowName, module: load.flowModule });
    return w;
  };

  // Tasks waiting in `take` for an idle worker that is still starting.
  let waiting = 0;
  /**
   * The worker for the next task: an idle one that is ready; else, while idle workers are still
   * starting, the first of them to get ready (one per waiting task); else a new one. A task is
   * not tied to one starting worker: which of two starts first is not fixed (on a loaded machine
   * the worker started later, while the orchestrator loads, is often ready before the one
   * started earlier), and a task sent to the slower one waited for it while the other idled.
   */
  const take = async (): Promise<Worker> => {
    const waitUntil = Date.now() + TAKE_WAIT_MS;
    for (;;) {
      const readyAt = idle.findLastIndex((w) => w.isReady && !w.exited);
      if (readyAt >= 0) return idle.splice(readyAt, 1)[0]!;
      const starting = idle.filter((w) => !w.exited);
      if (starting.length <= waiting) return spawnWorker();
      const left = waitUntil - Date.now();
      // A worker that does not get ready (a hung start) still gets the task, as before, so
      // the task's @timeout (armed once it is sent) can stop it.
      if (left <= 0) return idle.splice(idle.indexOf(starting.at(-1)!), 1)[0]!;
      waiting++;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        // `ready` also settles when a worker exits; the loop then looks again.
        await Promise.race([...starting.map((w) => w.ready), new Promise<void>((r) => (timer = setTimeout(r, left)))]);
      } finally {
        clearTimeout(timer);
        waiting--;
      }
    }
  };

  const warm = (concurrency: number, known?: WarmFlow) => {
    if (known) {
      flow = known;
      for (const w of all) w.preload({ flowFile: known.flowFile, exportName: known.exportName, flowName: known.flowName, module: known.flowModule });
    }
    if (fresh) return;
    const ahead = Math.min(concurrency, availableParallelism());
    while (all.size < ahead) idle.push(spawnWorker());
  };

  return {
    name: NAME,
    warm,
    // Workers hand each result back over the pipe, so their tasks may write their own markers.
    commitsTasks: true,

    async prepare(run) {
      context = run;
      fresh = options.fresh ?? run.freshWorkers ?? false;
      if (fresh) return;
      // Workers warmed before the flow was built learn it now; new ones preload it on spawn.
      for (const w of all) w.preload({ flowFile: run.flowFile, exportName: run.exportName, flowName: run.flowName, module: run.flowModule });
      warm(Math.max(1, run.maxWorkers));
    },

    async run(spec, ctx) {
      const w = await take();
      return new Promise<TaskExit>((resolve) => {
        const task: Task = { spec, context: ctx, resolve, stderrEnded: false };
        w.task = task;
        const finish = (exit: TaskExit) => {
          ctx.signal.removeEventListener("abort", onAbort);
          if (!w.exited) {
            const rss = task.done?.rss ?? 0;
            // Retired like a worker at the run's end: it leaves by itself, killed only if it does not.
            if (fresh || rss > maxRss) void w.close(grace, untilExit);
            else idle.push(w);
          }
          resolve(exit);
        };
        task.resolve = finish;
        const onAbort = () => w.kill({ type: "Cancelled", message: `task ${spec.runId}/${spec.step}/${spec.taskId} was stopped (the run was cancelled or failed)` }, grace);
        if (ctx.signal.aborted) return finish({ completed: false, error: { type: "Cancelled", message: "the run was stopped before the task started" } });
        ctx.signal.addEventListener("abort", onAbort, { once: true });
        if (spec.timeoutSeconds) {
          // Counted from the moment the step starts, not from process start and flow load,
          // which can take longer than a short timeout (fresh workers, a loaded machine).
          let started = false;
          task.started = () => {
            if (started) return;
            started = true;
            clearTimeout(task.timer);
            task.timer = setTimeout(
              () => w.kill({ type: "Timeout", message: `step '${spec.step}' timed out after ${spec.timeoutSeconds} s (@timeout) and was killed` }, grace),
              spec.timeoutSeconds! * 1000,
            );
          };
          // A worker that never starts the step (a flow stuck while loading) is still stopped.
          task.timer = setTimeout(
            () => w.kill({ type: "Timeout", message: `step '${spec.step}' did not start within ${spec.timeoutSeconds! + LOAD_GRACE_SECONDS} s (@timeout plus time to load the flow) and was killed` }, grace),
            (spec.timeoutSeconds + LOAD_GRACE_SECONDS) * 1000,
          );
        }
        w.preload({ flowFile: spec.flowFile, exportName: spec.exportName, flowName: spec.flowName, module: spec.module });
        w.send({ type: "task", spec });
        // Once the first task is on its way (the orchestrator waits now), make the reduced
        // NODE_EXTRA_CA_CERTS the next workers and runs start with, if there is none yet
        // (~25 ms of CPU once per CA file and Node; plugins/host/extra-ca.mjs).
        if (ownWorkers && !caPrepared) {
          caPrepared = true;
          setImmediate(() => void reduceExtraCaCerts({ ...process.env, ...options.env })).unref();
        }
      });
    },

    async close() {
      const closing = [...all].map((w) => w.close(CLOSE_GRACE_SECONDS, untilExit));
      idle.length = 0;
      await Promise.all(closing);
    },
  };
}

