/**
 * One attempt of one task, wherever it runs (a warm worker, a container, a Batch job):
 * rebuild the flow object from its parents' artifacts, run the step, check the transition it
 * took against the static graph, and persist what changed.
 *
 * Artifacts are lazy. On a store that reads synchronously (local disk) a property getter
 * loads an artifact the moment the step touches it; elsewhere the artifacts the step's code
 * names are fetched before it starts. Either way a 1 GB artifact the step never reads costs
 * nothing, and an artifact the step did not touch is passed on by reference, never rewritten.
 */
import { getJson, mapLimit } from "./_datastore.ts";
import { buildJoinInputs, joinInputOf, readJoinInputs } from "./_inputs.ts";
import { attemptKey, blobKey, doneKey, runKey, taskKey } from "./_layout.ts";
import { type CardArtifact, CardSession, cardSpecsOf, previewComponent } from "./cards.ts";
import { algOf, contentHash, encode, type HashAlg, hashOf, inlined, loadArtifact, loadArtifactSync, refOf, refOfEncoded, stages, storeArtifact, storeEncoded, storeStaged } from "./artifacts.ts";
import { TsflowError } from "./errors.ts";
import { type CurrentInfo, INSTANCE_HOOKS, installRuntime, isParameterSpec, type MergeOptions, type RuntimeHooks } from "./flow.ts";
import { type GraphNode, loadFlowInfo } from "./graph.ts";
import { type SweepWatch, watchSweeps } from "./_sweeps.ts";
import type { TaskDoc } from "./_tasks.ts";
import type { ArtifactRef, Bytes, Datastore, Host, TaskError, TaskResult, TaskSpec } from "./types.ts";

/** What a task needs from the process it runs in. */
export interface TaskEnvironment {
  store: Datastore;
  host: Host;
  flowClass: Function;
  /** Masks secret values in the task's error before it is stored (`@secrets`). */
  redact?: (text: string) => string;
  /** `spin --artifacts`: values that replace the task's inputs of the same name. */
  overrides?: Record<string, unknown>;
}

/** The part of `run.json` a task reads. */
export interface RunRecord {
  flow: string;
  runId: string;
  parameters: Record<string, ArtifactRef>;
  [key: string]: unknown;
}

/** The success marker of a task: its final result and the attempt that produced it. */
export interface DoneRecord extends TaskResult {
  attempt: number;
  /** Set when the task was reused from another run (resume, `@cached`). */
  clonedFrom?: string;
  /**
   * The task's own record, for a task that recorded itself ({@link TaskSpec.taskDoc}): a first
   * attempt that succeeded quickly wrote no task.json, and this is its only copy. Readers take
   * task.json when there is one, else this (core/_tasks.ts). Never copied into a clone.
   */
  doc?: TaskDoc;
}

/**
 * How long a task that records itself runs before it writes its task.json. A quick success
 * writes none (its doc goes into done.json: one file fewer, the largest cost of a tiny task on
 * a local disk, docs/performance.md); a longer one shows up while it runs. 200 ms is far above
 * a tiny task's ~1-3 ms (tens of ms at load 10), so quick tasks stay quick on a busy machine,
 * and below the viewer's 1-second refresh, so a running task appears at most one refresh late.
 * A step that blocks its thread longer is recorded by the orchestrator instead (core/runtime.ts).
 */
export const SELF_RECORD_DELAY_MS = 200;

/**
 * The task.json of a first attempt that records itself ({@link TaskSpec.taskDoc}): written when
 * the attempt is still running after {@link SELF_RECORD_DELAY_MS}, or before its result.json
 * when it fails (a failure keeps the records it always had); a success puts it in done.json.
 */
class SelfRecord {
  readonly doc: TaskDoc;
  private written?: Promise<boolean>;
  private timer?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly store: Datastore,
    private readonly spec: TaskSpec,
    given: NonNullable<TaskSpec["taskDoc"]>,
    startedAt: number,
  ) {
    this.doc = { ...(given as unknown as TaskDoc), start: { ...given.start, startedAt } };
    if (!this.immediate) this.timer = setTimeout(() => void this.write(), spec.recordAfterMs ?? SELF_RECORD_DELAY_MS);
  }

  /**
   * Recorded as it starts (`recordAfterMs` 0), before its step runs: a timer of 0 ms fires only
   * once the event loop reaches its timers, which a quick task may never give it before it ends.
   */
  get immediate(): boolean {
    return this.spec.recordAfterMs === 0;
  }

  /** Writes task.json (once); resolves whether it is there. A failed write may be tried again. */
  write(): Promise<boolean> {
    clearTimeout(this.timer);
    this.written ??= this.store
      .put(taskKey(this.spec.flowName, this.spec.runId, this.spec.step, this.spec.taskId), new TextEncoder().encode(JSON.stringify(this.doc)))
      .then(
        () => true,
        () => {
          this.written = undefined;
          return false;
        },
      );
    return this.written;
  }

  /** Stops the timer; waits for a write already under way, so nothing lands after the task's end. */
  async settle(): Promise<void> {
    clearTimeout(this.timer);
    await this.written;
  }
}

const PREFETCH_SMALL = 64 * 1024;
/** Artifacts up to this serialized size get a preview in the default card. */
const CARD_PREVIEW_MAX = 256 * 1024;
type CardParameters = Parameters<CardSession["setRun"]>[0]["parameters"];
type CardGraph = Parameters<CardSession["setRun"]>[0]["graph"];

/**
 * One field of the flow object. `untouched`/`loaded`: an artifact of the parent (lazy);
 * `set`: assigned by the step; `default`: still the class field's initializer, which is not an
 * artifact (`initial` is the content hash it started with, to tell an in-place change);
 * `guarded`: in a join, an artifact of the inputs that the join has neither merged nor assigned.
 */
type Slot = {
  ref?: ArtifactRef;
  state: "untouched" | "loaded" | "set" | "default" | "guarded";
  value?: unknown;
  readonly?: boolean;
  initial?: string;
  /**
   * The field is a plain data property now (its value is the object's, not `value`): once a
   * step has read a loaded artifact or assigned one, its accessor has nothing left to track,
   * and a step looping over `this.x[i]` paid an accessor call for every read.
   */
  direct?: boolean;
};

const runCache = new Map<string, RunRecord>();
let foreachCache: { hash: string; items: unknown[] } | undefined;

/**
 * Big values a task of this process just stored (or read and left unchanged), kept for the
 * next task here that reads them: a worker running `start` then `use` hands the 100 MB array
 * over instead of `use` reading it back from the store. A value is taken at most once (the
 * taker owns it, as if it had read it) and only if it still serializes to its reference's
 * hash — the same proof a read from the store gives. Entries left unclaimed are dropped when
 * the next task persists; all of them together stay under HANDOFF_MAX bytes.
 */
const handoff = new Map<string, { value: unknown; size: number }>();
const HANDOFF_MIN = 1024 * 1024;
const HANDOFF_MAX = 1024 * 1024 * 1024;
const handoffKey = (ref: ArtifactRef) => `${algOf(ref)}:${contentHash(ref)}`;

function takeHandoff(host: Host, ref: ArtifactRef, name: string): { value: unknown } | undefined {
  const key = handoffKey(ref);
  const entry = handoff.get(key);
  if (!entry) return undefined;
  handoff.delete(key);
  try {
    if (hashOf(host, name, entry.value, algOf(ref)) === contentHash(ref)) return entry;
  } catch {}
  return undefined;
}

function offerHandoff(ref: ArtifactRef, value: unknown) {
  if (ref.size < HANDOFF_MIN) return;
  let total = ref.size;
  for (const e of handoff.values()) total += e.size;
  if (total <= HANDOFF_MAX) handoff.set(handoffKey(ref), { value, size: ref.size });
}

export function errorInfo(e: unknown): TaskError {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { type: e.name === "TsflowError" && typeof code === "string" ? code : e.name, message: e.message, stack: e.stack };
  }
  return { type: "Error", message: String(e) };
}

/**
 * Runs one attempt and writes its `result.json` (or, with {@link TaskSpec.commit} and success,
 * its task's `done.json`; with {@link TaskSpec.taskDoc}, its task.json when it runs long or
 * fails). Step errors are returned, not thrown.
 */
export async function executeTask(spec: TaskSpec, env: TaskEnvironment): Promise<TaskResult> {
  const startedAt = Date.now();
  // Every task gets a card session, so `current.card` works (as a no-op) in steps without @card.
  const cardSpecs = cardSpecsOf(spec.decorators ?? {});
  const cards = new CardSession(spec, env.store, env.host, cardSpecs);
  const stored: StoredBlobs = { written: [] };
  const self = spec.taskDoc ? new SelfRecord(env.store, spec, spec.taskDoc, startedAt) : undefined;
  try {
    // A write that fails here is tried again before a failure's result.json; a success carries
    // the doc in its done.json anyway.
    if (self?.immediate) await self.write();
    return await attemptAndPublish(spec, env, startedAt, cards, cardSpecs.length > 0, stored, self);
  } finally {
    await self?.settle();
  }
}

async function attemptAndPublish(spec: TaskSpec, env: TaskEnvironment, startedAt: number, cards: CardSession, withCards: boolean, stored: StoredBlobs, self: SelfRecord | undefined): Promise<TaskResult> {
  let result: TaskResult;
  try {
    result = await runAttempt(spec, env, startedAt, cards, stored);
  } catch (thrown) {
    const e = thrown instanceof FailedWithArtifacts ? thrown.error : thrown;
    const error = errorInfo(e);
    // A step that put a secret in its error message must not store it (see runner/secrets.ts).
    if (env.redact) {
      error.message = env.redact(error.message);
      if (error.stack) error.stack = env.redact(error.stack);
    }
    result = { ok: false, error, artifacts: thrown instanceof FailedWithArtifacts ? thrown.artifacts : {}, next: [], startedAt, finishedAt: Date.now() };
  } finally {
    installRuntime(undefined);
  }
  const finishCards = async () => {
    // Card blobs are put before the result.json that references them, like artifacts.
    stored.watch ??= startWatch(env.store);
    await stored.watch;
    const refs = await cards.finish({ ok: result.ok, error: result.error, startedAt: result.startedAt, finishedAt: result.finishedAt, artifacts: cards.artifacts ?? [] });
    if (refs.length > 0) result.cards = refs;
  };
  if (withCards) await finishCards();
  const resultKey = attemptKey(spec.flowName, spec.runId, spec.step, spec.taskId, spec.attempt, "result.json");
  // A committing attempt's success is its task's done.json (the orchestrator syncs it): the
  // result.json it would otherwise write holds the same record (see TaskSpec.commit).
  const markerKey = doneKey(spec.flowName, spec.runId, spec.step, spec.taskId);
  const publish = async () => {
    if (spec.commit && result.ok) {
      // The doc goes into the marker even when the timer wrote task.json too: done.json then
      // describes the task on its own, whichever way the race went.
      await env.store.put(markerKey, new TextEncoder().encode(JSON.stringify({ ...result, attempt: spec.attempt, ...(self ? { doc: self.doc } : {}) } satisfies DoneRecord)));
      return;
    }
    // A failed attempt keeps today's records: task.json, then its result.json. Should this
    // write fail too, the orchestrator writes task.json (core/runtime.ts).
    await self?.write();
    await env.store.put(resultKey, new TextEncoder().encode(JSON.stringify(result)));
  };
  await publish();
  // A gc that swept between our puts and the result.json may have taken blobs we put or
  // found: put them again before anyone reads them (see core/_sweeps.ts). Artifacts come back
  // with the same hashes; cards render anew (new hashes), so their new result.json opens a new
  // window, watched the same way.
  for (let round = 0; stored.watch && round < 3; round++) {
    const watch = await stored.watch;
    if (!(await watch.swept())) {
      carried.set(env.store, watch.continued());
      break;
    }
    stored.watch = undefined;
    try {
      await mapLimit(stored.written, 4, async ({ name, value, hash, alg }) => {
        const again = await storeArtifact(env.store, env.host, name, value, alg);
        if (again.hash !== hash) throw new TsflowError("Datastore", `artifact '${name}' changed while it was being stored (blob ${hash.slice(0, 12)}… became ${again.hash.slice(0, 12)}…)`);
      });
    } catch (e) {
      // A marker already written for this attempt must not outlive its failure.
      if (spec.commit && result.ok) await env.store.delete(markerKey);
      result = { ok: false, error: errorInfo(e), artifacts: {}, next: [], startedAt, finishedAt: Date.now() };
      await publish();
      break;
    }
    const cardBlobs = (result.cards ?? []).flatMap((c) => [c.data, c.html]).filter((h): h is string => typeof h === "string");
    const present = await Promise.all(cardBlobs.map((h) => env.store.has(blobKey(h))));
    if (present.every(Boolean)) break;
    await finishCards();
    await publish();
  }
  return result;
}

/**
 * The gc listing a task made after publishing its result, kept for the next task of this
 * process to start from (see SweepWatch.continued): one listing per task instead of two.
 */
const carried = new WeakMap<Datastore, SweepWatch>();

function startWatch(store: Datastore): Promise<SweepWatch> {
  const watch = carried.get(store);
  if (!watch) return watchSweeps(store);
  carried.delete(store);
  return Promise.resolve(watch);
}

/** What a task put: to put again when a gc may have swept it away before the result.json. */
interface StoredBlobs {
  /** Started before the first put. */
  watch?: Promise<SweepWatch>;
  written: { name: string; value: unknown; hash: string; alg: HashAlg }[];
}

async function readRun(store: Datastore, spec: TaskSpec): Promise<RunRecord> {
  const key = `${store.url}\0${spec.runId}`;
  let run = runCache.get(key);
  if (!run) {
    const found = await getJson<RunRecord>(store, runKey(spec.flowName, spec.runId));
    if (!found) throw new TsflowError("NotFound", `run ${spec.flowName}/${spec.runId} is not in ${store.url}`);
    run = found;
    runCache.set(key, run);
    if (runCache.size > 16) runCache.delete(runCache.keys().next().value!);
  }
  return run;
}

/**
 * Success markers read lately, by store and key. A done.json is written once and never
 * changed, and the tasks of a foreach all read the same split task's: a worker reads it once.
 */
const doneCache = new WeakMap<Datastore, Map<string, DoneRecord>>();
const DONE_CACHE_MAX = 64;

async function readDone(store: Datastore, flow: string, pathspec: string): Promise<DoneRecord> {
  const [run, step, task] = pathspec.split("/") as [string, string, string];
  const key = doneKey(flow, run, step, task);
  let cache = doneCache.get(store);
  if (!cache) doneCache.set(store, (cache = new Map()));
  const hit = cache.get(key);
  if (hit) return hit;
  const done = await getJson<DoneRecord>(store, key);
  if (!done) throw new TsflowError("NotFound", `parent task ${flow}/${pathspec} has no success marker in ${store.url}`);
  cache.set(key, done);
  if (cache.size > DONE_CACHE_MAX) cache.delete(cache.keys().next().value!);
  return done;
}

async function runAttempt(spec: TaskSpec, env: TaskEnvironment, startedAt: number, cards: CardSession, stored: StoredBlobs): Promise<TaskResult> {
  const { store, host, flowClass } = env;
  const info = loadFlowInfo(flowClass);
  const node = info.graph.nodes[spec.step];
  if (!node) throw new TsflowError("NotFound", `flow ${info.name} has no step '${spec.step}'`);
  const where = `${spec.flowName}/${spec.runId}/${spec.step}/${spec.taskId}`;
  const run = await readRun(store, spec);
  cards.setRun({ parameters: (run.parameterValues ?? {}) as CardParameters, graph: run.graph as CardGraph });
  // A join's parents are reduced to their artifact references as they are read (core/_inputs.ts):
  // a foreach's join may have 100,000 of them.
  const joining = spec.mode === "run" && node.isJoin === true;
  const joinInputs = joining ? await readJoinInputs(store, spec.flowName, spec.parents) : undefined;
  const parents = joining ? [] : await Promise.all(spec.parents.map((p) => readDone(store, spec.flowName, p)));

  const canReadSync = typeof store.getSync === "function";
  const prefetched = new Map<string, unknown>();
  // An inline value (in its reference) reads synchronously from any store: never fetched ahead.
  const want = (name: string, ref: ArtifactRef) =>
    canReadSync === false && ref.inline === undefined && (node.reads === "all" || node.reads.includes(name) || ref.size <= PREFETCH_SMALL);
  const prefetchKey = (source: string, name: string) => `${source}\0${name}`;
  const handedOut = new Map<string, unknown>();
  const load = (source: string, name: string, ref: ArtifactRef): unknown => {
    const k = prefetchKey(source, name);
    if (prefetched.has(k)) {
      const v = prefetched.get(k);
      prefetched.delete(k);
      handedOut.set(k, v);
      return v;
    }
    const handed = takeHandoff(host, ref, name);
    if (handed) return handed.value;
    if (canReadSync || ref.inline !== undefined) return loadArtifactSync(store, host, ref, name, source);
    // Read twice (inputs.a.x, then this.x merged from a): a second reader must not share the
    // first one's object, and the store cannot be read synchronously, so it gets a copy.
    if (handedOut.has(k)) return structuredClone(handedOut.get(k));
    throw new TsflowError(
      "NotFound",
      `artifact '${name}' of ${source} was not fetched before step '${spec.step}' started: on datastore ${store.url} tsflow fetches the artifacts a step's code names; write it as .${name} in the step`,
    );
  };

  // Build the flow object. Parameter() returns descriptors while constructing.
  installRuntime({ constructing: true, current: {}, next() {}, merge() {} });
  const flow = new (flowClass as new () => Record<string, unknown>)();
  const slots = new Map<string, Slot>();
  const paramFields = new Set(Object.keys(info.parameters));

  /** A field's value now; one the step deleted (`delete this.x`) keeps its last tracked value. */
  const fieldValue = (name: string, slot: Slot) => (slot.direct && Object.hasOwn(flow, name) ? flow[name] : slot.value);
  /** See {@link Slot.direct}. Parameters stay read-only, defaults keep telling an assignment. */
  const goDirect = (name: string, slot: Slot) => {
    slot.direct = true;
    Object.defineProperty(flow, name, { value: slot.value, writable: true, enumerable: true, configurable: true });
  };
  const defineSlot = (name: string, slot: Slot, source: string) => {
    slots.set(name, slot);
    slot.direct = false;
    Object.defineProperty(flow, name, {
      // An unresolved join artifact stays out of `{ ...this }` and Object.keys until assigned.
      enumerable: slot.state !== "guarded",
      configurable: true,
      get() {
        if (slot.state === "guarded") throw unmergedError(spec.step, name, inputSteps.get(name) ?? [], new Set(spec.parents.map((p) => p.split("/")[1])).size === 1);
        if (slot.state === "untouched") {
          slot.value = load(source, name, slot.ref!);
          slot.state = "loaded";
        }
        if (slot.state === "loaded" && !slot.readonly) goDirect(name, slot);
        return slot.value;
      },
      set(value) {
        if (slot.readonly) throw new TsflowError("BadParameter", `parameter '${name}' is read-only; assign the value to another artifact`);
        slot.value = value;
        slot.state = "set";
        goDirect(name, slot);
      },
    });
  };

  for (const [field, ref] of Object.entries(run.parameters)) {
    if (!paramFields.has(field)) continue;
    defineSlot(field, { ref, state: "untouched", readonly: true }, `${spec.runId} (parameter)`);
  }
  for (const key of Object.keys(flow)) {
    // Check `slots` first: reading a parameter's getter here would load it before its time.
    if (!slots.has(key) && isParameterSpec(flow[key])) delete flow[key];
  }

  const prefetchJobs: Array<() => Promise<void>> = [];
  const schedulePrefetch = (source: string, name: string, ref: ArtifactRef) => {
    if (want(name, ref)) {
      prefetchJobs.push(async () => {
        const handed = takeHandoff(host, ref, name);
        prefetched.set(prefetchKey(source, name), handed ? handed.value : await loadArtifact(store, host, ref, name, source));
      });
    }
  };
  for (const [field, slot] of slots) schedulePrefetch(`${spec.runId} (parameter)`, field, slot.ref!);

  let inputs: unknown;
  // In a join: artifact name → the steps of the inputs that have it (for the error message).
  const inputSteps = new Map<string, string[]>();
  if (joinInputs) {
    inputs = buildJoinInputs(joinInputs, load);
    // A join inherits nothing: its inputs may disagree. Reading one of their artifacts before
    // merging or assigning it is an error, not the field's initializer read silently.
    for (const input of joinInputs) {
      const step = input.source.split("/")[1]!;
      input.names.forEach((name, i) => {
        if (name.startsWith("_")) return;
        schedulePrefetch(input.source, name, input.refs[i]!);
        if (paramFields.has(name)) return;
        const steps = inputSteps.get(name) ?? [];
        if (!steps.includes(step)) steps.push(step);
        inputSteps.set(name, steps);
      });
    }
    for (const name of inputSteps.keys()) defineSlot(name, { state: "guarded" }, "join");
  } else if (parents.length === 1) {
    const source = spec.parents[0]!;
    for (const [name, ref] of Object.entries(parents[0]!.artifacts)) {
      if (paramFields.has(name) || name.startsWith("_")) continue;
      defineSlot(name, { ref, state: "untouched" }, source);
      schedulePrefetch(source, name, ref);
    }
  }
  // spin --artifacts: replacements of the task's inputs, stored first so that a step leaving
  // one unchanged passes it on by reference like any input.
  for (const [name, value] of Object.entries(env.overrides ?? {})) {
    const ref = await storeArtifact(store, host, name, value);
    defineSlot(name, { ref, state: "loaded", value, readonly: paramFields.has(name) }, "override");
  }
  // What is left is the class's own initializers: defaults, not artifacts, until a step
  // assigns them or changes them in place (told by their content hash, taken now).
  for (const key of Object.keys(flow)) {
    if (slots.has(key) || key.startsWith("_")) continue;
    const value = flow[key];
    defineSlot(key, { state: "default", value, initial: isObjectLike(value) ? hashOrUndefined(host, key, value) : undefined }, "default");
  }

  await mapLimit(prefetchJobs, 8, (job) => job());
  const frame = spec.foreach.at(-1);
  if (frame) {
    // The split is usually this task's parent: its record and, when prefetched, its foreach
    // artifact are already here (a task on S3 read both twice).
    const splitPath = `${frame.run ?? spec.runId}/${frame.step}/${frame.task}`;
    const parentIndex = spec.parents.indexOf(splitPath);
    const splitDone = parents[parentIndex] ?? (await readDone(store, spec.flowName, splitPath));
    const variable = info.graph.nodes[frame.step]?.foreach;
    const ref = variable ? splitDone.artifacts[variable] : undefined;
    if (!variable || !ref) throw new TsflowError("NotFound", `foreach artifact of step '${frame.step}' is missing for task ${where}`);
    const fetched = prefetchKey(splitPath, variable);
    let input: unknown;
    if (foreachCache?.hash === ref.hash) input = foreachCache.items[frame.index];
    else if (prefetched.has(fetched)) {
      // A copy, as `load` hands out a second read: the step may change its item and read the list.
      input = structuredClone(toItems(prefetched.get(fetched), variable, frame.step)[frame.index]);
    } else {
      const items = toItems(await loadArtifact(store, host, ref, variable, splitPath), variable, frame.step);
      foreachCache = { hash: ref.hash, items };
      input = items[frame.index];
    }
    Object.defineProperty(flow, "input", { value: input, enumerable: false, configurable: true });
    Object.defineProperty(flow, "index", { value: frame.index, enumerable: false, configurable: true });
  }

  // Run the step with the task's context installed.
  let taken: { targets: string[]; foreach?: string; condition?: string; cases?: Record<string, string> } | undefined;
  const current: CurrentInfo = {
    flowName: spec.flowName,
    runId: spec.runId,
    stepName: spec.step,
    taskId: spec.taskId,
    retryCount: spec.attempt,
    originRunId: spec.originRunId,
    pathspec: where,
    tags: spec.tags,
    namespace: spec.namespace,
    username: spec.username,
    datastore: store.url,
    card: cards,
  };
  const stepNames = new Map<Function, string>();
  for (const name of Object.keys(info.graph.nodes)) stepNames.set((flowClass.prototype as Record<string, Function>)[name]!, name);
  const running: RuntimeHooks = {
    constructing: false,
    current,
    store,
    next(_flow, args) {
      if (taken) throw new TsflowError("BadTransition", `step '${spec.step}' called this.next() twice`);
      taken = readRuntimeTransition(args, stepNames, spec.step);
    },
    merge(_flow, given, options) {
      mergeArtifacts(node, given, options, slots, defineSlot, paramFields);
    },
  };
  installRuntime(running);
  Object.defineProperty(flow, INSTANCE_HOOKS, { value: running, enumerable: false });

  // Persist: untouched artifacts by reference, touched ones only if their bytes changed,
  // defaults (initializers) only when changed in place, except the list a foreach splits on,
  // which its children read.
  const persist = async (): Promise<Record<string, ArtifactRef>> => {
  const artifacts: Record<string, ArtifactRef> = {};
  const put = async (name: string, value: unknown, chunks: Bytes[], ref: ArtifactRef) => {
    // A tiny value goes in its reference: no blob, so nothing a gc could sweep (no watch either).
    const small = inlined(chunks, ref);
    if (small) return small;
    stored.watch ??= startWatch(store);
    await stored.watch;
    return kept(name, value, await storeEncoded(store, host, chunks, ref));
  };
  const kept = (name: string, value: unknown, out: ArtifactRef) => {
    stored.written.push({ name, value, hash: out.hash, alg: algOf(out) });
    offerHandoff(out, value);
    return out;
  };
  /** A value this step made: a big one is written while it is hashed where the store can (storeStaged). */
  const putNew = async (name: string, value: unknown) => {
    const encoded = encode(name, value);
    if (!stages(store, encoded.size)) {
      const { ref, chunks } = refOfEncoded(host, encoded);
      return put(name, value, chunks, ref);
    }
    // The gc watch starts now but is waited for only before the blob's key is written: the
    // bytes go aside meanwhile (listing the sweep markers would hold back the write's start,
    // and the other values' encoding runs while it lists).
    stored.watch ??= startWatch(store);
    return kept(name, value, await storeStaged(store, host, encoded, stored.watch));
  };
  // What the previous task here offered and this one did not take is not wanted.
  handoff.clear();
  const names = [...new Set([...Object.keys(flow), ...slots.keys()])].filter((n) => !n.startsWith("_"));
  await mapLimit(names, 4, async (name) => {
    const slot = slots.get(name);
    if (slot?.state === "guarded") return;
    // Parameters belong to the run: a step that read one (even one it mutated in place) passes
    // on the run's value, which is what every other step sees, without re-hashing it.
    if (slot && (slot.state === "untouched" || slot.readonly)) {
      artifacts[name] = slot.ref!;
      return;
    }
    const value = slot ? fieldValue(name, slot) : flow[name];
    if (slot?.state === "default" && name !== node.foreach) {
      if (!isObjectLike(value) || slot.initial === undefined) return;
      if (hashOf(host, name, value) === slot.initial) return;
      const { ref, chunks } = refOf(host, name, value);
      artifacts[name] = await put(name, value, chunks, ref);
      return;
    }
    if (slot?.state === "loaded" && slot.ref) {
      // Hashed as the loaded blob was: an unchanged artifact of an older datastore (SHA-256)
      // passes on by reference instead of being stored again under a BLAKE3 address. Only the
      // hash first: most values a step reads come out unchanged.
      if (hashOf(host, name, value, algOf(slot.ref)) === contentHash(slot.ref)) {
        artifacts[name] = slot.ref;
        offerHandoff(slot.ref, value);
        return;
      }
      const { ref, chunks } = refOf(host, name, value, algOf(slot.ref));
      artifacts[name] = await put(name, value, chunks, ref);
      return;
    }
    artifacts[name] = await putNew(name, value);
  });
  return artifacts;
  };

  if (spec.mode === "catch") {
    const caught = spec.caught!;
    // What the failed attempt assigned before it raised goes on, as Metaflow's @catch keeps it.
    for (const [name, ref] of Object.entries(caught.artifacts ?? {})) {
      if (!slots.get(name)?.readonly) defineSlot(name, { ref, state: "untouched" }, `${spec.runId}/${spec.step}/${spec.taskId} (attempt ${spec.attempt - 1})`);
    }
    flow[caught.variable] = Object.assign(new Error(caught.error.message), { name: caught.error.type, stack: caught.error.stack });
    if (node.foreach || node.condition) {
      throw new TsflowError("BadTransition", `step '${spec.step}' failed and has @catchError, but a foreach or switch step cannot continue without running`);
    }
    // As if the step had called this.next() as written; `end` goes nowhere.
    taken = node.next.length > 0 ? { targets: node.next } : undefined;
  } else {
    const method = (flowClass.prototype as Record<string, Function>)[spec.step]!;
    try {
      await method.call(flow, ...(node.isJoin ? [inputs] : []));
    } catch (e) {
      // The last attempt of a @catchError step stores what it assigned before it raised, so the
      // catch attempt can pass it on; an artifact that cannot be stored just stays behind.
      const retries = Number(spec.decorators?.retry?.times ?? 0);
      if (spec.decorators?.catch && spec.attempt >= retries) {
        const partial = await persist().catch(() => undefined);
        if (partial) throw new FailedWithArtifacts(e, partial);
      }
      throw e;
    }
  }

  const next = checkTransition(node, taken);
  let foreachCount: number | undefined;
  let condition: string | undefined;
  if (node.foreach) foreachCount = toItems(flow[node.foreach], node.foreach, spec.step).length;
  if (node.condition) {
    condition = String(flow[node.condition]);
    // Own keys only: `in` would also accept "constructor", "toString"… from Object.prototype.
    if (!node.cases || !Object.hasOwn(node.cases, condition)) {
      throw new TsflowError(
        "BadTransition",
        `step '${spec.step}': condition artifact '${node.condition}' is '${condition}', which is not one of the cases ${Object.keys(node.cases ?? {}).join(", ")}`,
      );
    }
  }

  const artifacts = await persist();
  if (cards.active) {
    // The default card previews what this step produced or read; inherited artifacts it never
    // touched are listed without loading them (that would cost the step their bytes).
    cards.artifacts = Object.keys(artifacts)
      .sort()
      .map((name): CardArtifact => {
        const ref = artifacts[name]!;
        const slot = slots.get(name);
        const value = !slot ? flow[name] : slot.state === "untouched" ? undefined : fieldValue(name, slot);
        const shown = slot?.state !== "untouched" && ref.size <= CARD_PREVIEW_MAX;
        return { name, type: ref.type, size: ref.size, ...(shown ? { preview: previewComponent(value) } : {}) };
      });
  }
  return { ok: true, artifacts, next: condition !== undefined ? [node.cases![condition]!] : next, foreachCount, condition, startedAt, finishedAt: Date.now() };
}

/** A step's error, with the artifacts its attempt stored before the error (for @catchError). */
class FailedWithArtifacts {
  constructor(
    readonly error: unknown,
    readonly artifacts: Record<string, ArtifactRef>,
  ) {}
}

const isObjectLike = (v: unknown) => (typeof v === "object" && v !== null) || typeof v === "function";

/** The content hash of an initializer, or `undefined` when it cannot be serialized (a client, a function). */
function hashOrUndefined(host: Host, name: string, value: unknown): string | undefined {
  try {
    return hashOf(host, name, value);
  } catch {
    return undefined;
  }
}

/** What reading an unresolved artifact in a join says: which artifact, and both ways out. */
function unmergedError(join: string, name: string, steps: string[], foreach: boolean): TsflowError {
  const where = foreach ? `inputs[i].${name}` : steps.map((s) => `inputs.${s}.${name}`).join(" or ");
  return new TsflowError(
    "UnmergedArtifact",
    `step '${join}' reads this.${name}, but a join does not inherit artifacts and '${name}' was neither merged nor assigned in it: read one input's value (${where}), call this.mergeArtifacts(inputs) first, or assign this.${name}`,
  );
}

/**
 * The items of a foreach: an array, or any iterable value an artifact can hold — a string (one
 * task per character, as Metaflow), a Map (its [key, value] entries), a Set, a typed array.
 */
function toItems(value: unknown, variable: string, step: string): unknown[] {
  if (Array.isArray(value)) return value;
  if (typeof value === "string") return Array.from(value);
  if (value !== null && typeof value === "object" && Symbol.iterator in value) return Array.from(value as Iterable<unknown>);
  const what =
    value === undefined
      ? "not set"
      : value === null
        ? "null"
        : typeof value === "object"
          ? `an object that is not iterable (for its entries use Object.entries(this.${variable}))`
          : `a ${typeof value} (${String(value).slice(0, 40)})`;
  throw new TsflowError("BadTransition", `step '${step}': foreach artifact '${variable}' is ${what}; a foreach goes over an array, a string or another iterable (Map, Set, typed array)`);
}

/**
 * `this.mergeArtifacts(inputs)`, as Metaflow's merge_artifacts: every artifact of the inputs
 * that the join has not assigned is copied (by reference) when all inputs that have it agree.
 * A conflict copies nothing.
 */
function mergeArtifacts(node: GraphNode, given: unknown, options: MergeOptions, slots: Map<string, Slot>, define: (name: string, slot: Slot, source: string) => void, params: ReadonlySet<string>) {
  const step = node.name;
  if (!node.isJoin) {
    throw new TsflowError("BadTransition", `step '${step}' is not a join: this.mergeArtifacts(inputs) only works in a join step (a step that takes inputs)`);
  }
  if (!Array.isArray(given) || given.length === 0 || given.some((e) => !joinInputOf(e))) {
    throw new TsflowError("BadTransition", `step '${step}': this.mergeArtifacts() takes the join's inputs, as in this.mergeArtifacts(inputs)`);
  }
  if (options.include && options.exclude) {
    throw new TsflowError("BadTransition", `step '${step}': mergeArtifacts takes include or exclude, not both`);
  }
  const include = options.include ? new Set(options.include) : undefined;
  const exclude = new Set(options.exclude ?? []);
  const chosen = new Map<string, { ref: ArtifactRef; source: string }>();
  const conflicts = new Set<string>();
  for (const entry of given) {
    const { source, names, refs } = joinInputOf(entry)!;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const ref = refs[i]!;
      if (params.has(name) || name.startsWith("_") || exclude.has(name) || (include && !include.has(name))) continue;
      // Assigned in the join before the call: the join resolved it.
      if (slots.get(name)?.state === "set") continue;
      const seen = chosen.get(name);
      if (!seen) chosen.set(name, { ref, source });
      else if (contentHash(seen.ref) !== contentHash(ref)) conflicts.add(name);
    }
  }
  if (conflicts.size > 0) {
    const list = [...conflicts];
    throw new TsflowError(
      "BadTransition",
      `step '${step}': mergeArtifacts found different values of ${list.map((c) => `'${c}'`).join(", ")} in the inputs and merged nothing; assign ${list.map((c) => `this.${c}`).join(", ")} before the call or pass { exclude: [${list.map((c) => `"${c}"`).join(", ")}] }`,
    );
  }
  const missing = [...(include ?? [])].filter((n) => !chosen.has(n) && slots.get(n)?.state !== "set");
  if (missing.length > 0) {
    throw new TsflowError("BadTransition", `step '${step}': mergeArtifacts cannot include ${missing.map((m) => `'${m}'`).join(", ")}: no input has ${missing.length > 1 ? "them" : "it"}`);
  }
  for (const [name, { ref, source }] of chosen) define(name, { ref, state: "untouched" }, source);
}

function readRuntimeTransition(args: unknown[], stepNames: Map<Function, string>, step: string) {
  const nameOf = (f: unknown) => {
    const n = typeof f === "function" ? stepNames.get(f) : undefined;
    if (!n) throw new TsflowError("BadTransition", `step '${step}': this.next() was given something that is not a step of the flow`);
    return n;
  };
  const last = args.at(-1);
  if (args.length === 2 && last && typeof last === "object" && typeof args[0] !== "undefined") {
    const opts = last as { foreach?: string; condition?: string };
    if (opts.foreach !== undefined) return { targets: [nameOf(args[0])], foreach: opts.foreach };
    if (opts.condition !== undefined) {
      const cases: Record<string, string> = {};
      for (const [k, v] of Object.entries(args[0] as Record<string, unknown>)) cases[k] = nameOf(v);
      return { targets: [...new Set(Object.values(cases))], condition: opts.condition, cases };
    }
  }
  return { targets: args.map(nameOf) };
}

function checkTransition(node: GraphNode, taken: { targets: string[]; foreach?: string; condition?: string; cases?: Record<string, string> } | undefined): string[] {
  if (node.type === "end" || node.next.length === 0) {
    if (taken) throw new TsflowError("BadTransition", `step '${node.name}' called this.next() but it is the last step`);
    return [];
  }
  if (!taken) throw new TsflowError("BadTransition", `step '${node.name}' finished without calling this.next(); the graph says it goes to ${node.next.join(", ")}`);
  const same =
    taken.targets.join(",") === node.next.join(",") &&
    taken.foreach === node.foreach &&
    taken.condition === node.condition &&
    JSON.stringify(taken.cases ?? null) === JSON.stringify(node.cases ?? null);
  if (!same) {
    const describe = (t: { targets: string[]; foreach?: string; condition?: string }) =>
      `${t.targets.join(", ")}${t.foreach ? ` (foreach ${t.foreach})` : ""}${t.condition ? ` (switch on ${t.condition})` : ""}`;
    throw new TsflowError("BadTransition", `step '${node.name}' called this.next(${describe(taken)}) but the static graph says ${describe({ targets: node.next, foreach: node.foreach, condition: node.condition })}; the code the graph was read from differs from the code that ran`);
  }
  return node.next;
}
