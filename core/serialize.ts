/**
 * Artifact values as bytes: everything `structuredClone` supports, with binary data kept binary.
 *
 * Why not `v8.serialize` or JSON: the core must run unchanged on Node, Bun and Deno (v8 is
 * Node-only, and its format changes between versions, which would break content hashes), and
 * JSON loses types and would inflate a 1 GB `Float32Array` into base64.
 *
 * Blob layout (every offset below is from the start of the blob):
 *
 *     "TSF1" | u32 LE header length | header (UTF-8 JSON) | pad to 8 | segment 0 | pad to 8 | segment 1 …
 *
 * No padding follows the last segment, and nothing else may follow it: trailing bytes mean the
 * blob is corrupt. Segments start 8-aligned so that, when the blob itself sits 8-aligned in
 * memory, any typed array can be a view on it without a copy.
 *
 * Header: `{"v": tree, "s": [byte length of each segment], "w": [segments holding a whole ArrayBuffer]}`
 * (`"w"` is left out when empty). The tree is JSON where JSON is enough and tagged nodes
 * `{"$": tag, …}` otherwise:
 *
 * - strings, booleans, null, finite numbers other than -0: themselves. A string of 64 Ki UTF-16
 *   units or more (and well-formed) becomes `{"$":"string","b":seg}`, its UTF-8 in a segment, so
 *   a big text costs no JSON escaping; the same string stored twice shares one segment.
 * - `{"$":"undefined"}`, `{"$":"number","v":"NaN"|"Infinity"|"-Infinity"|"-0"}`, `{"$":"bigint","v":"123"}`.
 * - dense arrays: JSON arrays. Arrays with holes: `{"$":"Array","n":length,"v":[…]}` where a run of
 *   holes is `{"$":"hole","n":count}`. A dense array of ≥ 256 numbers: `{"$":"numbers","b":seg,"n":length}`
 *   with the values as float64 in a segment (a million numbers as JSON text is slow both ways).
 * - plain objects and class instances: JSON objects of their own enumerable string-keyed props
 *   (symbol keys and prototypes are dropped, as `structuredClone` does). An object with an own
 *   `"$"` key is wrapped, `{"$":"object","v":{…}}`, so it is never taken for a tag.
 * - `{"$":"Date","v":ms|null}`, `{"$":"RegExp","s":source,"f":flags,"l"?:lastIndex}`,
 *   `{"$":"Map","v":[k0,v0,k1,v1…]}`, `{"$":"Set","v":[…]}`,
 *   `{"$":"String"|"Number"|"Boolean"|"BigInt","v":…}` for boxed primitives,
 *   `{"$":"Error","k":"TypeError","m"?:message,"s"?:stack,"n"?:name,"c"?:cause,"e"?:errors,"p"?:{extra props}}`
 *   (`k` is the nearest standard class, which is what comes back; `n` keeps a custom name).
 * - `{"$":"ArrayBuffer","b":seg,"n":byteLength}` and `{"$":"<TypedArray>"|"DataView","b":seg,"o":offset,"n":length}`
 *   (`n` counts elements, bytes for a DataView; `o` is a byte offset into the segment).
 * - `{"$":"ref","i":n}`: the n-th object met so far. Objects (everything typeof "object" except
 *   null, tagged or not) are numbered in the order a depth-first walk first meets them, by both
 *   encoder and decoder, so shared values come back shared and cycles close.
 *
 * Binary data: all views on one ArrayBuffer share one segment covering the bytes they use
 * (rounded down to 8 when there are several, so their alignment survives), which keeps
 * `a.buffer === b.buffer` true after a round trip while a small `subarray` of a huge buffer
 * still stores only its own bytes. Encoding never copies these bytes: the chunks are views on
 * the caller's memory. Decoding returns segments of 64 KiB or more as views on the input bytes
 * (when aligned), so a 1 GB tensor is not copied twice; smaller ones are copied so small values
 * do not pin the whole blob. A segment holding an ArrayBuffer value is always copied, because an
 * ArrayBuffer cannot be a view. SharedArrayBuffer comes back as ArrayBuffer (sharing cannot
 * survive storage), resizable buffers as fixed ones. Segments hold raw memory, i.e.
 * little-endian on every platform tsflow runs on.
 *
 * Deviations from `structuredClone`: non-index properties on arrays are dropped (finding them
 * needs `Object.keys` over every index, which costs more than the whole fast path); RegExp
 * `lastIndex` and custom error names are kept; Blob, streams, URL and similar host objects are
 * refused rather than silently cloned as `{}`.
 *
 * Deep values: both directions walk with an explicit stack (and `JSON.parse` is iterative in
 * V8 and JavaScriptCore), so nesting depth is bounded by memory, not by the call stack.
 */

/** Encoded artifact: write `chunks` back to back; they are the blob's bytes. Large binary segments are views on the caller's own memory (no copy). */
export interface Encoded {
  chunks: Uint8Array[];
  /** Total bytes of `chunks`. */
  size: number;
  /** {@link describeType} of the value, for listings. */
  type: string;
}

/**
 * A value that cannot be stored, or bytes that cannot be read back. `code` matches tsflow's
 * `ErrorCode` so callers can rethrow it as a `TsflowError` without parsing the message.
 */
export class SerializeError extends Error {
  override name = "SerializeError";
  constructor(
    message: string,
    readonly code: "Serialize" | "CorruptArtifact" = "Serialize",
  ) {
    super(message);
  }
}

const MAGIC = [0x54, 0x53, 0x46, 0x31]; // "TSF1"
/** Segments at least this large are decoded as views and written as their own chunk. */
const VIEW_MIN = 64 * 1024;
const BIG_STRING = 64 * 1024;
const FAST_NUMBERS = 256;

const utf8 = new TextEncoder();
// fatal: a bad byte is corruption, not U+FFFD; ignoreBOM: a string may start with U+FEFF.
const utf8dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const toStr = Object.prototype.toString;

type ViewCtor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => ArrayBufferView;
/** Element size of every view kind this runtime has (Float16Array is recent). */
const VIEWS = new Map<string, { ctor: ViewCtor; size: number }>();
for (const n of [
  "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
  "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array",
]) {
  const ctor = (globalThis as any)[n];
  if (typeof ctor === "function") VIEWS.set(n, { ctor, size: ctor.BYTES_PER_ELEMENT });
}
VIEWS.set("DataView", { ctor: DataView as unknown as ViewCtor, size: 1 });

const getter = (proto: object, key: PropertyKey) => Object.getOwnPropertyDescriptor(proto, key)!.get!;
/** %TypedArray%.prototype[@@toStringTag] is a brand check: it names the real kind and cannot be spoofed. */
const typedArrayTag = getter(Object.getPrototypeOf(Int8Array.prototype), Symbol.toStringTag) as (this: unknown) => string | undefined;

/**
 * Brand checks (they throw on anything else), so that a class with a fake `Symbol.toStringTag`
 * is not taken for a Map, and a Map from another realm still is.
 */
const BRANDS = new Map<string, (this: unknown) => unknown>([
  ["Date", Date.prototype.getTime],
  ["RegExp", getter(RegExp.prototype, "source")],
  ["Map", getter(Map.prototype, "size")],
  ["Set", getter(Set.prototype, "size")],
  ["ArrayBuffer", getter(ArrayBuffer.prototype, "byteLength")],
  ["String", String.prototype.valueOf],
  ["Number", Number.prototype.valueOf],
  ["Boolean", Boolean.prototype.valueOf],
  ["BigInt", BigInt.prototype.valueOf],
  ["Symbol", Symbol.prototype.valueOf],
]);
if (typeof SharedArrayBuffer === "function") BRANDS.set("SharedArrayBuffer", getter(SharedArrayBuffer.prototype, "byteLength"));

/** Objects that would silently turn into `{}` or lose their meaning, with what to do instead. */
const REFUSED = new Map<string, string>([
  ["Promise", " (await it before storing it)"],
  ["Symbol", ""],
  ["WeakMap", " (use a Map)"],
  ["WeakSet", " (use a Set)"],
  ["WeakRef", ""],
  ["FinalizationRegistry", ""],
  ["Generator", " (collect it into an array first)"],
  ["AsyncGenerator", " (collect it into an array first)"],
  ["Blob", " (store the bytes of await blob.arrayBuffer())"],
  ["File", " (store the bytes of await file.arrayBuffer())"],
  ["ReadableStream", " (read it into a value first)"],
  ["WritableStream", ""],
  ["TransformStream", ""],
  ["Request", ""],
  ["Response", " (store its body instead)"],
  ["Headers", " (store Object.fromEntries(headers))"],
  ["FormData", ""],
  ["URL", " (store url.href)"],
  ["URLSearchParams", " (store params.toString())"],
  ["AbortController", ""],
  ["AbortSignal", ""],
  ["MessagePort", ""],
  ["WebSocket", ""],
  ["Worker", ""],
  ["CryptoKey", ""],
  ["Module", ""],
]);

const ERRORS = new Map<string, ErrorConstructor>();
for (const n of ["Error", "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError", "AggregateError"]) {
  const ctor = (globalThis as any)[n];
  if (typeof ctor === "function") ERRORS.set(n, ctor);
}

function holds(brand: (this: unknown) => unknown, v: object): boolean {
  try {
    brand.call(v);
    return true;
  } catch {
    return false;
  }
}

/** The kind of an object: a structured-clone type name, a refused type name, or "object". */
function classify(v: object): string {
  if (Array.isArray(v)) return "Array";
  if (ArrayBuffer.isView(v)) return typedArrayTag.call(v) ?? "DataView";
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) return "object";
  const tag = toStr.call(v).slice(8, -1);
  const brand = BRANDS.get(tag);
  if (brand) return holds(brand, v) ? tag : "object";
  if (tag === "Error" || v instanceof Error) return "Error";
  if (REFUSED.has(tag) || tag.endsWith("Iterator")) return tag;
  return "object";
}

/** The nearest standard error class, which is the class the error comes back as. */
function errorKind(e: object): string {
  for (let p = Object.getPrototypeOf(e); p !== null; p = Object.getPrototypeOf(p)) {
    for (const [n, ctor] of ERRORS) if (ctor.prototype === p) return n;
  }
  const n = (e as { name?: unknown }).name; // an error from another realm
  return typeof n === "string" && ERRORS.has(n) ? n : "Error";
}

/** Short type for listings: "string", "Array", "object", "Map", "Float32Array", "TypeError"… */
export function describeType(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  const kind = classify(value);
  if (kind === "Error") return errorKind(value);
  return kind === "SharedArrayBuffer" ? "ArrayBuffer" : kind;
}

function isWellFormed(s: string): boolean {
  const native = (s as { isWellFormed?: () => boolean }).isWellFormed;
  return typeof native === "function" ? native.call(s) : !/\p{Surrogate}/u.test(s);
}

function numberTag(n: number): string | null {
  if (Number.isFinite(n)) return n === 0 && 1 / n < 0 ? "-0" : null;
  return String(n); // NaN, Infinity, -Infinity
}

const IDENT = /^[A-Za-z_$][\w$]*$/;
const keySeg = (k: string) => (IDENT.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`);

// --- encoding ---------------------------------------------------------------------------

const E_ARRAY = 0;
const E_HOLEY = 1;
const E_OBJECT = 2;
const E_MAP = 3;
const E_SET = 4;
const E_FIELDS = 5;

interface EncFrame {
  kind: number;
  src: any;
  keys: string[] | null;
  /** E_FIELDS: JSON text before each child, and each child's path segment. */
  prefixes: string[] | null;
  segs: string[] | null;
  i: number;
  n: number;
  /** Index of the child being visited, for error paths. */
  cur: number;
  close: string;
}

/**
 * The Float64 segment of a long array of numbers, not built yet: {@link encodeForHash} feeds it a
 * block at a time through one reusable buffer.
 */
interface LazyNumbers {
  numbers: readonly number[];
  byteLength: number;
}

interface Slot {
  index: number;
  buf: ArrayBufferLike | null;
  /** Bytes we produced ourselves (numbers, big strings). */
  data: Uint8Array | LazyNumbers | null;
  lo: number;
  hi: number;
  count: number;
  whole: boolean;
  /** Pairs (index in `out` of an offset placeholder, absolute byte offset). */
  fix: number[];
}

function frame(kind: number, src: any, n: number, close: string, keys: string[] | null = null): EncFrame {
  return { kind, src, keys, prefixes: null, segs: null, i: 0, n, cur: -1, close };
}

class Encoder {
  readonly out: string[] = ['{"v":'];
  readonly stack: EncFrame[] = [];
  readonly seen = new Map<object, number>();
  readonly slots: Slot[] = [];
  readonly bufSlots = new Map<ArrayBufferLike, Slot>();
  readonly strSlots = new Map<string, Slot>();
  readonly quoted = new Map<string, string>();

  /** `lazy`: arrays of numbers become {@link LazyNumbers} segments (for hashing only). */
  constructor(
    readonly name: string,
    readonly lazy = false,
  ) {}

  run(value: unknown): void {
    const { out, stack } = this;
    try {
      this.visit(value);
      while (stack.length > 0) {
        const f = stack[stack.length - 1]!;
        if (f.i >= f.n) {
          out.push(f.close);
          stack.pop();
          continue;
        }
        const i = f.i++;
        f.cur = i;
        switch (f.kind) {
          case E_ARRAY:
          case E_MAP:
          case E_SET:
            if (i > 0) out.push(",");
            this.visit(f.src[i]);
            break;
          case E_HOLEY:
            if (i > 0) out.push(",");
            if (i in f.src) this.visit(f.src[i]);
            else {
              let j = i + 1;
              while (j < f.n && !(j in f.src)) j++;
              out.push(`{"$":"hole","n":${j - i}}`);
              f.i = j;
            }
            break;
          case E_OBJECT: {
            const k = f.keys![i]!;
            // Records repeat their keys: quoting each distinct key once is most of the encoder's time.
            let q = this.quoted.get(k);
            if (q === undefined) this.quoted.set(k, (q = `${JSON.stringify(k)}:`));
            out.push(i > 0 ? `,${q}` : q);
            this.visit(f.src[k]);
            break;
          }
          default:
            out.push(f.prefixes![i]!);
            this.visit(f.src[i]);
        }
      }
    } catch (e) {
      if (e instanceof SerializeError) throw e;
      // A throwing getter or proxy trap: say where, the way structuredClone would propagate it.
      throw this.fail(`reading ${this.path()} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    }
  }

  fail(what: string): SerializeError {
    return new SerializeError(`artifact '${this.name}' cannot be serialized: ${what}`);
  }

  /** Path of the value being visited, built only on failure (eager paths would be O(depth²)). */
  path(): string {
    let p = this.name;
    for (const f of this.stack) {
      const i = f.cur;
      switch (f.kind) {
        case E_ARRAY:
        case E_HOLEY:
          p += `[${i}]`;
          break;
        case E_OBJECT:
          p += keySeg(f.keys![i]!);
          break;
        case E_MAP: {
          const j = i >> 1;
          const k = f.src[i - 1];
          if (i % 2 === 0) p += `<map key ${j}>`;
          else if (typeof k === "string") p += `.get(${JSON.stringify(k)})`;
          else if (typeof k === "number" || typeof k === "boolean" || k == null) p += `.get(${String(k)})`;
          else if (typeof k === "bigint") p += `.get(${k}n)`;
          else p += `<map value ${j}>`;
          break;
        }
        case E_SET:
          p += `<set value ${i}>`;
          break;
        default:
          p += f.segs![i]!;
      }
    }
    return p;
  }

  visit(v: unknown): void {
    const out = this.out;
    switch (typeof v) {
      case "string":
        if (v.length >= BIG_STRING && isWellFormed(v)) {
          let slot = this.strSlots.get(v);
          if (!slot) this.strSlots.set(v, (slot = this.ownSlot(utf8.encode(v))));
          out.push(`{"$":"string","b":${slot.index}}`);
        } else out.push(JSON.stringify(v));
        return;
      case "number": {
        const tag = numberTag(v);
        out.push(tag === null ? String(v) : `{"$":"number","v":"${tag}"}`);
        return;
      }
      case "boolean":
        out.push(v ? "true" : "false");
        return;
      case "undefined":
        out.push('{"$":"undefined"}');
        return;
      case "bigint":
        out.push(`{"$":"bigint","v":"${v}"}`);
        return;
      case "symbol":
        throw this.fail(`${this.path()} is a symbol`);
      case "function":
        throw this.fail(`${this.path()} is a function`);
    }
    if (v === null) {
      out.push("null");
      return;
    }
    const obj = v as object;
    const ref = this.seen.get(obj);
    if (ref !== undefined) {
      out.push(`{"$":"ref","i":${ref}}`);
      return;
    }
    const kind = classify(obj);
    this.seen.set(obj, this.seen.size);
    const o = obj as any;
    switch (kind) {
      case "object": {
        const keys = Object.keys(obj);
        const wrap = Object.hasOwn(obj, "$");
        if (keys.length === 0) out.push(wrap ? '{"$":"object","v":{}}' : "{}");
        else {
          out.push(wrap ? '{"$":"object","v":{' : "{");
          this.stack.push(frame(E_OBJECT, obj, keys.length, wrap ? "}}" : "}", keys));
        }
        return;
      }
      case "Array":
        this.array(o);
        return;
      case "Date": {
        const t = Date.prototype.getTime.call(o);
        out.push(`{"$":"Date","v":${Number.isNaN(t) ? "null" : t}}`);
        return;
      }
      case "RegExp": {
        const last = o.lastIndex;
        const l = typeof last === "number" && last !== 0 && Number.isFinite(last) ? `,"l":${last}` : "";
        out.push(`{"$":"RegExp","s":${JSON.stringify(o.source)},"f":${JSON.stringify(o.flags)}${l}}`);
        return;
      }
      case "Map": {
        const flat: unknown[] = [];
        for (const [k, x] of Map.prototype.entries.call(o)) flat.push(k, x);
        out.push('{"$":"Map","v":[');
        this.stack.push(frame(E_MAP, flat, flat.length, "]}"));
        return;
      }
      case "Set": {
        const items = Array.from(Set.prototype.values.call(o));
        out.push('{"$":"Set","v":[');
        this.stack.push(frame(E_SET, items, items.length, "]}"));
        return;
      }
      case "Error":
        this.error(o);
        return;
      case "String":
        out.push(`{"$":"String","v":${JSON.stringify(String.prototype.valueOf.call(o))}}`);
        return;
      case "Number": {
        const n = Number.prototype.valueOf.call(o);
        const tag = numberTag(n);
        out.push(`{"$":"Number","v":${tag === null ? n : `"${tag}"`}}`);
        return;
      }
      case "Boolean":
        out.push(`{"$":"Boolean","v":${Boolean.prototype.valueOf.call(o)}}`);
        return;
      case "BigInt":
        out.push(`{"$":"BigInt","v":"${BigInt.prototype.valueOf.call(o)}"}`);
        return;
      case "ArrayBuffer":
      case "SharedArrayBuffer": {
        const len: number = o.byteLength;
        const slot = this.bufSlot(o, 0, len, true);
        out.push(`{"$":"ArrayBuffer","b":${slot.index},"n":${len}}`);
        return;
      }
    }
    const view = VIEWS.get(kind);
    if (view) {
      const ta = o as ArrayBufferView;
      const slot = this.bufSlot(ta.buffer, ta.byteOffset, ta.byteLength, false);
      out.push(`{"$":"${kind}","b":${slot.index},"o":`);
      slot.fix.push(out.length, ta.byteOffset);
      out.push("", `,"n":${kind === "DataView" ? ta.byteLength : o.length}}`);
      return;
    }
    const article = /^[AEIO]/.test(kind) ? "an" : "a";
    throw this.fail(`${this.path()} is ${article} ${kind}${REFUSED.get(kind) ?? " (collect it into an array first)"}`);
  }

  array(a: unknown[]): void {
    const n = a.length;
    if (n === 0) {
      this.out.push("[]");
      return;
    }
    if (n >= FAST_NUMBERS && typeof a[0] === "number") {
      // Lazy: taken for numbers on its first element; encodeForHash's feed checks the others as
      // it encodes them (one pass, not two) and gives up if one is not.
      const f = this.lazy ? undefined : new Float64Array(n);
      if (!f || copyNumbers(a, 0, n, f, 0) === n) {
        const slot = this.ownSlot(f ? new Uint8Array(f.buffer) : { numbers: a as number[], byteLength: n * 8 });
        this.out.push(`{"$":"numbers","b":${slot.index},"n":${n}}`);
        return;
      }
    }
    let holey = false;
    for (let i = 0; i < n; i++) {
      if (a[i] === undefined && !(i in a)) {
        holey = true;
        break;
      }
    }
    if (holey) {
      this.out.push(`{"$":"Array","n":${n},"v":[`);
      this.stack.push(frame(E_HOLEY, a, n, "]}"));
    } else {
      this.out.push("[");
      this.stack.push(frame(E_ARRAY, a, n, "]"));
    }
  }

  error(e: any): void {
    const kind = errorKind(e);
    let head = `{"$":"Error","k":"${kind}"`;
    if (Object.hasOwn(e, "message")) head += `,"m":${JSON.stringify(String(e.message))}`;
    if (typeof e.stack === "string") head += `,"s":${JSON.stringify(e.stack)}`;
    const name = e.name;
    const nameIsProp = Object.prototype.propertyIsEnumerable.call(e, "name");
    if (!nameIsProp && typeof name === "string" && name !== kind) head += `,"n":${JSON.stringify(name)}`;
    const f = frame(E_FIELDS, [], 0, "}");
    f.prefixes = [];
    f.segs = [];
    const add = (prefix: string, seg: string, value: unknown) => {
      f.prefixes!.push(prefix);
      f.segs!.push(seg);
      f.src.push(value);
    };
    if (Object.hasOwn(e, "cause")) add(',"c":', ".cause", e.cause);
    if (kind === "AggregateError" && Array.isArray(e.errors)) add(',"e":', ".errors", e.errors);
    const extras = Object.keys(e).filter((k) => k !== "message" && k !== "stack" && k !== "cause" && k !== "errors");
    for (const [j, k] of extras.entries()) add(`${j === 0 ? ',"p":{' : ","}${JSON.stringify(k)}:`, keySeg(k), e[k]);
    if (extras.length > 0) f.close = "}}";
    this.out.push(head);
    f.n = f.src.length;
    if (f.n === 0) this.out.push(f.close);
    else this.stack.push(f);
  }

  ownSlot(data: Uint8Array | LazyNumbers): Slot {
    const slot: Slot = { index: this.slots.length, buf: null, data, lo: 0, hi: data.byteLength, count: 1, whole: false, fix: [] };
    this.slots.push(slot);
    return slot;
  }

  bufSlot(buf: ArrayBufferLike, off: number, len: number, whole: boolean): Slot {
    let slot = this.bufSlots.get(buf);
    if (!slot) {
      slot = { index: this.slots.length, buf, data: null, lo: off, hi: off + len, count: 0, whole: false, fix: [] };
      this.slots.push(slot);
      this.bufSlots.set(buf, slot);
    }
    slot.lo = Math.min(slot.lo, off);
    slot.hi = Math.max(slot.hi, off + len);
    slot.count++;
    if (whole) slot.whole = true;
    return slot;
  }

  /** Fixes each view's offset now that its segment's extent is known, and closes the header. */
  finish(): { header: string; segments: Array<Uint8Array | LazyNumbers> } {
    const { out } = this;
    const segments: Array<Uint8Array | LazyNumbers> = [];
    const whole: number[] = [];
    for (const s of this.slots) {
      if (s.buf) {
        if (s.count > 1) s.lo -= s.lo % 8;
        for (let k = 0; k < s.fix.length; k += 2) out[s.fix[k]!] = String(s.fix[k + 1]! - s.lo);
        s.data = new Uint8Array(s.buf, s.lo, s.hi - s.lo);
      }
      if (s.whole) whole.push(s.index);
      segments.push(s.data!);
    }
    out.push(`,"s":[${segments.map((s) => s.byteLength).join(",")}]`);
    if (whole.length > 0) out.push(`,"w":[${whole.join(",")}]`);
    out.push("}");
    return { header: out.join(""), segments };
  }
}

/** The header (with its 8-byte prefix) and segments of `value`, as {@link serialize} lays them out. */
function encodeParts(value: unknown, name: string, lazy: boolean): { head: Uint8Array; segments: Array<Uint8Array | LazyNumbers> } {
  const enc = new Encoder(name, lazy);
  enc.run(value);
  let head: Uint8Array;
  let segments: Array<Uint8Array | LazyNumbers>;
  try {
    const done = enc.finish();
    head = utf8.encode(done.header);
    segments = done.segments;
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw enc.fail(`it is too large to encode (${e.message}); split it into several artifacts`);
  }
  if (head.byteLength > 0xffffffff) throw enc.fail("its header exceeds 4 GiB; split it into several artifacts");
  return { head, segments };
}

function prefixOf(head: Uint8Array): Uint8Array {
  const prefix = new Uint8Array(8);
  prefix.set(MAGIC);
  new DataView(prefix.buffer).setUint32(4, head.byteLength, true);
  return prefix;
}

/**
 * Encodes `value` (the artifact called `name`, which error messages use as the root of paths).
 * Throws {@link SerializeError} naming the path of the first value that cannot be stored.
 */
export function serialize(value: unknown, name: string): Encoded {
  const { head, segments } = encodeParts(value, name, false);

  // Small pieces are joined into one chunk (fewer writes and hash updates); big ones pass as is.
  const chunks: Uint8Array[] = [];
  let pending: Uint8Array[] = [];
  let pendingSize = 0;
  const flush = () => {
    if (pending.length === 1) chunks.push(pending[0]!);
    else if (pending.length > 1) {
      const joined = new Uint8Array(pendingSize);
      let at = 0;
      for (const p of pending) {
        joined.set(p, at);
        at += p.byteLength;
      }
      chunks.push(joined);
    }
    pending = [];
    pendingSize = 0;
  };
  const add = (p: Uint8Array) => {
    if (p.byteLength >= VIEW_MIN) {
      flush();
      chunks.push(p);
    } else {
      pending.push(p);
      pendingSize += p.byteLength;
    }
  };
  add(prefixOf(head));
  add(head);
  let size = 8 + head.byteLength;
  for (const seg of segments as Uint8Array[]) {
    const pad = (8 - (size % 8)) % 8;
    if (pad > 0) add(new Uint8Array(pad));
    if (seg.byteLength > 0) add(seg);
    size += pad + seg.byteLength;
  }
  flush();
  return { chunks, size, type: describeType(value) };
}

/**
 * Copies `count` elements of `from` (from `at`) into `to` (from `into`) while they are numbers;
 * returns how many it copied. Its own small function, not a loop inside its callers: V8
 * optimizes it after a few calls and keeps it so, where the same loop inlined in a big function
 * ran interpreted, then was recompiled, on each of a task's first passes (a fresh worker hashes
 * a long array several times: 7-9 ms a pass instead of 2-5 for a million numbers).
 */
function copyNumbers(from: readonly unknown[], at: number, count: number, to: Float64Array, into: number): number {
  for (let j = 0; j < count; j++) {
    const x = from[at + j];
    if (typeof x !== "number") return j;
    to[into + j] = x;
  }
  return count;
}

/** Numbers encoded per block for hashing: 64 KiB stays in cache, and is never allocated again. */
const SCRATCH = new Float64Array(8192);
const SCRATCH_BYTES = new Uint8Array(SCRATCH.buffer);
const PADDING = new Uint8Array(8);

/**
 * {@link serialize}'s bytes, handed to `feed` in order instead of returned, with its size (known
 * before the first byte, so the caller can choose a hash by it). A long array of numbers is
 * encoded a block at a time into one reused buffer rather than into a new Float64Array of its
 * own: telling whether a value changed hashes it at least twice per step that reads it (when
 * handed over, and after the step), and a fresh 8 MB buffer per million numbers cost more in
 * page faults than the hashing. Each block is valid only during its `feed` call. `feed` answers
 * false, having fed only part, when a long array that starts with a number turns out to hold
 * something else (serialize encodes it element by element): hash serialize's bytes instead.
 */
export function encodeForHash(value: unknown, name: string): { size: number; type: string; feed(update: (bytes: Uint8Array) => void): boolean } {
  const { head, segments } = encodeParts(value, name, true);
  let size = 8 + head.byteLength;
  for (const seg of segments) size += (8 - (size % 8)) % 8 + seg.byteLength;
  return {
    size,
    type: describeType(value),
    feed(update) {
      update(prefixOf(head));
      update(head);
      let at = 8 + head.byteLength;
      for (const seg of segments) {
        const pad = (8 - (at % 8)) % 8;
        if (pad > 0) update(PADDING.subarray(0, pad));
        at += pad + seg.byteLength;
        if (seg instanceof Uint8Array) {
          if (seg.byteLength > 0) update(seg);
          continue;
        }
        const { numbers } = seg;
        const n = seg.byteLength / 8;
        for (let i = 0; i < n; i += SCRATCH.length) {
          const m = Math.min(SCRATCH.length, n - i);
          if (copyNumbers(numbers, i, m, SCRATCH, 0) < m) return false;
          update(SCRATCH_BYTES.subarray(0, m * 8));
        }
      }
      return true;
    },
  };
}

// --- decoding ---------------------------------------------------------------------------

const D_ARRAY = 0;
const D_OBJECT = 1;
const D_HOLEY = 2;
const D_MAP = 3;
const D_SET = 4;
const D_FIELDS = 5;

interface DecFrame {
  kind: number;
  /** The JSON container whose children are decoded (for plain arrays/objects, also the result). */
  src: any;
  target: any;
  keys: string[] | null;
  sets: ((v: unknown) => void)[] | null;
  i: number;
  n: number;
  /** D_HOLEY: next index in `target`. D_MAP: pending key. */
  at: number;
  key: unknown;
}

/** Thrown inside the decoder; `deserialize` turns it into a SerializeError naming the artifact. */
class Corrupt extends Error {}

const bad = (why: string): never => {
  throw new Corrupt(why);
};

function setProp(target: any, k: string, v: unknown): void {
  // Assigning "__proto__" would change the prototype instead of creating the property.
  if (k === "__proto__") Object.defineProperty(target, k, { value: v, writable: true, enumerable: true, configurable: true });
  else target[k] = v;
}

function hidden(target: object, k: string, value: unknown): void {
  Object.defineProperty(target, k, { value, writable: true, enumerable: false, configurable: true });
}

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;

class Decoder {
  readonly objs: unknown[] = [];
  readonly stack: DecFrame[] = [];
  readonly backings = new Map<number, { buffer: ArrayBufferLike; off: number }>();
  readonly texts = new Map<number, string>();

  constructor(
    readonly bytes: Uint8Array,
    readonly starts: number[],
    readonly lens: number[],
    readonly whole: Set<number>,
  ) {}

  run(tree: unknown): unknown {
    const { stack } = this;
    const root = this.dec(tree);
    while (stack.length > 0) {
      const f = stack[stack.length - 1]!;
      if (f.i >= f.n) {
        if (f.kind === D_HOLEY && f.at !== f.target.length) bad(`array of length ${f.target.length} has ${f.at} slots`);
        stack.pop();
        continue;
      }
      const i = f.i++;
      switch (f.kind) {
        case D_ARRAY: {
          const x = f.src[i];
          if (typeof x === "object" && x !== null) f.src[i] = this.dec(x);
          break;
        }
        case D_OBJECT: {
          const k = f.keys![i]!;
          const x = f.src[k];
          if (typeof x === "object" && x !== null) f.src[k] = this.dec(x);
          break;
        }
        case D_HOLEY: {
          const x = f.src[i];
          if (typeof x === "object" && x !== null && !Array.isArray(x) && x.$ === "hole") {
            if (!isCount(x.n) || x.n === 0) bad("bad hole count");
            f.at += x.n;
          } else f.target[f.at++] = this.dec(x);
          break;
        }
        case D_MAP: {
          const x = this.dec(f.src[i]);
          if (i % 2 === 0) f.key = x;
          else f.target.set(f.key, x);
          break;
        }
        case D_SET:
          f.target.add(this.dec(f.src[i]));
          break;
        default:
          f.sets![i]!(this.dec(f.src[i]));
      }
    }
    return root;
  }

  push(kind: number, src: any, target: any, n: number, keys: string[] | null = null): void {
    if (n > 0) this.stack.push({ kind, src, target, keys, sets: null, i: 0, n, at: 0, key: undefined });
  }

  /** Decodes one node; containers are created (and numbered) now and filled by the main loop. */
  dec(x: any): unknown {
    if (typeof x !== "object" || x === null) return x;
    const { objs } = this;
    if (Array.isArray(x)) {
      objs.push(x);
      this.push(D_ARRAY, x, x, x.length);
      return x;
    }
    const tag = x.$;
    if (tag === undefined) {
      objs.push(x);
      const keys = Object.keys(x);
      this.push(D_OBJECT, x, x, keys.length, keys);
      return x;
    }
    switch (tag) {
      case "ref": {
        const i = x.i;
        if (!isCount(i) || i >= objs.length) bad(`reference to object ${i} which is not defined yet`);
        return objs[i];
      }
      case "undefined":
        return undefined;
      case "number":
        return this.num(x.v);
      case "bigint":
        if (typeof x.v !== "string") bad("bigint without digits");
        return BigInt(x.v);
      case "string":
        return this.text(x.b);
      case "object": {
        const v = x.v;
        if (typeof v !== "object" || v === null || Array.isArray(v)) bad("wrapped object is not an object");
        objs.push(v);
        const keys = Object.keys(v);
        this.push(D_OBJECT, v, v, keys.length, keys);
        return v;
      }
      case "Array": {
        if (!isCount(x.n) || x.n > 0xffffffff || !Array.isArray(x.v)) bad("bad sparse array");
        const a = new Array(x.n);
        objs.push(a);
        this.push(D_HOLEY, x.v, a, x.v.length);
        return a;
      }
      case "numbers":
        return this.numbers(x);
      case "Date": {
        const d = new Date(x.v === null ? Number.NaN : this.num(x.v));
        objs.push(d);
        return d;
      }
      case "RegExp": {
        if (typeof x.s !== "string" || typeof x.f !== "string") bad("bad RegExp");
        const r = new RegExp(x.s, x.f);
        if (x.l !== undefined) r.lastIndex = this.num(x.l);
        objs.push(r);
        return r;
      }
      case "Map":
      case "Set": {
        if (!Array.isArray(x.v) || (tag === "Map" && x.v.length % 2 !== 0)) bad(`bad ${tag}`);
        const c = tag === "Map" ? new Map() : new Set();
        objs.push(c);
        this.push(tag === "Map" ? D_MAP : D_SET, x.v, c, x.v.length);
        return c;
      }
      case "Error":
        return this.error(x);
      case "String":
      case "Number":
      case "Boolean":
      case "BigInt": {
        const v = tag === "String" ? String(x.v) : tag === "Number" ? this.num(x.v) : tag === "Boolean" ? x.v === true : BigInt(x.v);
        const boxed = Object(v);
        objs.push(boxed);
        return boxed;
      }
      case "ArrayBuffer": {
        if (!this.whole.has(x.b)) bad(`ArrayBuffer in segment ${x.b} not marked whole`);
        const { buffer } = this.backing(x.b);
        if (buffer.byteLength !== x.n) bad(`ArrayBuffer of ${x.n} bytes in a segment of ${buffer.byteLength}`);
        objs.push(buffer);
        return buffer;
      }
    }
    const view = typeof tag === "string" ? VIEWS.get(tag) : undefined;
    if (!view) {
      if (typeof tag === "string" && tag.endsWith("Array")) bad(`${tag} is not available in this runtime`);
      bad(`unknown tag ${JSON.stringify(tag)}`);
    }
    const { ctor, size } = view!;
    const { buffer, off } = this.backing(x.b);
    if (!isCount(x.o) || !isCount(x.n) || x.o + x.n * size > this.lens[x.b]!) bad(`${tag} outside its segment`);
    const v = new ctor(buffer, off + x.o, x.n);
    objs.push(v);
    return v;
  }

  num(v: unknown): number {
    if (typeof v === "number") return v;
    if (v === "NaN" || v === "Infinity" || v === "-Infinity" || v === "-0") return Number(v);
    return bad(`bad number ${JSON.stringify(v)}`);
  }

  segment(b: unknown): number {
    if (!isCount(b) || b >= this.starts.length) bad(`no segment ${b}`);
    return b as number;
  }

  /** Copies a segment into its own exact buffer (not `slice`: Node's Buffer#slice is a view). */
  copy(b: number): ArrayBuffer {
    const len = this.lens[b]!;
    const c = new Uint8Array(len);
    c.set(new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + this.starts[b]!, len));
    return c.buffer;
  }

  backing(b: unknown): { buffer: ArrayBufferLike; off: number } {
    const i = this.segment(b);
    let k = this.backings.get(i);
    if (!k) {
      const abs = this.bytes.byteOffset + this.starts[i]!;
      k =
        !this.whole.has(i) && this.lens[i]! >= VIEW_MIN && abs % 8 === 0
          ? { buffer: this.bytes.buffer, off: abs }
          : { buffer: this.copy(i), off: 0 };
      this.backings.set(i, k);
    }
    return k;
  }

  text(b: unknown): string {
    const i = this.segment(b);
    let s = this.texts.get(i);
    if (s === undefined) {
      s = utf8dec.decode(new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + this.starts[i]!, this.lens[i]!));
      this.texts.set(i, s);
    }
    return s;
  }

  numbers(x: any): number[] {
    const i = this.segment(x.b);
    const n = x.n;
    if (!isCount(n) || n * 8 !== this.lens[i]) bad("number array does not match its segment");
    const abs = this.bytes.byteOffset + this.starts[i]!;
    const f = abs % 8 === 0 ? new Float64Array(this.bytes.buffer, abs, n) : new Float64Array(this.copy(i));
    const a: number[] = [];
    for (let j = 0; j < n; j++) a.push(f[j]!);
    this.objs.push(a);
    return a;
  }

  error(x: any): Error {
    const Ctor = ERRORS.get(x.k) ?? Error;
    const e: any = Ctor === (globalThis as any).AggregateError ? new (Ctor as any)([]) : new Ctor();
    if (x.m !== undefined) hidden(e, "message", String(x.m));
    if (typeof x.s === "string") hidden(e, "stack", x.s);
    else delete e.stack;
    if (typeof x.n === "string") hidden(e, "name", x.n);
    this.objs.push(e);
    const src: unknown[] = [];
    const sets: ((v: unknown) => void)[] = [];
    if (Object.hasOwn(x, "c")) {
      src.push(x.c);
      sets.push((v) => hidden(e, "cause", v));
    }
    if (Object.hasOwn(x, "e")) {
      src.push(x.e);
      sets.push((v) => hidden(e, "errors", v));
    }
    if (x.p !== undefined) {
      if (typeof x.p !== "object" || x.p === null) bad("bad error properties");
      for (const k of Object.keys(x.p)) {
        src.push(x.p[k]);
        sets.push((v) => setProp(e, k, v));
      }
    }
    if (src.length > 0) this.stack.push({ kind: D_FIELDS, src, target: e, keys: null, sets, i: 0, n: src.length, at: 0, key: undefined });
    return e;
  }
}

/**
 * Decodes bytes made by {@link serialize}. Large binary values may be views on `bytes`, so the
 * caller must not reuse that memory afterwards. Throws {@link SerializeError} (code
 * "CorruptArtifact") naming the artifact `name` when the bytes are not a valid blob.
 */
export function deserialize(bytes: Uint8Array, name?: string): unknown {
  const corrupt = (why: string) =>
    new SerializeError(`${name === undefined ? "serialized value" : `artifact '${name}'`} is corrupt: ${why}`, "CorruptArtifact");
  if (!(bytes instanceof Uint8Array)) throw corrupt(`expected a Uint8Array, got ${describeType(bytes)}`);
  const total = bytes.byteLength;
  for (let i = 0; i < Math.min(4, total); i++) if (bytes[i] !== MAGIC[i]) throw corrupt('it does not start with "TSF1"');
  if (total < 8) throw corrupt(`it is ${total} bytes long, too short for a header`);
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, total).getUint32(4, true);
  if (8 + headerLen > total) throw corrupt(`it is truncated (header needs ${8 + headerLen} bytes, got ${total})`);
  let header: any;
  try {
    header = JSON.parse(utf8dec.decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw corrupt(`its header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || !Object.hasOwn(header, "v") || !Array.isArray(header.s) || !header.s.every(isCount)) {
    throw corrupt("its header lacks the value or the segment table");
  }
  const lens: number[] = header.s;
  const starts: number[] = [];
  let end = 8 + headerLen;
  for (const len of lens) {
    const start = end + ((8 - (end % 8)) % 8);
    starts.push(start);
    end = start + len;
  }
  if (end > total) throw corrupt(`it is truncated (segments need ${end} bytes, got ${total})`);
  if (end < total) throw corrupt(`it has ${total - end} unexpected trailing bytes`);
  const whole = header.w === undefined ? [] : header.w;
  if (!Array.isArray(whole) || !whole.every((i) => isCount(i) && i < lens.length)) throw corrupt("its header has a bad whole-buffer list");
  try {
    return new Decoder(bytes, starts, lens, new Set(whole)).run(header.v);
  } catch (e) {
    if (e instanceof SerializeError) throw e;
    throw corrupt((e as Error).message);
  }
}
