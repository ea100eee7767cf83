/**
 * An Amazon States Language interpreter (JSONPath query language), enough to execute what
 * tsflow generates and the usual hand-written machines: Pass, Task, Choice, Parallel, Map (inline
 * and distributed, ItemsPath or ItemReader), Wait, Succeed, Fail; InputPath, Parameters,
 * ItemSelector, ResultSelector, ResultPath, OutputPath; Retry (MaxAttempts, IntervalSeconds,
 * BackoffRate, MaxDelaySeconds) and Catch; the context object `$$`; the intrinsic functions
 * States.Format, States.JsonToString, States.StringToJson, States.Array, States.ArrayRange,
 * States.ArrayLength, States.MathAdd, States.UUID.
 *
 * Resources (Task `Resource`, Map `ItemReader`) are supplied by the caller, so the interpreter
 * knows nothing of Batch or S3. Semantics follow the ASL specification
 * (https://states-language.net/spec.html) and the AWS developer guide; where they are silent we
 * do what AWS does, as documented.
 */

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

/** A failure inside an execution: an ASL error name and a cause. */
export class StatesError extends Error {
  constructor(
    readonly error: string,
    override readonly cause: string,
  ) {
    super(`${error}: ${cause}`);
  }
}

export interface Context {
  Execution: { Id: string; Name: string; Input: Json; StartTime: string; RoleArn?: string };
  StateMachine: { Id: string; Name: string };
  State?: { Name: string; EnteredTime: string; RetryCount: number };
  Map?: { Item: { Index: number; Value: Json } };
}

export interface Resources {
  /** Runs a Task state's resource with its effective parameters; throws a StatesError to fail. */
  task(resource: string, parameters: Json, ctx: { signal: AbortSignal; context: Context; state: string }): Promise<Json>;
  /** Reads a distributed Map's items (`ItemReader`). */
  readItems(reader: Obj, parameters: Json, signal: AbortSignal): Promise<Json[]>;
  /** A child execution of a distributed Map: its context's Execution. */
  childExecution?(parent: Context, mapState: string, index: number): Context["Execution"];
  /** Milliseconds to really wait for `seconds` of Retry intervals and Wait states. */
  delayMs?(seconds: number): number;
  /** Called as each state is entered (for histories and tests). */
  onState?(event: { state: string; type: string; context: Context }): void;
}

// ---------------------------------------------------------------------------------------
// JSONPath (the subset ASL uses: $.a.b, $['a'], $.a[0], $$.x)

function segments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  let i = path.startsWith("$$") ? 2 : 1;
  if (!path.startsWith("$")) throw new StatesError("States.Runtime", `'${path}' is not a path`);
  while (i < path.length) {
    if (path[i] === ".") {
      const m = /^\.([^.[\]]+)/.exec(path.slice(i));
      if (!m) throw new StatesError("States.Runtime", `invalid path '${path}'`);
      out.push(m[1]!);
      i += m[0].length;
    } else if (path[i] === "[") {
      const m = /^\[(?:(\d+)|'([^']*)'|"([^"]*)")\]/.exec(path.slice(i));
      if (!m) throw new StatesError("States.Runtime", `unsupported path '${path}'`);
      out.push(m[1] !== undefined ? Number(m[1]) : (m[2] ?? m[3])!);
      i += m[0].length;
    } else throw new StatesError("States.Runtime", `invalid path '${path}'`);
  }
  return out;
}

const MISSING = Symbol("missing");

function lookup(root: Json | Context, path: string): Json | typeof MISSING {
  let v: unknown = root;
  for (const s of segments(path)) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v as object, s)) return MISSING;
    v = (v as Record<string | number, unknown>)[s];
  }
  return v as Json;
}

/** The value at `path` in the input (`$…`) or the context (`$$…`); a missing one is States.Runtime. */
export function readPath(path: string, input: Json, context: Context): Json {
  const v = path.startsWith("$$") ? lookup(context, path) : lookup(input, path);
  if (v === MISSING) throw new StatesError("States.Runtime", `the JSONPath '${path}' could not be found in the input`);
  return v;
}

function writePath(input: Json, path: string | null | undefined, result: Json): Json {
  if (path === null) return input;
  if (path === undefined || path === "$") return result;
  const segs = segments(path);
  const root: Json = input !== null && typeof input === "object" && !Array.isArray(input) ? structuredClone(input) : {};
  let cur = root as Obj;
  for (let i = 0; i < segs.length - 1; i++) {
    const s = String(segs[i]);
    const next = cur[s];
    if (next === null || typeof next !== "object" || Array.isArray(next)) cur[s] = {};
    cur = cur[s] as Obj;
  }
  cur[String(segs.at(-1))] = result;
  return root;
}

// ---------------------------------------------------------------------------------------
// Intrinsic functions

type Token = { kind: "str"; v: string } | { kind: "num"; v: number } | { kind: "path"; v: string } | { kind: "call"; name: string; args: Token[] } | { kind: "lit"; v: Json };

function parseIntrinsic(src: string): Token {
  let i = 0;
  const ws = () => {
    while (src[i] === " ") i++;
  };
  const expr = (): Token => {
    ws();
    if (src[i] === "'") {
      let s = "";
      i++;
      while (i < src.length && src[i] !== "'") {
        if (src[i] === "\\") i++;
        s += src[i++];
      }
      if (src[i] !== "'") throw new StatesError("States.Runtime", `unterminated string in '${src}'`);
      i++;
      return { kind: "str", v: s };
    }
    if (src[i] === "$") {
      const m = /^\$\$?(?:\.[A-Za-z0-9_]+|\[\d+\]|\['[^']*'\])*/.exec(src.slice(i))!;
      i += m[0].length;
      return { kind: "path", v: m[0] };
    }
    const num = /^-?\d+(\.\d+)?/.exec(src.slice(i));
    if (num) {
      i += num[0].length;
      return { kind: "num", v: Number(num[0]) };
    }
    const lit = /^(true|false|null)\b/.exec(src.slice(i));
    if (lit) {
      i += lit[0].length;
      return { kind: "lit", v: JSON.parse(lit[0]) };
    }
    const name = /^States\.[A-Za-z0-9]+/.exec(src.slice(i));
    if (!name) throw new StatesError("States.Runtime", `cannot parse intrinsic function '${src}' at ${i}`);
    i += name[0].length;
    ws();
    if (src[i] !== "(") throw new StatesError("States.Runtime", `expected ( after ${name[0]} in '${src}'`);
    i++;
    const args: Token[] = [];
    ws();
    if (src[i] === ")") i++;
    else {
      for (;;) {
        args.push(expr());
        ws();
        if (src[i] === ",") i++;
        else if (src[i] === ")") {
          i++;
          break;
        } else throw new StatesError("States.Runtime", `expected , or ) in '${src}' at ${i}`);
      }
    }
    return { kind: "call", name: name[0], args };
  };
  const t = expr();
  ws();
  if (i !== src.length) throw new StatesError("States.Runtime", `trailing text in intrinsic function '${src}'`);
  return t;
}

function evalToken(t: Token, input: Json, context: Context): Json {
  switch (t.kind) {
    case "str":
      return t.v;
    case "num":
      return t.v;
    case "lit":
      return t.v;
    case "path":
      return readPath(t.v, input, context);
    case "call": {
      const args = t.args.map((a) => evalToken(a, input, context));
      const fail = (why: string): never => {
        throw new StatesError("States.IntrinsicFailure", `${t.name}: ${why}`);
      };
      switch (t.name) {
        case "States.Format": {
          const [template, ...rest] = args;
          if (typeof template !== "string") fail("the template must be a string");
          let k = 0;
          let out = "";
          const s = template as string;
          for (let j = 0; j < s.length; j++) {
            if (s[j] === "{" && s[j + 1] === "}") {
              if (k >= rest.length) fail("more {} than arguments");
              const v = rest[k++]!;
              if (v !== null && typeof v === "object") fail("arguments must be strings, numbers, booleans or null");
              out += typeof v === "string" ? v : JSON.stringify(v);
              j++;
            } else out += s[j];
          }
          if (k !== rest.length) fail("more arguments than {}");
          return out;
        }
        case "States.JsonToString":
          return JSON.stringify(args[0]);
        case "States.StringToJson":
          if (typeof args[0] !== "string") fail("the argument must be a string");
          try {
            return JSON.parse(args[0] as string) as Json;
          } catch (e) {
            return fail(`not JSON: ${(e as Error).message}`);
          }
        case "States.Array":
          return args;
        case "States.ArrayLength":
          if (!Array.isArray(args[0])) fail("the argument must be an array");
          return (args[0] as Json[]).length;
        case "States.ArrayRange": {
          const [a, b, step] = args as number[];
          if (![a, b, step].every((x) => typeof x === "number") || step === 0) fail("start, end and a non-zero step must be numbers");
          const out: number[] = [];
          for (let x = a!; step! > 0 ? x <= b! : x >= b!; x += step!) out.push(x);
          if (out.length > 1000) fail("more than 1000 elements");
          return out;
        }
        case "States.MathAdd":
          if (typeof args[0] !== "number" || typeof args[1] !== "number") fail("both arguments must be numbers");
          return (args[0] as number) + (args[1] as number);
        case "States.UUID":
          return crypto.randomUUID();
        default:
          return fail("not supported by this interpreter");
      }
    }
  }
}

/** Resolves a payload template: `"k.$"` fields are paths or intrinsic functions, the rest is copied. */
export function resolveTemplate(template: Json, input: Json, context: Context): Json {
  if (Array.isArray(template)) return template.map((t) => resolveTemplate(t, input, context));
  if (template === null || typeof template !== "object") return template;
  const out: Obj = {};
  for (const [k, v] of Object.entries(template)) {
    if (k.endsWith(".$")) {
      if (typeof v !== "string") throw new StatesError("States.Runtime", `field '${k}' must hold a path or an intrinsic function`);
      out[k.slice(0, -2)] = v.startsWith("$") ? readPath(v, input, context) : evalToken(parseIntrinsic(v), input, context);
    } else out[k] = resolveTemplate(v, input, context);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Choice rules

function evalRule(rule: Obj, input: Json, context: Context): boolean {
  if (Array.isArray(rule.And)) return (rule.And as Obj[]).every((r) => evalRule(r, input, context));
  if (Array.isArray(rule.Or)) return (rule.Or as Obj[]).some((r) => evalRule(r, input, context));
  if (rule.Not) return !evalRule(rule.Not as Obj, input, context);
  const variable = String(rule.Variable);
  const found = variable.startsWith("$$") ? lookup(context, variable) : lookup(input, variable);
  if ("IsPresent" in rule) return (found !== MISSING) === rule.IsPresent;
  if (found === MISSING) throw new StatesError("States.Runtime", `Invalid path '${variable}': the choice state's condition path references an invalid value`);
  const v = found;
  for (const [op, expected] of Object.entries(rule)) {
    if (op === "Variable" || op === "Next") continue;
    const other = op.endsWith("Path") ? readPath(String(expected), input, context) : expected;
    const base = op.endsWith("Path") ? op.slice(0, -4) : op;
    switch (base) {
      case "IsNull":
        return (v === null) === other;
      case "IsString":
        return (typeof v === "string") === other;
      case "IsNumeric":
        return (typeof v === "number") === other;
      case "IsBoolean":
        return (typeof v === "boolean") === other;
      case "StringEquals":
        return typeof v === "string" && v === other;
      case "StringLessThan":
        return typeof v === "string" && v < (other as string);
      case "StringGreaterThan":
        return typeof v === "string" && v > (other as string);
      case "StringMatches": {
        if (typeof v !== "string") return false;
        const re = new RegExp(`^${String(other).replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`);
        return re.test(v);
      }
      case "NumericEquals":
        return typeof v === "number" && v === other;
      case "NumericLessThan":
        return typeof v === "number" && v < (other as number);
      case "NumericLessThanEquals":
        return typeof v === "number" && v <= (other as number);
      case "NumericGreaterThan":
        return typeof v === "number" && v > (other as number);
      case "NumericGreaterThanEquals":
        return typeof v === "number" && v >= (other as number);
      case "BooleanEquals":
        return typeof v === "boolean" && v === other;
      default:
        throw new StatesError("States.Runtime", `choice operator '${op}' is not supported by this interpreter`);
    }
  }
  throw new StatesError("States.Runtime", `choice rule on '${variable}' has no comparison`);
}

// ---------------------------------------------------------------------------------------
// States

const errorMatches = (names: string[], error: string) =>
  names.includes(error) || (names.includes("States.ALL") && error !== "States.Runtime") || (names.includes("States.TaskFailed") && !error.startsWith("States.") && error !== "States.Timeout");

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

/** Runs a state machine (or a branch, or a Map's processor) to its end; resolves with its output. */
export async function runMachine(machine: Obj, input: Json, context: Context, resources: Resources, signal: AbortSignal): Promise<Json> {
  const states = machine.States as Record<string, Obj>;
  let name = String(machine.StartAt);
  let data = input;
  for (;;) {
    if (signal.aborted) throw new StatesError("States.Aborted", "the execution was stopped");
    const state = states[name];
    if (!state) throw new StatesError("States.Runtime", `state '${name}' does not exist`);
    const outcome = await runState(name, state, data, context, resources, signal);
    data = outcome.output;
    if (outcome.next === undefined) return data;
    name = outcome.next;
  }
}

async function runState(name: string, state: Obj, raw: Json, context: Context, resources: Resources, signal: AbortSignal): Promise<{ output: Json; next?: string }> {
  const type = String(state.Type);
  const entered = new Date().toISOString();
  const ctx: Context = { ...context, State: { Name: name, EnteredTime: entered, RetryCount: 0 } };
  resources.onState?.({ state: name, type, context: ctx });
  const inputPath = state.InputPath as string | null | undefined;
  const effective = inputPath === null ? {} : inputPath === undefined ? raw : readPath(inputPath, raw, ctx);
  const finish = (result: Json) => {
    let r = result;
    if (state.ResultSelector) r = resolveTemplate(state.ResultSelector, r, ctx);
    let out = writePath(raw, state.ResultPath as string | null | undefined, r);
    const outputPath = state.OutputPath as string | null | undefined;
    if (outputPath === null) out = {};
    else if (outputPath !== undefined) out = readPath(outputPath, out, ctx);
    return { output: out, next: state.End ? undefined : (state.Next as string) };
  };

  switch (type) {
    case "Pass": {
      const result = state.Parameters !== undefined ? resolveTemplate(state.Parameters, effective, ctx) : state.Result !== undefined ? state.Result : effective;
      return finish(result);
    }
    case "Succeed":
      return { output: state.OutputPath === undefined ? effective : readPath(String(state.OutputPath), effective, ctx) };
    case "Fail":
      throw new StatesError(String(state.Error ?? "States.Fail"), String(state.Cause ?? ""));
    case "Wait": {
      const seconds = state.Seconds !== undefined ? Number(state.Seconds) : state.SecondsPath ? Number(readPath(String(state.SecondsPath), effective, ctx)) : 0;
      await sleep(resources.delayMs ? resources.delayMs(seconds) : seconds * 1000, signal);
      return { output: effective, next: state.End ? undefined : (state.Next as string) };
    }
    case "Choice": {
      for (const rule of (state.Choices as Obj[]) ?? []) {
        if (evalRule(rule, effective, ctx)) return { output: state.OutputPath === undefined ? effective : readPath(String(state.OutputPath), effective, ctx), next: String(rule.Next) };
      }
      if (state.Default) return { output: effective, next: String(state.Default) };
      throw new StatesError("States.NoChoiceMatched", `no choice rule of state '${name}' matched`);
    }
    case "Task":
    case "Parallel":
    case "Map": {
      const retriers = ((state.Retry as Obj[]) ?? []).map((r) => ({ rule: r, count: 0 }));
      for (let retry = 0; ; retry++) {
        ctx.State!.RetryCount = retry;
        try {
          const result = await body(name, state, type, effective, ctx, resources, signal);
          return finish(result);
        } catch (e) {
          const err = e instanceof StatesError ? e : new StatesError("States.Runtime", (e as Error).message);
          if (signal.aborted) throw err;
          const retrier = retriers.find((r) => errorMatches(r.rule.ErrorEquals as string[], err.error));
          const max = retrier ? Number(retrier.rule.MaxAttempts ?? 3) : 0;
          if (retrier && retrier.count < max) {
            const interval = Number(retrier.rule.IntervalSeconds ?? 1);
            const backoff = Number(retrier.rule.BackoffRate ?? 2);
            let seconds = interval * backoff ** retrier.count;
            if (retrier.rule.MaxDelaySeconds !== undefined) seconds = Math.min(seconds, Number(retrier.rule.MaxDelaySeconds));
            retrier.count++;
            await sleep(resources.delayMs ? resources.delayMs(seconds) : seconds * 1000, signal);
            continue;
          }
          const catcher = ((state.Catch as Obj[]) ?? []).find((c) => errorMatches(c.ErrorEquals as string[], err.error));
          if (!catcher) throw err;
          const output = writePath(raw, catcher.ResultPath === undefined ? "$" : (catcher.ResultPath as string | null), { Error: err.error, Cause: err.cause });
          return { output, next: String(catcher.Next) };
        }
      }
    }
    default:
      throw new StatesError("States.Runtime", `state type '${type}' of '${name}' is not supported by this interpreter`);
  }
}

async function withTimeout<T>(seconds: number | undefined, signal: AbortSignal, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    if (!seconds) return await run(controller.signal);
    return await Promise.race([
      run(controller.signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          controller.abort();
          reject(new StatesError("States.Timeout", `the state did not finish within ${seconds} s`));
        }, seconds * 1000);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}

async function body(name: string, state: Obj, type: string, input: Json, ctx: Context, resources: Resources, signal: AbortSignal): Promise<Json> {
  if (type === "Task") {
    const parameters = state.Parameters !== undefined ? resolveTemplate(state.Parameters, input, ctx) : input;
    return withTimeout(state.TimeoutSeconds as number | undefined, signal, (s) => resources.task(String(state.Resource), parameters, { signal: s, context: ctx, state: name }));
  }
  if (type === "Parallel") {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      // The first failing branch fails the state and stops the others, as AWS does.
      return await Promise.all(
        (state.Branches as Obj[]).map((b) =>
          runMachine(b, input, ctx, resources, controller.signal).catch((e) => {
            controller.abort();
            throw e;
          }),
        ),
      );
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }
  // Map
  const processor = (state.ItemProcessor ?? state.Iterator) as Obj;
  const distributed = (processor.ProcessorConfig as Obj | undefined)?.Mode === "DISTRIBUTED";
  let items: Json;
  if (state.ItemReader) {
    const reader = state.ItemReader as Obj;
    const params = reader.Parameters !== undefined ? resolveTemplate(reader.Parameters, input, ctx) : {};
    items = await resources.readItems(reader, params, signal);
  } else items = state.ItemsPath ? readPath(String(state.ItemsPath), input, ctx) : input;
  if (!Array.isArray(items)) throw new StatesError("States.Runtime", `Map state '${name}': the items are not an array`);
  const limit = Number(state.MaxConcurrency ?? 0) || Number.POSITIVE_INFINITY;
  const results: Json[] = new Array(items.length);
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  let nextIndex = 0;
  let failure: StatesError | undefined;
  const worker = async () => {
    while (nextIndex < items.length && !failure && !controller.signal.aborted) {
      const i = nextIndex++;
      const value = (items as Json[])[i]!;
      const itemCtx: Context = { ...ctx, Map: { Item: { Index: i, Value: value } } };
      const selector = state.ItemSelector ?? state.Parameters;
      const itemInput = selector !== undefined ? resolveTemplate(selector, input, itemCtx) : value;
      const childCtx: Context = distributed && resources.childExecution ? { Execution: resources.childExecution(ctx, name, i), StateMachine: ctx.StateMachine } : { ...ctx, Map: undefined };
      try {
        results[i] = await runMachine(processor, itemInput, childCtx, resources, controller.signal);
      } catch (e) {
        failure ??= e instanceof StatesError ? e : new StatesError("States.Runtime", (e as Error).message);
        controller.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(limit, Math.max(1, items.length)) }, worker));
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  if (failure) {
    // A distributed Map fails as a whole once failures exceed its tolerance (zero by default).
    if (distributed) throw new StatesError("States.ExceedToleratedFailureThreshold", `Map '${name}': an item failed (${failure.error}: ${failure.cause.slice(0, 500)})`);
    throw failure;
  }
  return results;
}
