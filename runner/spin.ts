/**
 * `spinStep` (and `tsflow spin`): re-run one past task in this process, with its exact inputs
 * and the step's current code (core/spin.ts), inside the task's environment (`@environment`,
 * `@secrets`), its output shown as it comes and kept with the spun task.
 */
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { TsflowError } from "../core/errors.ts";
import { type SpinResult, spinTask } from "../core/spin.ts";
import type { Bytes, Datastore } from "../core/types.ts";
import nodeHost from "../plugins/host/node.ts";
import { detectRuntime } from "../plugins/host/node.ts";
import { buildFlowModule, loadFlow } from "./load.ts";
import { enterTaskEnvironment } from "./secrets.ts";
import { resolveDatastore } from "./stores.ts";

export interface SpinStepOptions {
  /** A datastore, or its location. Default: `TSFLOW_DATASTORE`, else `.tsflow` found upwards. */
  datastore?: Datastore | string;
  /** Values replacing the task's inputs of the same name (artifacts or parameters). */
  overrides?: Record<string, unknown>;
  /** Store the spun task as a new run tagged `spin` (default true); false keeps nothing. */
  persist?: boolean;
  tags?: string[];
  /** With a flow file: its named export holding the flow class. */
  exportName?: string;
  /** Where relative paths are resolved. Default: the working directory. */
  cwd?: string;
}

/**
 * Re-runs one task of a past run — `Flow/run/step/task` or `run/step/task` — with its exact
 * inputs and the step's current code, and resolves with what it produced:
 * `const { artifacts } = await spinStep(TrainFlow, "TrainFlow/178…/train/4", { overrides: { lr: 0.1 }, persist: false })`.
 * A step error is in `error` (`ok: false`), not thrown.
 */
export async function spinStep(flow: Function | string, pathspec: string, options: SpinStepOptions = {}): Promise<SpinResult> {
  const cwd = options.cwd ?? process.cwd();
  const flowClass = typeof flow === "string" ? (await loadFlow(flow, options.exportName, { cwd })).flowClass : flow;
  const store = await resolveDatastore(options.datastore, cwd);
  const output = { stdout: [] as Bytes[], stderr: [] as Bytes[] };
  return spinTask({
    store,
    host: nodeHost(),
    flowClass,
    pathspec,
    overrides: options.overrides,
    persist: options.persist,
    tags: options.tags,
    async around(spec, run) {
      const scope = await enterTaskEnvironment(spec);
      // Keep what the step prints (under the masking, so a secret is stored masked) and show it.
      const undo: Array<() => void> = [];
      for (const name of ["stdout", "stderr"] as const) {
        const stream = process[name];
        const write = stream.write;
        stream.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
          output[name].push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : new Uint8Array(chunk as Uint8Array));
          return (write as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
        } as typeof stream.write;
        undo.push(() => {
          stream.write = write;
        });
      }
      scope.maskOutput();
      try {
        return await run(scope.redact);
      } finally {
        scope.restore();
        for (const u of undo) u();
      }
    },
    logs: () => output,
  });
}

/**
 * Artifact overrides from a module (`--artifacts ./overrides.ts`): its default export (an object,
 * or a function returning one), else its named exports.
 */
export async function loadOverrides(file: string, cwd = process.cwd()): Promise<Record<string, unknown>> {
  const abs = isAbsolute(file) ? file : resolve(cwd, file);
  let mod: Record<string, unknown>;
  try {
    const module = /\.[cm]?tsx?$/.test(abs) && detectRuntime() === "node" ? await buildFlowModule(abs) : abs;
    mod = (await import(pathToFileURL(module).href)) as Record<string, unknown>;
  } catch (e) {
    throw new TsflowError("BadOption", `cannot load artifact overrides '${file}': ${(e as Error).message.split("\n")[0]}`);
  }
  let value: unknown = mod.default;
  if (typeof value === "function") value = await (value as () => unknown)();
  if (value === undefined) value = Object.fromEntries(Object.entries(mod).filter(([k]) => k !== "default"));
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TsflowError("BadOption", `artifact overrides '${file}' must export an object of artifact name → value (default export, or named exports)`);
  }
  return value as Record<string, unknown>;
}
