/**
 * Flow-level decorators for production deployments (`tsflow step-functions create`):
 * `@schedule`, `@triggerOnFinish` and `@project`. They only record options on the class; a
 * local `tsflow run` ignores them, `step-functions create` reads them with {@link productionOptions}.
 */
import { substituteConfig } from "./config.ts";
import { TsflowError } from "./errors.ts";
import { containsConfigRef } from "./flow.ts";

const PRODUCTION = Symbol.for("tsflow.production");

/** `@schedule`: exactly one of `cron` (EventBridge's six-field form), `hourly`, `daily`, `weekly`. */
export interface ScheduleOptions {
  /** EventBridge cron, six fields: `0 6 * * ? *` (06:00 every day). */
  cron?: string;
  hourly?: boolean;
  daily?: boolean;
  weekly?: boolean;
  /** IANA time zone the cron is read in (`Europe/Paris`). Default UTC. */
  timezone?: string;
}

/** What the production decorators recorded on a flow class. */
export interface ProductionOptions {
  schedule?: { expression: string; timezone?: string };
  triggerOnFinish?: { flows: string[] };
  project?: { name: string };
  /** `@schedule` options holding config references, resolved by {@link productionOptions}. */
  scheduleFromConfig?: ScheduleOptions;
}

type ClassDecorator = <C extends Function>(target: C, context?: unknown) => C;

function flowDecorator(label: string, apply: (options: ProductionOptions) => void): ClassDecorator {
  return (target, context) => {
    // Standard decorators pass a context with kind "class"; experimentalDecorators pass none.
    const kind = (context as { kind?: string } | undefined)?.kind;
    if (typeof target !== "function" || (kind !== undefined && kind !== "class")) {
      throw new TsflowError("BadFlow", `@${label} decorates a flow class, not a ${kind ?? typeof target}`);
    }
    const holder = target as unknown as Record<symbol, ProductionOptions>;
    if (!Object.hasOwn(holder, PRODUCTION)) Object.defineProperty(holder, PRODUCTION, { value: { ...holder[PRODUCTION] }, enumerable: false });
    apply(holder[PRODUCTION]!);
    return target;
  };
}

/**
 * Starts the deployed flow on a schedule (an EventBridge Scheduler schedule). Its options may
 * come from a config (`@schedule({ cron: config.deploy.cron })`): they are then checked when the
 * configs are known, by {@link productionOptions}.
 */
export function schedule(options: ScheduleOptions): ClassDecorator {
  if (containsConfigRef(options)) {
    return flowDecorator("schedule", (o) => {
      o.scheduleFromConfig = options;
    });
  }
  const resolved = scheduleOf(options);
  return flowDecorator("schedule", (o) => {
    o.schedule = resolved;
  });
}

function scheduleOf(options: ScheduleOptions): NonNullable<ProductionOptions["schedule"]> {
  const given = (["cron", "hourly", "daily", "weekly"] as const).filter((k) => options[k]);
  if (given.length !== 1) throw new TsflowError("BadFlow", `@schedule takes exactly one of cron, hourly, daily, weekly (got ${given.length ? given.join(", ") : "none"})`);
  let expression: string;
  if (options.cron !== undefined) {
    const fields = options.cron.trim().split(/\s+/);
    if (fields.length !== 6) throw new TsflowError("BadFlow", `@schedule cron '${options.cron}' must have six fields (minutes hours day-of-month month day-of-week year), as EventBridge reads it`);
    expression = `cron(${fields.join(" ")})`;
  } else if (options.hourly) expression = "cron(0 * * * ? *)";
  else if (options.daily) expression = "cron(0 0 * * ? *)";
  else expression = "cron(0 0 ? * SUN *)";
  return { expression, ...(options.timezone ? { timezone: options.timezone } : {}) };
}

/** Starts the deployed flow when a production run of `flow` (or of each of `flows`) succeeds. */
export function triggerOnFinish(options: { flow?: string; flows?: string[] }): ClassDecorator {
  const flows = [...(options.flow ? [options.flow] : []), ...(options.flows ?? [])];
  if (flows.length === 0) throw new TsflowError("BadFlow", "@triggerOnFinish needs { flow: 'OtherFlow' } or { flows: [...] }");
  for (const f of flows) if (!/^[A-Za-z_$][\w$]*$/.test(f)) throw new TsflowError("BadFlow", `@triggerOnFinish: '${f}' is not a flow name (a class name)`);
  return flowDecorator("triggerOnFinish", (o) => {
    o.triggerOnFinish = { flows };
  });
}

/** Groups deployments under a project: `--branch` and `--production` pick separate state machines. */
export function project(options: { name: string }): ClassDecorator {
  if (!options?.name || !/^[a-z0-9_]+$/.test(options.name)) throw new TsflowError("BadFlow", `@project name '${options?.name ?? ""}' must be lowercase letters, digits and underscores`);
  return flowDecorator("project", (o) => {
    o.project = { name: options.name };
  });
}

/**
 * What `@schedule`, `@triggerOnFinish` and `@project` recorded on `flowClass`. `configs` (config
 * values by name, see `configValues`) resolve options taken from a config.
 */
export function productionOptions(flowClass: Function, configs?: Record<string, unknown>): ProductionOptions {
  const out = { ...(flowClass as unknown as Record<symbol, ProductionOptions | undefined>)[PRODUCTION] };
  const fromConfig = out.scheduleFromConfig;
  delete out.scheduleFromConfig;
  if (!fromConfig) return out;
  if (configs) out.schedule = scheduleOf(substituteConfig(fromConfig, configs, `@schedule of ${flowClass.name}`) as ScheduleOptions);
  else {
    // Reading the other options needs no configs; reading the schedule without them is an error, not "no schedule".
    Object.defineProperty(out, "schedule", {
      get() {
        throw new TsflowError("BadConfig", `@schedule of ${flowClass.name} takes its options from a config: read the flow's configs first`);
      },
    });
  }
  return out;
}
