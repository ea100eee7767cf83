/**
 * The plugin interfaces of tsflow, in one place.
 *
 * Like unstorage's `Driver`, each interface has a few required methods and some optional
 * ones; the core fills in what a plugin lacks (see `_datastore.ts`). Methods may return a
 * value or a promise. Bytes are `Uint8Array`, never `Buffer`, so the core stays portable.
 */
import type { CardRef } from "./cards.ts";

/** Raw bytes. Plugins may receive a `Buffer` (it is a `Uint8Array`) but must not require one. */
export type Bytes = Uint8Array;

/** Options of {@link Datastore.put}. */
export interface PutOptions {
  /**
   * The key is content-addressed: if it already exists it already holds these bytes, so the
   * store may skip the write. Two writers racing on the same key must both succeed.
   */
  immutable?: boolean;
  /**
   * Write only if the key does not exist yet: a marker that must be written once (a run's
   * `run.json`). When it exists the put rejects with a `TsflowError` named `KeyExists`. A store
   * with {@link Datastore.atomicIfAbsent} decides atomically (S3 `If-None-Match: *`, a hard link
   * on a disk); on others the wrapper checks first, which leaves a window between two writers.
   */
  ifAbsent?: boolean;
  /**
   * A record that defines success (a task's `done.json`): once `put` resolves it must survive a
   * power loss. A local store syncs it (docs/reliability.md, "Power loss"); object stores are
   * durable on their answer already.
   */
  durable?: boolean;
}

/** How much one read may load; see {@link Datastore.get}. */
export interface ReadOptions {
  maxBytes?: number;
  /**
   * A store that downloads a value in pieces may feed each byte of the value it returns to this
   * hasher, once and in order, as the pieces arrive: hashing then overlaps the download. The
   * caller counts what was fed and hashes the value itself when the count is not its length.
   */
  hasher?: Hasher;
}

/**
 * Byte storage under `/`-separated keys (`runs/Flow/123/start/1/done.json`).
 *
 * Contract every datastore passes (the conformance suite in `testing/datastores.ts`):
 * - `get` of a missing key returns `null`; any other failure throws an error naming the key.
 * - `put` is atomic: a reader sees the old value or the new one, never a partial write.
 * - `list(prefix)` lists the immediate children of a "directory" prefix, sorted: keys as
 *   `name`, deeper prefixes as `name/`. A missing prefix lists as `[]`.
 */
export interface Datastore {
  /** Plugin name, e.g. `fs` or `s3`. */
  readonly name: string;
  /** Where the data lives, for messages: a path, `s3://bucket/prefix`, … */
  readonly url: string;
  /**
   * How another process (a worker, a container, a Batch job) re-opens this store: what
   * `--datastore` takes (a path, `s3://…`, `./my-store.ts:{"dir":"…"}`). Missing for a store
   * that lives only in this process (memory): it works with the inline executor only.
   */
  readonly location?: string;
  /**
   * The value of `key`, `null` when missing. `options.maxBytes`: a value bigger than this may
   * be refused (a `TooLarge` error) before it is read — what displays a datastore must not be
   * made to load a planted 2 GB record. Optional to honour: the core checks again after.
   */
  get(key: string, options?: ReadOptions): Promise<Bytes | null>;
  /** Writes `data` (one buffer, or several written back to back with no concatenation). */
  put(key: string, data: Bytes | readonly Bytes[], options?: PutOptions): Promise<void>;
  has(key: string): Promise<boolean>;
  list(prefix: string): Promise<string[]>;
  /** Deletes a key; a missing key is not an error. */
  delete(key: string): Promise<void>;

  /** Every key below `prefix`, recursively. The core walks `list` when this is missing. */
  listAll?(prefix: string): Promise<string[]>;
  /** Deletes every key below `prefix`. The core deletes key by key when this is missing. */
  deletePrefix?(prefix: string): Promise<void>;
  /**
   * Synchronous read, for stores that can (a local disk). With it, a step reads each
   * artifact at the moment it touches it; without it, artifacts the step's code names are
   * fetched before the step starts.
   */
  getSync?(key: string, options?: ReadOptions): Bytes | null;
  /** Reads a large value piece by piece; `null` when missing. */
  getStream?(key: string): Promise<AsyncIterable<Bytes> | null>;
  /** Writes a large value from a stream, with bounded memory. Atomic like `put`. */
  putStream?(key: string, data: AsyncIterable<Bytes>, options?: PutOptions): Promise<void>;
  /** Size in bytes, or `null` when missing. */
  size?(key: string): Promise<number | null>;
  /**
   * Starts writing `data` before its key is known, for a value whose key is its content hash:
   * the core hashes a big artifact (~30 ms for 100 MB) while the store is already writing it,
   * instead of hashing first and writing after. The store writes the bytes aside (nothing
   * under any key yet) and the returned {@link StagedWrite} either names the key (commit) or
   * throws the bytes away (abort). `prefix` is where the key will be (`blobs/`): a store may
   * write beside it. The write is speculative (the blob may exist already: a re-run on the same
   * data), so a store may decline with `undefined` when it would cost more than it saves now
   * (the fs store: no idle CPU to write on). The core calls it only for values of several MiB on
   * stores that do not compress. Optional: without it (or declined) the core hashes, then puts.
   */
  stage?(prefix: string, data: readonly Bytes[]): Promise<StagedWrite | undefined>;
  /**
   * Makes a key written earlier (by this process or another) survive a power loss, as a
   * {@link PutOptions.durable} put would have: the orchestrator syncs the success marker a
   * worker wrote before the task's dependents start. A store whose writes are durable when
   * they return (S3) resolves at once. Rejects when the key is missing. Optional: without it a
   * worker's task hands its result back and the orchestrator writes the marker itself.
   */
  sync?(key: string): Promise<void>;
  /**
   * {@link Datastore.sync} of many keys at once: the orchestrator defers each marker's sync
   * until a dependent needs it and then makes every pending marker durable in one call (a
   * foreach's join: all its inputs). A store can do that for less than one sync per key (the
   * fs store: one `syncfs` of its filesystem). Rejects when any key is missing or could not be
   * made durable, naming a key. Optional: the core falls back to `sync` of each key.
   */
  syncMany?(keys: readonly string[]): Promise<void>;
  /**
   * Every `put` is durable once it resolves, whoever made it (an object store: S3 answers a PUT
   * once it stored the object). A success marker another process wrote then needs no
   * {@link Datastore.sync}, so tasks may commit themselves ({@link TaskSpec.commit}) on it too.
   */
  readonly durableWrites?: boolean;
  /** A local directory holding the keys, when there is one (lets executors mount it). */
  readonly root?: string;
  /**
   * Bytes cost more than CPU here (a network, a metered bucket): compressible artifacts are
   * stored gzipped. Never set for a local disk, where compressing only costs time.
   */
  readonly compress?: boolean;
  /** `put` honours {@link PutOptions.ifAbsent} atomically (the store itself refuses a second create). */
  readonly atomicIfAbsent?: boolean;
  close?(): Promise<void>;
}

/** A write begun by {@link Datastore.stage}: exactly one of its methods ends it. */
export interface StagedWrite {
  /**
   * Finishes the write under `key`, atomic like `put` (a reader sees no key or all of it), and
   * resolves once it is there. With {@link PutOptions.immutable} and a key that exists already,
   * stops writing, discards what was written and keeps (refreshes) the existing key, as `put`
   * would. On failure it rejects naming the key and leaves no key. What was written aside is
   * removed, possibly after the promise resolves (the fs store: in its thread pool, or at the
   * latest as the process exits), never left for a reader to see.
   */
  commit(key: string, options?: PutOptions): Promise<void>;
  /** Stops writing and discards what was written (as commit does). Never rejects. */
  abort(): Promise<void>;
}

/** Builds a datastore from its URL (`s3://bucket/prefix`, a path, …). */
export type DatastoreFactory<O = unknown> = (options: O) => Datastore;

/** A streaming hash: `crypto.subtle.digest` cannot stream, so the host provides one. */
export interface Hasher {
  update(data: Bytes): void;
  /** Lowercase hex digest. */
  digest(): string;
}

/** What the core needs from the runtime it runs on. Implemented in `plugins/host/`. */
export interface Host {
  /** `node`, `bun` or `deno`. */
  readonly runtime: string;
  /** A fresh SHA-256 hasher. */
  sha256(): Hasher;
  /**
   * A fresh native BLAKE3 hasher, or `undefined` when the runtime has none. Artifacts are
   * addressed by BLAKE3 where it is native (several times SHA-256's speed on one core); the
   * core verifies BLAKE3 blobs with its own portable copy elsewhere. Optional.
   */
  blake3?(): Hasher | undefined;
  /** Environment variables (read-only view). */
  env(name: string): string | undefined;
  /** Reads a local file (IncludeFile); throws when missing. */
  readFile(path: string): Promise<Bytes>;
  /** The user running tsflow, for the `user:` tag and namespaces. */
  username(): string;
  /** Number of CPUs, the default of `--max-workers`. */
  cpus(): number;
  /** This process, recorded in run.json so a dead orchestrator is noticed at once on its machine. */
  identity?(): { hostname: string; pid: number };
  /** Whether `pid` still runs, when `hostname` is this machine; `undefined` when it cannot tell. */
  processAlive?(hostname: string, pid: number): boolean | undefined;
  /**
   * gzip (fast level), for artifacts on stores where bytes cost more than CPU. Optional. Each
   * chunk may become its own gzip member (a valid gzip stream), so no chunk is ever joined.
   */
  gzip?(chunks: readonly Bytes[]): Bytes[];
  /**
   * Undoes {@link Host.gzip}. Required to read compressed artifacts. Throws when the output
   * would pass `maxOutput` bytes (a 2 MB gzip bomb expands past 4 GB).
   */
  gunzip?(data: Bytes, maxOutput?: number): Bytes;
}

/** A logger; only `cli/` creates the real (consola) one. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug?(message: string): void;
}

/** Resource hints of `@resources` and executor decorators. Memory in MB. */
export interface Resources {
  cpu?: number;
  memory?: number;
  gpu?: number;
}

/** One level of foreach nesting seen by a task: it is item `index` of `count`. */
export interface ForeachFrame {
  /** The step that called `this.next(..., { foreach })`. */
  step: string;
  /** Task id of the splitting task. */
  task: string;
  index: number;
  count: number;
  /** The run of the splitting task when it is not the task's own (`spin` re-runs a past task in a new run). */
  run?: string;
}

/**
 * Everything needed to run one attempt of one task, anywhere. It is plain JSON so that it
 * can travel over a pipe, a container's command line or an AWS Batch job.
 */
export interface TaskSpec {
  flowName: string;
  /** The module holding the flow class: an absolute path, or a code package (`package:<hash>`). */
  flowFile: string;
  /** Named export holding the flow class; `default` when absent. */
  exportName?: string;
  /** The flow already built into a plain JS module, when the executor can reach it (local workers). */
  module?: string;
  /** Datastore URL the task reads and writes. */
  datastore: string;
  runId: string;
  step: string;
  taskId: string;
  attempt: number;
  /** Pathspecs (`run/step/task`) of the tasks whose artifacts this task starts from. */
  parents: string[];
  foreach: ForeachFrame[];
  /**
   * `run` executes the step; `catch` (after retries are exhausted under `@catchError`) only
   * stores the error in the catch variable and takes the static transition.
   */
  mode: "run" | "catch";
  /** With `mode: "catch"`: the variable and the error to store. */
  caught?: { variable: string; error: TaskError; artifacts?: Record<string, ArtifactRef> };
  /**
   * Extra environment for the task (`@environment`, `--with environment:K=V`). These values may
   * be secrets: an executor passes them to the task's process environment and never writes them
   * to the datastore, a job definition or a log.
   */
  env: Record<string, string>;
  resources: Resources;
  /** Seconds before the executor must kill the attempt (`@timeout`). */
  timeoutSeconds?: number;
  /**
   * Decorators attached to this step (name → options), for executors that read them. Holds no
   * `@environment` values (only `environment.names`): those are in {@link TaskSpec.env}.
   */
  decorators: Record<string, Record<string, unknown>>;
  /** Run tags and origin, surfaced through `current`. */
  tags: string[];
  originRunId?: string;
  username: string;
  namespace?: string | null;
  /**
   * The attempt commits itself: on success it writes the task's `done.json` (its result and
   * `attempt`) instead of `<attempt>/result.json`, and the orchestrator only syncs it
   * ({@link Datastore.sync}; nothing on a store with {@link Datastore.durableWrites}) before
   * the dependents start. One record per task instead of two.
   * Set by the runtime for executors with {@link Executor.commitsTasks}; a failed attempt
   * writes its result.json as always.
   */
  commit?: boolean;
  /**
   * With {@link TaskSpec.commit}, on a task's first attempt: its `task.json` (parents, foreach
   * position), with the attempt's start record in `start` (it gets `startedAt` as the attempt
   * starts) — instead of the orchestrator's task.json and `0/start.json`. The task writes it
   * once it has run a while (core/task.ts `SELF_RECORD_DELAY_MS`) or when it fails; a quick
   * success puts it in its done.json (`doc`) and writes no task.json at all.
   */
  taskDoc?: { start: { attempt: number; mode: string; executor: string; startedAt?: number }; [field: string]: unknown };
  /** With {@link TaskSpec.taskDoc}: how long the attempt runs before it writes its task.json (default 200 ms). */
  recordAfterMs?: number;
}

/** A failure of a task, as stored and as shown to users. */
export interface TaskError {
  /** Error class name (`TypeError`) or a tsflow code (`WorkerCrashed`, `Timeout`). */
  type: string;
  message: string;
  stack?: string;
}

/** How a task's output ended. Written by the task, read by the orchestrator. */
export interface TaskResult {
  ok: boolean;
  error?: TaskError;
  /** Artifact name → reference, for every artifact of the task (inherited ones included). */
  artifacts: Record<string, ArtifactRef>;
  /** The transition the step took: target step names. */
  next: string[];
  /** Foreach split: number of items. */
  foreachCount?: number;
  /** Switch: the value of the condition artifact, as a string. */
  condition?: string;
  startedAt: number;
  finishedAt: number;
  /** The task's cards (`@card`), stored as blobs like artifacts. */
  cards?: CardRef[];
}

/** A persisted artifact: its blob's content hash and what it holds. */
export interface ArtifactRef {
  /**
   * The content address: hex digest of the stored blob (or of the inline value's serialized
   * bytes), by {@link ArtifactRef.alg}.
   */
  hash: string;
  /**
   * `blake3` for blobs addressed by BLAKE3 (written where the host has a native one); absent
   * for SHA-256, which every datastore written before BLAKE3 holds. `content` uses the same.
   */
  alg?: "blake3";
  /** Size of the serialized value in bytes. */
  size: number;
  /** Set when the blob is stored gzipped: its stored size. */
  gzipped?: number;
  /** When gzipped: the hash of the uncompressed serialized bytes (`hash` is the stored blob's). */
  content?: string;
  /** Short type description for listings: `string`, `number[]`, `Uint8Array`, `Map`… */
  type: string;
  /**
   * A tiny value kept here instead of in a blob (no blob exists): the JSON text of its
   * serialized value tree, e.g. `"1764"` or `"{\"loss\":0.1}"`. Its serialized bytes are
   * `"TSF1"`, the byte length of `{"v":<inline>,"s":[]}` (u32 LE) and that header; `hash` is
   * theirs, and every read checks it (core/artifacts.ts `inlineBytes`).
   */
  inline?: string;
}

/** Callbacks an executor uses to report on a running attempt. */
export interface ExecutionContext {
  /** Aborted on Ctrl-C or when the run fails: the executor stops the attempt and resolves. */
  signal: AbortSignal;
  /** Output of the attempt, as it comes. */
  output(stream: "stdout" | "stderr", chunk: Bytes): void;
}

/** How an attempt ended, as seen by the executor. */
export interface TaskExit {
  /** The attempt ran to its end and wrote its result (success or a caught step error). */
  completed: boolean;
  /** When not completed: why (crash, timeout, cancelled). */
  error?: TaskError;
  /** The result, when the executor got it directly (saves a datastore read). */
  result?: TaskResult;
}

/**
 * Runs task attempts somewhere: local processes, containers, a cloud batch service.
 *
 * Shaped like a vitest pool: `run` resolves when the attempt is over, `signal` cancels it.
 * A third party writes one in a single file and runs the executor conformance suite.
 */
export interface Executor {
  readonly name: string;
  /**
   * Called once before the first task with everything shared by the run's tasks, so an
   * executor can warm up (start workers, upload the code package).
   */
  prepare?(run: RunContext): Promise<void>;
  /**
   * Called before the run record is written, for each executor a step of the run will use:
   * throws when this executor cannot run tasks against `datastore` (a remote executor and a
   * local disk), so the mistake costs no run.
   */
  check?(datastore: Datastore): void | Promise<void>;
  run(task: TaskSpec, context: ExecutionContext): Promise<TaskExit>;
  /**
   * Called as early as possible (before the flow is even loaded) with the expected
   * concurrency, so slow start-up work (spawning processes) overlaps with the rest; called
   * again with the flow once it is built, so workers can load it before their first task.
   */
  warm?(concurrency: number, flow?: Pick<RunContext, "flowName" | "flowFile" | "exportName" | "flowModule">): void;
  /** Stops whatever the executor started. */
  close?(): Promise<void>;
  /** Executors that need the flow's code shipped as a package (containers, batch). */
  readonly remote?: boolean;
  /**
   * How many attempts may be in flight on this executor at once, apart from `maxWorkers` (which
   * then bounds the other executors' tasks only). A cloud queue decides itself what runs when;
   * a foreach on Batch can only go out as one array job if all its items reach it together.
   */
  readonly capacity?: number;
  /**
   * Runs tasks in the orchestrator's own process (inline), so it can use a datastore that
   * cannot be re-opened elsewhere (memory). Every other executor needs {@link Datastore.location}.
   */
  readonly inProcess?: boolean;
  /**
   * The task stores its own output in the datastore (a Batch job writes its logs itself); the
   * orchestrator then only passes the output it streams to the reporter, so each attempt's log
   * has one writer.
   */
  readonly storesOwnLogs?: boolean;
  /**
   * The executor hands back the attempt's result ({@link TaskExit.result}) and may be given
   * {@link TaskSpec.commit}: its tasks write their own success markers.
   */
  readonly commitsTasks?: boolean;
}

/** What an executor knows about the run before its first task. */
export interface RunContext {
  flowName: string;
  flowFile: string;
  exportName?: string;
  /** The flow built into a plain JS module (see {@link TaskSpec.module}). */
  flowModule?: string;
  runId: string;
  datastore: Datastore;
  maxWorkers: number;
  /** Prefer a fresh process per task over warm workers (`--fresh-workers`). */
  freshWorkers?: boolean;
  logger: Logger;
}

/**
 * Where `@secrets` sources of one type come from (`aws-secrets-manager`, `env`, `file`, a plugin
 * file). Runs in the task's process when the task starts; what it returns becomes that task's
 * environment. Errors name the source but never a value.
 */
export interface SecretsProvider {
  readonly name: string;
  /** The variables of one secret: name → value. */
  get(id: string, options: { envVarName?: string; options?: Record<string, unknown> }): Promise<Record<string, string>>;
}

/** Builds a secrets provider. */
export type SecretsProviderFactory<O = unknown> = (options?: O) => SecretsProvider;

/** Builds an executor. */
export type ExecutorFactory<O = unknown> = (options: O) => Executor;
