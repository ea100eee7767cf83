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
import { TsflowError } from "./errors.ts";

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
}

function hooks(): RuntimeHooks | undefined {
  return (globalThis as Record<symbol, RuntimeHooks | undefined>)[RUNTIME];
}

/** Installs the hooks of the running task; the runtime calls this, users never do. */
export function installRuntime(h: RuntimeHooks | undefined): void {
  (globalThis as Record<symbol, RuntimeHooks | undefined>)[RUNTIME] = h;
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

/** Marks a method as a step of the flow. */
export const step: Decorator = methodDecorator("step", (meta) => {
  meta.step = true;
  // The first frame outside tsflow is the module defining the flow: `runFlow(Class)` uses it
  // to start workers on the same file when no file is given.
  meta.definedAt ??= new Error().stack ?? "";
}) as Decorator;

/** Attaches a named decorator with options to a step; the runtime and executors read it. */
export function stepDecorator(name: string, options: Record<string, unknown> = {}): Decorator {
  return methodDecorator(name, (meta) => {
    meta.decorators[name] = { ...options };
  }) as Decorator;
}

/**
 * The built-in step decorators: name → how its options are completed with defaults. Both
 * `@retry()` and `tsflow run --with retry` go through here, so they mean the same thing.
 */
export const DECORATORS: Record<string, (options: Record<string, any>) => Record<string, unknown>> = {
  retry: (o) => ({ times: Number(o.times ?? 3), minutesBetweenRetries: Number(o.minutesBetweenRetries ?? 0) }),
  catch: (o) => ({ var: String(o.var ?? "error"), printException: o.printException ?? true }),
  timeout: (o) => ({ seconds: Number(o.seconds ?? 0) + Number(o.minutes ?? 0) * 60 + Number(o.hours ?? 0) * 3600 }),
  resources: (o) => ({ ...o }),
  environment: (o) => ({ vars: { ...(o.vars ?? {}) } }),
  docker: (o) => ({ ...o }),
  batch: (o) => ({ ...o }),
  cached: () => ({}),
};

/** Re-runs a failed task: `times` more attempts, `minutesBetweenRetries` apart. */
export const retry = (options: { times?: number; minutesBetweenRetries?: number } = {}) => stepDecorator("retry", DECORATORS.retry!(options));

/** After retries are exhausted, stores the error in `this[var]` and continues the flow. */
export const catchError = (options: { var?: string; printException?: boolean } = {}) => stepDecorator("catch", DECORATORS.catch!(options));

/** Kills an attempt that runs longer than the sum of the given durations. */
export const timeout = (options: { seconds?: number; minutes?: number; hours?: number }) => stepDecorator("timeout", DECORATORS.timeout!(options));

/** Resource hints (memory in MB); executors map them to their limits. */
export const resources = (options: { cpu?: number; memory?: number; gpu?: number }) => stepDecorator("resources", DECORATORS.resources!(options));

/** Environment variables set while the step runs. */
export const environment = (options: { vars: Record<string, string> }) => stepDecorator("environment", DECORATORS.environment!(options));

/** Runs the step in a container of `image`. */
export const docker = (options: { image?: string; cpu?: number; memory?: number; gpu?: number } = {}) => stepDecorator("docker", DECORATORS.docker!(options));

/** Runs the step as an AWS Batch job. */
export const batch = (options: { queue?: string; image?: string; cpu?: number; memory?: number; gpu?: number; iamRole?: string } = {}) =>
  stepDecorator("batch", DECORATORS.batch!(options));

/** Reuses an earlier successful task when the step's code, inputs and parameters are the same. */
export const cached = () => stepDecorator("cached", {});

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
  kind: "parameter" | "file";
  type: ParameterType;
  default?: unknown;
  help?: string;
  required: boolean;
  choices?: readonly unknown[];
  /** IncludeFile: store as text (default) or bytes. */
  text?: boolean;
}

type Widen<T> = T extends string ? string : T extends number ? number : T extends boolean ? boolean : T;
type TypeOf<K> = K extends "string" ? string : K extends "number" ? number : K extends "boolean" ? boolean : unknown;

function describeParam(name: string, spec: Omit<ParameterSpec, "name">): any {
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
  const type = options.type ?? inferType(options.default);
  return describeParam(name, {
    kind: "parameter",
    type,
    default: options.default,
    help: options.help,
    required: options.required ?? false,
    choices: options.choices,
  });
}

function inferType(value: unknown): ParameterType {
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
