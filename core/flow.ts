/**
 * The user-facing flow API: `FlowSpec`, `@step`, step decorators, `Parameter`, `IncludeFile`,
 * `current` and the `Inputs<F>` type.
 *
 * Everything here keeps its state under `Symbol.for(...)` keys and on `globalThis`, never in
 * module-local variables. A user's flow may import a different copy of this module than the
 * CLI running it (the published CLI bundle vs. `node_modules/tsflow`, a compiled binary vs.
 * a flow on disk); shared symbols make every copy agree on what a step, a parameter and the
 * running task are.
 */
import type { ConfigSource } from "./config.ts";
import { type CardAccess, cardSpec } from "./cards.ts";
import { TsflowError } from "./errors.ts";
import type { Datastore } from "./types.ts";

const STEP_META = Symbol.for("tsflow.stepMeta");
const FLOW_BRAND = Symbol.for("tsflow.FlowSpec");
const PARAM_BRAND = Symbol.for("tsflow.Parameter");
const RUNTIME = Symbol.for("tsflow.runtime");
/** The hooks of the task a flow object belongs to, set on the object by the runtime. */
export const INSTANCE_HOOKS = Symbol.for("tsflow.instanceHooks");

/** Decorators attached to a method: name → options. `step` marks it a step. */
export interface StepMeta {
  step: boolean;
  decorators: Record<string, Record<string, unknown>>;
  /** Where the class was defined (a stack line), so `runFlow(Class)` can find the module. */
  definedAt?: string;
}

/** What the runtime installs on `globalThis` while a task runs. */
export interface RuntimeHooks {
  /** Called by `this.next(...)`. */
  next(flow: object, args: unknown[]): void;
  /** Called by `this.mergeArtifacts(...)`. */
  merge(flow: object, inputs: unknown, options: MergeOptions): void;
  /** Values of `current`. */
  current: Partial<CurrentInfo>;
  /** True while the runtime constructs a flow instance (parameters resolve to descriptors). */
  constructing: boolean;
  /** The datastore of the running task's run: the client inside a task reads this one. */
  store?: Datastore;
}

function hooks(): RuntimeHooks | undefined {
  return (globalThis as Record<symbol, RuntimeHooks | undefined>)[RUNTIME];
}

/** Installs the hooks of the running task; the runtime calls this, users never do. */
export function installRuntime(h: RuntimeHooks | undefined): void {
  (globalThis as Record<symbol, RuntimeHooks | undefined>)[RUNTIME] = h;
}

/**
 * The task running in this process, if any: its `current` values and its run's datastore. The
 * default client reads the run's own datastore from inside a task (also in a container or a
 * Batch job), and defaults to the run's namespace.
 */
export function runningTask(): { store?: Datastore; current: Partial<CurrentInfo> } | undefined {
  const h = hooks();
  return h && !h.constructing ? h : undefined;
}

export function getStepMeta(fn: unknown): StepMeta | undefined {
  return typeof fn === "function" ? (fn as unknown as Record<symbol, StepMeta>)[STEP_META] : undefined;
}

function metaOf(fn: Function): StepMeta {
  const holder = fn as unknown as Record<symbol, StepMeta>;
  if (!Object.hasOwn(holder, STEP_META)) {
    Object.defineProperty(holder, STEP_META, { value: { step: false, decorators: {} }, enumerable: false });
  }
  return holder[STEP_META]!;
}

type AnyMethod = (...args: any[]) => any;

/**
 * Builds a decorator that works in both TypeScript decorator modes: standard TC39
 * (`(method, context)`) and `experimentalDecorators` (`(prototype, key, descriptor)`).
 * Node loaders, Bun and Deno disagree on the default, so a flow must work under either.
 */
function methodDecorator(label: string, apply: (meta: StepMeta) => void) {
  return function decorate(target: any, context: any, descriptor?: PropertyDescriptor): any {
    if (typeof context === "object" && context !== null && "kind" in context) {
      if (context.kind !== "method" || typeof target !== "function") {
        throw new TsflowError("BadFlow", `@${label} can only decorate methods: '${String(context.name)}' is a ${context.kind}`);
      }
      apply(metaOf(target));
      return target;
    }
    const fn = descriptor?.value;
    if (typeof fn !== "function") {
      throw new TsflowError("BadFlow", `@${label} can only decorate methods: '${String(context)}' is not a method`);
    }
    apply(metaOf(fn));
    return descriptor;
  };
}

type Decorator = {
  <F extends AnyMethod>(method: F, context: ClassMethodDecoratorContext): F;
  (target: object, key: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor;
};

/** Marks a method as a step of the flow. `@step()` (called) means the same. */
const markStep = methodDecorator("step", (meta) => {
  meta.step = true;
  // The first frame outside tsflow is the module defining the flow: `runFlow(Class)` uses it
  // to start workers on the same file when no file is given. Formatted only when read: with
  // source maps on (runner/load.ts), formatting a stack parses the flow's map, ~3-5 ms of
  // every process's import of the flow, and only `runFlow(Class)` reads it.
  if (!Object.hasOwn(meta, "definedAt")) {
    const where = new Error();
    Object.defineProperty(meta, "definedAt", { get: () => where.stack ?? "", enumerable: true, configurable: true });
  }
});
export const step: Decorator & (() => Decorator) = ((...args: unknown[]) => (args.length === 0 ? markStep : markStep(args[0], args[1], args[2] as PropertyDescriptor))) as Decorator &
  (() => Decorator);

/**
 * Attaches a named decorator with options to a step; the runtime and executors read it.
 * Options holding `config.…` references stay as given until the run resolves its configs
 * (see core/config.ts); a built-in's defaults are filled in then.
 */
export function stepDecorator(name: string, options: Record<string, unknown> = {}): Decorator {
  return methodDecorator(name, (meta) => {
    meta.decorators[name] = isConfigRef(options) ? options : { ...options };
  }) as Decorator;
}

type AttrKind = "number" | "whole" | "string" | "boolean" | "identifier" | "vars";
/** A built-in decorator: defaults filled in now, or once its config references are resolved. */
const builtin = (name: string, options: Record<string, unknown>) => stepDecorator(name, containsConfigRef(options) ? options : DECORATORS[name]!(options));

const CONFIG_REF = Symbol.for("tsflow.configRef");

/** True for a `config.x.y` reference or a `config((c) => …)` expression (core/config.ts). */
export function isConfigRef(value: unknown): boolean {
  return typeof value === "function" && (value as unknown as Record<symbol, unknown>)[CONFIG_REF] !== undefined;
}

/** True when a config reference sits anywhere in plain objects and arrays below `value`. */
export function containsConfigRef(value: unknown, depth = 0): boolean {
  if (isConfigRef(value)) return true;
  if (depth > 32 || value === null || typeof value !== "object") return false;
  return Object.values(value).some((v) => containsConfigRef(v, depth + 1));
}

/**
 * Like {@link stepDecorator}, for a decorator that may be used several times on one step
 * (`@card`): `merge` gets the options so far and returns the new ones.
 */
export function stepDecoratorMerge(name: string, merge: (previous: Record<string, unknown> | undefined) => Record<string, unknown>): Decorator {
  return methodDecorator(name, (meta) => {
    meta.decorators[name] = merge(meta.decorators[name]);
  }) as Decorator;
}

/**
 * Checks a decorator's attributes: unknown names and malformed values are errors that list the
 * valid ones, so `--with retry:tims=2` or `@timeout({ second: 5 })` never pass silently.
 * Metaflow's snake_case spellings are accepted as aliases (`minutes_between_retries`).
 */
function attributes(name: string, given: unknown, schema: Record<string, AttrKind>): Record<string, unknown> {
  if (given === undefined || given === null) return {};
  const label = `@${name === "catch" ? "catchError" : name}`;
  if (typeof given !== "object" || Array.isArray(given)) {
    throw new TsflowError("BadFlow", `${label} takes an options object ({ ${Object.keys(schema).join(", ")} }), got ${typeof given === "string" ? `'${given}'` : typeof given}`);
  }
  const out: Record<string, unknown> = {};
  const valid = Object.keys(schema);
  for (const [raw, value] of Object.entries(given as Record<string, unknown>)) {
    const key = raw.includes("_") ? raw.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()) : raw;
    const kind = Object.hasOwn(schema, key) ? schema[key] : undefined;
    if (!kind) {
      throw new TsflowError("BadFlow", `${label} has no attribute '${raw}'${valid.length ? ` (valid: ${valid.join(", ")})` : " (it takes none)"}`);
    }
    if (value === undefined) continue;
    const bad = (what: string) => new TsflowError("BadFlow", `${label}: attribute '${raw}' must be ${what}, got ${typeof value === "string" ? `'${value}'` : JSON.stringify(value) ?? typeof value}`);
    switch (kind) {
      case "number":
      case "whole": {
        const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
        if (typeof n !== "number" || !Number.isFinite(n) || n < 0) throw bad("a number of at least 0");
        if (kind === "whole" && !Number.isInteger(n)) throw bad("a whole number");
        out[key] = n;
        break;
      }
      case "boolean":
        if (typeof value !== "boolean") throw bad("true or false");
        out[key] = value;
        break;
      case "identifier":
        if (typeof value !== "string" || !/^[A-Za-z_$][\w$]*$/.test(value)) throw bad("a field name");
        out[key] = value;
        break;
      case "vars":
        if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad("an object of variable names to strings");
        out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
        break;
      default:
        if (typeof value !== "string" || value === "") throw bad("a non-empty string");
        out[key] = value;
    }
  }
  return out;
}

const RESOURCE_ATTRS = { cpu: "number", memory: "number", gpu: "number" } as const;

/**
 * The built-in step decorators: name → how its options are checked and completed with
 * defaults. Both `@retry()` in code and `tsflow run --with retry` go through here, so they mean
 * the same thing and are rejected the same way.
 */
export const DECORATORS: Record<string, (options: Record<string, any>) => Record<string, unknown>> = {
  retry: (o) => {
    const a = attributes("retry", o, { times: "whole", minutesBetweenRetries: "number" });
    return { times: a.times ?? 3, minutesBetweenRetries: a.minutesBetweenRetries ?? 0 };
  },
  catch: (o) => {
    const a = attributes("catch", o, { var: "identifier", printException: "boolean" });
    return { var: a.var ?? "error", printException: a.printException ?? true };
  },
  timeout: (o) => {
    const a = attributes("timeout", o, { seconds: "number", minutes: "number", hours: "number" });
    const seconds = Number(a.seconds ?? 0) + Number(a.minutes ?? 0) * 60 + Number(a.hours ?? 0) * 3600;
    if (!(seconds > 0)) throw new TsflowError("BadFlow", "@timeout needs a duration above 0: seconds, minutes or hours (e.g. @timeout({ minutes: 5 }), --with timeout:minutes=5)");
    return { seconds };
  },
  resources: (o) => attributes("resources", o, RESOURCE_ATTRS),
  environment: (o) => ({ vars: { ...((attributes("environment", o, { vars: "vars" }).vars as object) ?? {}) } }),
  docker: (o) => attributes("docker", o, { image: "string", ...RESOURCE_ATTRS }),
  batch: (o) => attributes("batch", o, { queue: "string", image: "string", iamRole: "string", itemsPerJob: "whole", ...RESOURCE_ATTRS }),
  cached: (o) => attributes("cached", o, {}),
  // `--with card` (and `card:type=blank,id=x`): one card; `@card` in code may add several.
  card: (o) => (Array.isArray(o.cards) ? { cards: o.cards } : { cards: [cardSpec(o)] }),
  secrets: (o) => ({ sources: secretSources(o) }),
};

/** A secret source: `"TYPE:ID"` (`aws-secrets-manager:prod/db`, `env:TOKEN`, `file:.env`, `./vault.ts:key`) or an object. */
export type SecretSource = string | { type: string; id: string; envVarName?: string; options?: Record<string, unknown> };

function secretSources(o: Record<string, unknown>): SecretSource[] {
  const given = o?.sources;
  const list = typeof given === "string" ? [given] : given;
  const unknown = Object.keys(o ?? {}).filter((k) => k !== "sources");
  if (unknown.length) throw new TsflowError("BadFlow", `@secrets has no attribute '${unknown[0]}' (valid: sources)`);
  if (!Array.isArray(list) || list.length === 0) throw new TsflowError("BadFlow", `@secrets needs sources: @secrets({ sources: ["aws-secrets-manager:NAME", "env:NAME", "file:PATH"] })`);
  for (const s of list) {
    const ok = typeof s === "string" ? /^[^:]+:.+$/.test(s) : s && typeof s === "object" && typeof s.type === "string" && typeof s.id === "string";
    if (!ok) throw new TsflowError("BadFlow", `@secrets: source ${JSON.stringify(s)} must be "TYPE:ID" (aws-secrets-manager:NAME, env:NAME, file:PATH, ./plugin.ts:ID) or { type, id }`);
  }
  return list as SecretSource[];
}

/** A step decorator called as a factory, `@retry()`, or used bare like Metaflow's `@retry`. */
type DecoratorFactory<O> = ((options?: O) => Decorator) & Decorator;
type RequiredDecoratorFactory<O> = (options: O) => Decorator;

/**
 * Builds `@name(options)`. Used without its call (`@retry`), the decorator receives the method
 * instead of options: it then applies its defaults — or, for one whose options are required,
 * says that it needs them — instead of silently replacing the step.
 */
function factory<O>(name: string, bare: "defaults" | string): DecoratorFactory<O> {
  return ((...args: unknown[]) => {
    const [first, second] = args;
    const asDecorator =
      (typeof first === "function" && typeof second === "object" && second !== null && "kind" in second) ||
      (args.length === 3 && typeof first === "object" && (typeof second === "string" || typeof second === "symbol"));
    if (asDecorator) {
      const where = typeof second === "object" ? String((second as unknown as { name: unknown }).name) : String(second);
      const label = name === "catch" ? "catchError" : name;
      if (bare !== "defaults") throw new TsflowError("BadFlow", `@${label} on '${where}' is used without its call: write ${bare}`);
      return (stepDecorator(name, DECORATORS[name]!({})) as (...a: unknown[]) => unknown)(...args);
    }
    return builtin(name, (first ?? {}) as Record<string, unknown>);
  }) as DecoratorFactory<O>;
}

/** Re-runs a failed task: `times` more attempts, `minutesBetweenRetries` apart. */
export const retry = factory<{ times?: number; minutesBetweenRetries?: number }>("retry", "defaults");

/** After retries are exhausted, stores the error in `this[var]` and continues the flow. */
export const catchError = factory<{ var?: string; printException?: boolean }>("catch", "defaults");

/** Kills an attempt that runs longer than the sum of the given durations. */
export const timeout = factory<{ seconds?: number; minutes?: number; hours?: number }>(
  "timeout",
  "@timeout({ seconds | minutes | hours })",
) as unknown as RequiredDecoratorFactory<{ seconds?: number; minutes?: number; hours?: number }>;

/** Resource hints (memory in MB); executors map them to their limits. */
export const resources = factory<{ cpu?: number; memory?: number; gpu?: number }>("resources", "defaults");

/** Environment variables set while the step runs. */
export const environment = factory<{ vars: Record<string, string> }>("environment", "@environment({ vars: { NAME: \"value\" } })") as unknown as RequiredDecoratorFactory<{
  vars: Record<string, string>;
}>;

/** Runs the step in a container of `image`. */
export const docker = factory<{ image?: string; cpu?: number; memory?: number; gpu?: number }>("docker", "defaults");

/** Runs the step as an AWS Batch job. */
export const batch = factory<{ queue?: string; image?: string; cpu?: number; memory?: number; gpu?: number; iamRole?: string; itemsPerJob?: number }>("batch", "defaults");

/** Reuses an earlier successful task when the step's code, inputs and parameters are the same. */
export const cached = factory<Record<string, never>>("cached", "defaults");

/**
 * Secrets fetched when the task starts and set as environment variables of that task only:
 * `@secrets({ sources: ["aws-secrets-manager:prod/db", "env:API_TOKEN", "file:.env.local"] })`.
 * Their values never reach the datastore, the logs or a job definition.
 */
export const secrets = factory<{ sources: SecretSource[] }>("secrets", '@secrets({ sources: ["aws-secrets-manager:NAME"] })') as unknown as (options: { sources: SecretSource[] }) => Decorator;

/** Options of `mergeArtifacts`. */
export interface MergeOptions {
  include?: string[];
  exclude?: string[];
}

/** The shape of a transition target: a step method of the flow. */
type StepRef = AnyMethod;

/**
 * Base class of every flow. Fields become artifacts; methods marked `@step` become steps.
 * It declares no instance fields of its own, so every own property of a flow is the user's.
 */
export abstract class FlowSpec {
  /** In a foreach body: the item this task works on. */
  declare readonly input: any;
  /** In a foreach body: the index of `input` in the foreach list. */
  declare readonly index: number;

  /**
   * Goes to the next step(s): `next(this.a)`, `next(this.a, this.b)` (parallel branches),
   * `next(this.f, { foreach: "items" })` (one task per item), or
   * `next({ yes: this.a, no: this.b }, { condition: "route" })` (switch on an artifact).
   */
  next(...steps: StepRef[]): void;
  next(step: StepRef, options: { foreach: string }): void;
  next(cases: Record<string, StepRef>, options: { condition: string }): void;
  next(...args: unknown[]): void {
    // The object's own task first: the process-wide hooks are only a fallback, so nothing that
    // happens in the process while an async step awaits can change where its next() goes.
    const h = (this as unknown as Record<symbol, RuntimeHooks | undefined>)[INSTANCE_HOOKS] ?? hooks();
    if (!h || h.constructing) throw new TsflowError("BadTransition", "this.next() can only be called inside a running step");
    h.next(this, args);
  }

  /** In a join: copies every artifact that has the same value in all inputs (by reference). */
  mergeArtifacts(inputs: Iterable<unknown>, options: MergeOptions = {}): void {
    const h = (this as unknown as Record<symbol, RuntimeHooks | undefined>)[INSTANCE_HOOKS] ?? hooks();
    if (!h || h.constructing) throw new TsflowError("BadTransition", "this.mergeArtifacts() can only be called inside a running join step");
    h.merge(this, inputs, options);
  }
}
Object.defineProperty(FlowSpec.prototype, FLOW_BRAND, { value: true });

/** True for a class extending (any copy of) `FlowSpec`. */
export function isFlowClass(value: unknown): value is new () => FlowSpec {
  return typeof value === "function" && typeof value.prototype === "object" && value.prototype !== null && (value.prototype as Record<symbol, unknown>)[FLOW_BRAND] === true;
}

// ---------------------------------------------------------------------------------------
// Parameters

export type ParameterType = "string" | "number" | "boolean" | "json";

export interface ParameterOptions<T> {
  default?: T;
  help?: string;
  required?: boolean;
  type?: ParameterType;
  choices?: readonly T[];
}

/** What `Parameter()` returns while the runtime builds a flow; the runtime swaps in the value. */
export interface ParameterSpec {
  name: string;
  /** `config`: a `Config()`, read before the run from a file or inline JSON (core/config.ts). */
  kind: "parameter" | "file" | "config";
  type: ParameterType;
  default?: unknown;
  help?: string;
  required: boolean;
  choices?: readonly unknown[];
  /** IncludeFile: store as text (default) or bytes. */
  text?: boolean;
  /** The type comes from `default`, a config reference known only when the run starts. */
  typeFromDefault?: boolean;
  /** Config: how it is read and checked. */
  config?: ConfigSource;
}

type Widen<T> = T extends string ? string : T extends number ? number : T extends boolean ? boolean : T;
type TypeOf<K> = K extends "string" ? string : K extends "number" ? number : K extends "boolean" ? boolean : unknown;

/** A parameter-like descriptor that the runtime swaps for its value (Parameter, IncludeFile, Config). */
export function describeParam(name: string, spec: Omit<ParameterSpec, "name">): any {
  if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(name)) {
    throw new TsflowError("BadFlow", `parameter name '${name}' is invalid: use letters, digits, '-' and '_', starting with a letter`);
  }
  return Object.defineProperty({ name, ...spec }, PARAM_BRAND, { value: true });
}

/**
 * A run parameter: `--name value` on `tsflow run`, validated, and a read-only artifact in
 * every step. Its type comes from `default` or `type`.
 */
export function Parameter<T>(name: string, options: ParameterOptions<T> & { default: T }): Widen<T>;
export function Parameter<K extends ParameterType>(name: string, options: ParameterOptions<TypeOf<K>> & { type: K; required: true }): TypeOf<K>;
export function Parameter<K extends ParameterType>(name: string, options: ParameterOptions<TypeOf<K>> & { type: K }): TypeOf<K> | undefined;
export function Parameter(name: string, options: ParameterOptions<unknown>): unknown {
  // A default taken from a config (`default: config.train.lr`) gives its type once resolved.
  const deferred = options.type === undefined && isConfigRef(options.default);
  const type = options.type ?? (deferred ? "json" : inferType(options.default));
  return describeParam(name, {
    kind: "parameter",
    type,
    ...(deferred ? { typeFromDefault: true } : {}),
    default: options.default,
    help: options.help,
    required: options.required ?? false,
    choices: options.choices,
  });
}

export function inferType(value: unknown): ParameterType {
  if (typeof value === "number") return "number";
  if (typeof value === "boolean") return "boolean";
  if (typeof value === "string" || value === undefined) return "string";
  return "json";
}

/**
 * A file read when the run starts and stored as an artifact, so the run can be reproduced
 * without the file. `--name path` picks another file.
 */
export function IncludeFile(name: string, options?: { default?: string; help?: string; required?: boolean; text?: true }): string;
export function IncludeFile(name: string, options: { default?: string; help?: string; required?: boolean; text: false }): Uint8Array;
export function IncludeFile(name: string, options: { default?: string; help?: string; required?: boolean; text?: boolean } = {}): unknown {
  return describeParam(name, {
    kind: "file",
    type: "string",
    default: options.default,
    help: options.help,
    required: options.required ?? options.default === undefined,
    text: options.text ?? true,
  });
}

export function isParameterSpec(value: unknown): value is ParameterSpec {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[PARAM_BRAND] === true;
}

// ---------------------------------------------------------------------------------------
// current

/** What a running task knows about itself. */
export interface CurrentInfo {
  flowName: string;
  runId: string;
  stepName: string;
  taskId: string;
  retryCount: number;
  originRunId: string | undefined;
  pathspec: string;
  tags: string[];
  namespace: string | null | undefined;
  username: string;
  /** The datastore URL of the run. */
  datastore: string;
  /** The task's cards (`@card`): `current.card.append(new Markdown("…"))`, `current.card.refresh()`. */
  card: CardAccess;
}

/** Information about the running task; every field is `undefined` outside a task. */
export const current: Readonly<CurrentInfo> = new Proxy({} as CurrentInfo, {
  get(_target, key) {
    return (hooks()?.current as Record<string | symbol, unknown> | undefined)?.[key];
  },
  ownKeys() {
    return Object.keys(hooks()?.current ?? {});
  },
  getOwnPropertyDescriptor(_target, key) {
    const cur = hooks()?.current as Record<string | symbol, unknown> | undefined;
    return cur && key in cur ? { value: cur[key], enumerable: true, configurable: true } : undefined;
  },
});

// ---------------------------------------------------------------------------------------
// Types for joins

type Method = (...args: any[]) => any;
/** Step names of a flow class. */
export type StepNames<F> = { [K in keyof F]: F[K] extends Method ? (K extends keyof FlowSpec ? never : K) : never }[keyof F];
/** The artifacts (non-method fields) of a flow class, read-only. */
export type Artifacts<F> = { readonly [K in keyof F as F[K] extends Method ? never : K extends keyof FlowSpec ? never : K]: F[K] };
/**
 * A join's `inputs`: iterable in foreach-index order, and addressable by the name of the step
 * each branch ended with (`inputs.a.pets`). Entries are read-only.
 */
export type Inputs<F> = ReadonlyArray<Artifacts<F>> & { readonly [K in StepNames<F>]: Artifacts<F> };
