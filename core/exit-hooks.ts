/**
 * `@exitHook({ onSuccess, onError })` on a flow class: functions that run once after the run
 * has ended, with the run's client object (to post a message, open a ticket…).
 *
 * The run's status is final before any hook runs, and a hook's failure is only reported: a
 * notification that cannot be sent never turns a good run into a failed one. Locally the
 * orchestrator calls {@link runExitHooks} at the end of `executeRun`; a production deployment
 * (Step Functions) calls the same function as its last state.
 */
import { type Run, createClient } from "./client.ts";
import { TsflowError } from "./errors.ts";
import type { Datastore, Host } from "./types.ts";

const EXIT_HOOKS = Symbol.for("tsflow.exitHooks");

/** A hook: gets the finished run (`run.successful`, `run.data("x")`, `run.step("end")`…). */
export type ExitHookFn = (run: Run) => unknown;

/** Options of {@link exitHook}. */
export interface ExitHookOptions {
  /** Called when the run succeeded. */
  onSuccess?: ExitHookFn | readonly ExitHookFn[];
  /** Called when the run failed (a task failed, or it was stopped). */
  onError?: ExitHookFn | readonly ExitHookFn[];
}

interface Hooks {
  onSuccess: ExitHookFn[];
  onError: ExitHookFn[];
}

const list = (v: ExitHookFn | readonly ExitHookFn[] | undefined): ExitHookFn[] => (v === undefined ? [] : Array.isArray(v) ? [...v] : [v as ExitHookFn]);

/**
 * Class decorator: runs `onSuccess` or `onError` hooks once the run has ended. Works in both
 * TypeScript decorator modes; several `@exitHook`s add up, in the order written.
 */
export function exitHook(options: ExitHookOptions): <C extends Function>(cls: C, context?: unknown) => C {
  const add: Hooks = { onSuccess: list(options.onSuccess), onError: list(options.onError) };
  for (const fn of [...add.onSuccess, ...add.onError]) {
    if (typeof fn !== "function") throw new TsflowError("BadFlow", `@exitHook takes functions in onSuccess and onError, got ${typeof fn}`);
  }
  return (cls, context) => {
    if (typeof cls !== "function" || (context && typeof context === "object" && (context as { kind?: string }).kind !== "class")) {
      throw new TsflowError("BadFlow", "@exitHook decorates a flow class, not a method or field");
    }
    const holder = cls as unknown as Record<symbol, Hooks>;
    const own = Object.hasOwn(holder, EXIT_HOOKS) ? holder[EXIT_HOOKS]! : { onSuccess: [], onError: [] };
    // Decorators apply bottom-up: prepend, so hooks run in the order they are written.
    Object.defineProperty(holder, EXIT_HOOKS, { value: { onSuccess: [...add.onSuccess, ...own.onSuccess], onError: [...add.onError, ...own.onError] }, configurable: true });
    return cls;
  };
}

/** The exit hooks of a flow class (none: empty lists). */
export function exitHooksOf(flowClass: Function): Hooks {
  const found = (flowClass as unknown as Record<symbol, Hooks | undefined>)[EXIT_HOOKS];
  return { onSuccess: [...(found?.onSuccess ?? [])], onError: [...(found?.onError ?? [])] };
}

/** How one hook went. */
export interface ExitHookOutcome {
  hook: string;
  kind: "onSuccess" | "onError";
  ok: boolean;
  error?: { type: string; message: string };
}

/**
 * Runs the exit hooks of a finished run, one after the other: `onSuccess` when it succeeded,
 * else `onError`. Never throws: each failure is reported through `report` and in the result.
 */
export async function runExitHooks(
  flowClass: Function,
  target: { store: Datastore; host: Host; flowName: string; runId: string; report?: (message: string) => void },
): Promise<ExitHookOutcome[]> {
  const hooks = exitHooksOf(flowClass);
  if (hooks.onSuccess.length === 0 && hooks.onError.length === 0) return [];
  const outcomes: ExitHookOutcome[] = [];
  let run: Run;
  try {
    const client = createClient(target.store, target.host);
    client.namespace(null);
    run = await client.Flow.get(target.flowName).run(target.runId);
  } catch (e) {
    target.report?.(`exit hooks of ${target.flowName}/${target.runId} did not run: cannot read the run (${(e as Error).message})`);
    return [{ hook: "*", kind: "onError", ok: false, error: { type: "NotFound", message: (e as Error).message } }];
  }
  const kind = run.successful ? "onSuccess" : "onError";
  for (const fn of hooks[kind]) {
    const hook = fn.name || "anonymous";
    try {
      await fn(run);
      outcomes.push({ hook, kind, ok: true });
    } catch (e) {
      const error = { type: (e as Error)?.name ?? "Error", message: (e as Error)?.message ?? String(e) };
      outcomes.push({ hook, kind, ok: false, error });
      target.report?.(`exit hook ${kind} '${hook}' of ${target.flowName}/${target.runId} failed (the run stays ${run.successful ? "succeeded" : "failed"}): ${error.type}: ${error.message}`);
    }
  }
  return outcomes;
}
