/**
 * A join's `inputs`, kept small (#17.1): a foreach of 100,000 items hands its join 100,000
 * parents, and what the join holds per input is multiplied by that. Each parent's done.json is
 * read a few at a time and reduced at once to its artifact references, with the names shared
 * between inputs that have the same ones and equal references (an artifact passed down
 * unchanged, like the foreach list itself) held once; the rest of the record is dropped. Each
 * entry of `inputs` is a small object whose getters are shared by every entry with that
 * artifact (one pair of functions per name, not closures per input and artifact), and a value
 * is loaded only when read (then kept by its entry, as before).
 */
import { getJson, mapLimit } from "./_datastore.ts";
import { doneKey } from "./_layout.ts";
import { TsflowError } from "./errors.ts";
import type { ArtifactRef, Datastore } from "./types.ts";

/** One parent of a join, reduced to what the join reads of it. */
export interface JoinInput {
  /** The parent's pathspec, `run/step/task`. */
  source: string;
  /** Its artifacts' names, shared between inputs with the same names. */
  names: readonly string[];
  /** Their references, in the order of `names`. */
  refs: readonly ArtifactRef[];
}

/** How many done.json a join reads at once: enough to keep a remote store busy, few buffers alive. */
const READ_AHEAD = 32;

/** Reads the parents' success markers and keeps only their artifact references (see the top). */
export async function readJoinInputs(store: Datastore, flow: string, parents: readonly string[]): Promise<JoinInput[]> {
  const shapes = new Map<string, readonly string[]>();
  const refs = new Map<string, ArtifactRef>();
  const intern = (ref: ArtifactRef): ArtifactRef => {
    const seen = refs.get(ref.hash);
    if (seen && sameRef(seen, ref)) return seen;
    if (!seen) refs.set(ref.hash, ref);
    return ref;
  };
  return mapLimit(parents, READ_AHEAD, async (source) => {
    const [run, step, task] = source.split("/") as [string, string, string];
    const done = await getJson<{ artifacts?: Record<string, ArtifactRef> }>(store, doneKey(flow, run, step, task));
    if (!done) throw new TsflowError("NotFound", `parent task ${flow}/${source} has no success marker in ${store.url}`);
    const artifacts = done.artifacts ?? {};
    const own = Object.keys(artifacts);
    const key = own.join("\0");
    let names = shapes.get(key);
    if (!names) shapes.set(key, (names = own));
    return { source, names, refs: names.map((n) => intern(artifacts[n]!)) };
  });
}

function sameRef(a: ArtifactRef, b: ArtifactRef): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  const ra = a as unknown as Record<string, unknown>;
  const rb = b as unknown as Record<string, unknown>;
  return ka.every((k) => ra[k] === rb[k]);
}

const STATE = Symbol("tsflow.input");

interface EntryState {
  input: JoinInput;
  /** Values read so far, in the order of `input.names` (a second read gives the same object, as a field would). */
  values?: unknown[];
}

const UNREAD = Symbol("unread");

/** The input behind an entry of a join's `inputs` (`undefined` for anything else). */
export function joinInputOf(entry: unknown): JoinInput | undefined {
  return entry !== null && typeof entry === "object" ? (entry as { [STATE]?: EntryState })[STATE]?.input : undefined;
}

/**
 * The `inputs` a join step receives: a frozen array, one read-only entry per parent in the
 * order given, each also reachable by its step's name (static branches: `inputs.a`). Reading an
 * artifact of an entry calls `load` once; private names (`_x`) are left out.
 */
export function buildJoinInputs(inputs: readonly JoinInput[], load: (source: string, name: string, ref: ArtifactRef) => unknown): readonly object[] {
  const accessors = new Map<string, PropertyDescriptor>();
  const accessor = (name: string): PropertyDescriptor => {
    let d = accessors.get(name);
    if (!d) {
      d = {
        enumerable: true,
        configurable: false,
        get(this: { [STATE]: EntryState }) {
          const state = this[STATE];
          const { input } = state;
          const at = input.names.indexOf(name);
          const values = (state.values ??= new Array(input.names.length).fill(UNREAD));
          if (values[at] === UNREAD) values[at] = load(input.source, name, input.refs[at]!);
          return values[at];
        },
        set(this: { [STATE]: EntryState }) {
          throw new TsflowError("BadTransition", `inputs are read-only: cannot assign '${name}' of input ${this[STATE].input.source}; assign this.${name} instead`);
        },
      };
      accessors.set(name, d);
    }
    return d;
  };
  const list = inputs.map((input) => {
    // The same sequence of definitions with the same functions: entries share their hidden class.
    const entry = Object.defineProperty({}, STATE, { value: { input } satisfies EntryState });
    for (const name of input.names) if (!name.startsWith("_")) Object.defineProperty(entry, name, accessor(name));
    return entry;
  });
  inputs.forEach((input, i) => {
    const step = input.source.split("/")[1]!;
    if (!Object.hasOwn(list, step)) Object.defineProperty(list, step, { value: list[i], enumerable: false });
  });
  return Object.freeze(list);
}
