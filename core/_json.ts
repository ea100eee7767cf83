/**
 * Any stored value as JSON text, with the work bounded: a loaded artifact is untrusted input
 * for whoever displays it. A 1 KB blob can hold 40 levels of `{ l: a, r: a }` (2^40 nodes when
 * walked as a tree), a `new Array(1e9)` with holes, or 100,000 references to one 1 MB string;
 * `JSON.stringify` would walk, print or recurse through all of it. Here every object is printed
 * once (a second meeting prints where it was first seen), the walk is iterative (any depth),
 * and a budget of values and characters ends it: with an error, or, for previews, with `…`.
 *
 * Conventions for values JSON lacks: bigint `"12n"`, NaN/±Infinity as strings, undefined as
 * null, Date as ISO text, Map as an object (string or number keys) or a list of `[key, value]`,
 * Set as a list, bytes as `{ type, byteLength, base64 }` (the first MiB), other typed arrays as
 * lists of numbers, Error as `{ name, message }`.
 */

export interface JsonTextOptions {
  /** Spaces per level; 0 for one line. */
  indent?: number;
  /** Most values (primitives and containers) written. Default 1,000,000. */
  maxValues?: number;
  /** Most characters written. Default 64 Mi. */
  maxChars?: number;
  /** On reaching a limit, end the text with `…` instead of throwing {@link JsonLimitError}. */
  truncate?: boolean;
}

/** A value too big to print within the limits. */
export class JsonLimitError extends Error {
  override name = "JsonLimitError";
  constructor(
    readonly limit: "values" | "characters",
    readonly max: number,
  ) {
    super(`more than ${max.toLocaleString("en-US")} ${limit}`);
  }
}

const BYTES_SHOWN = 1 << 20;

type Entry = [key: string | number | undefined, value: unknown];

interface Frame {
  close: "]" | "}";
  next: () => Entry | undefined;
  path: string | undefined;
  obj: object;
  count: number;
}

export function jsonText(value: unknown, options: JsonTextOptions = {}): string {
  const indent = options.indent ?? 0;
  const maxValues = options.maxValues ?? 1_000_000;
  const maxChars = options.maxChars ?? 64 << 20;
  const out: string[] = [];
  let chars = 0;
  let values = 0;
  const firstSeen = new Map<object, string>();
  const open = new Set<object>();
  const stack: Frame[] = [];
  class Stop extends Error {}

  const write = (s: string) => {
    if (chars + s.length > maxChars) {
      if (!options.truncate) throw new JsonLimitError("characters", maxChars);
      out.push(s.slice(0, Math.max(0, maxChars - chars)));
      throw new Stop();
    }
    chars += s.length;
    out.push(s);
  };
  // Indentation stops growing at 32 levels: 5,000 nested levels would otherwise be 25 M spaces.
  const newline = (depth: number) => (indent ? `\n${" ".repeat(indent * Math.min(depth, 32))}` : "");
  const childPath = (parent: string | undefined, key: string | number | undefined) =>
    parent === undefined || parent.length > 200 ? undefined : typeof key === "number" ? `${parent}[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key ?? "") ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;

  /** Writes a primitive, or opens a container (pushes its frame). */
  const visit = (v: unknown, path: string | undefined) => {
    if (++values > maxValues) {
      if (!options.truncate) throw new JsonLimitError("values", maxValues);
      write("…");
      throw new Stop();
    }
    if (v === null || v === undefined) return write("null");
    if (typeof v === "string") return write(JSON.stringify(v.length > maxChars ? v.slice(0, maxChars) : v));
    if (typeof v === "number") return write(Number.isFinite(v) ? String(v) : JSON.stringify(String(v)));
    if (typeof v === "boolean") return write(String(v));
    if (typeof v === "bigint") return write(JSON.stringify(`${v}n`));
    if (typeof v !== "object") return write(JSON.stringify(`[${typeof v}]`));
    if (open.has(v)) return write(JSON.stringify(`[circular: ${firstSeen.get(v) ?? "an enclosing value"}]`));
    const seenAt = firstSeen.get(v);
    if (seenAt !== undefined || firstSeen.has(v)) return write(JSON.stringify(`[shared: same as ${seenAt ?? "a value above"}]`));
    if (v instanceof Date) return write(JSON.stringify(Number.isNaN(v.getTime()) ? "Invalid Date" : v.toISOString()));
    if (v instanceof RegExp) return write(JSON.stringify(String(v)));
    firstSeen.set(v, path as string);
    if (v instanceof Error) return push(v, path, "}", entriesOf([["name", v.name], ["message", v.message]]));
    if (v instanceof ArrayBuffer || v instanceof Uint8Array) {
      const b = v instanceof ArrayBuffer ? new Uint8Array(v) : v;
      return push(v, path, "}", entriesOf([["type", v.constructor.name], ["byteLength", b.byteLength], ["base64", base64(b.subarray(0, BYTES_SHOWN))]]));
    }
    if (ArrayBuffer.isView(v)) {
      const a = v as unknown as ArrayLike<number | bigint>;
      let i = 0;
      return push(v, path, "]", () => (i < (a.length ?? 0) ? [i, a[i++]] : undefined));
    }
    if (Array.isArray(v)) {
      let i = 0;
      // By index, not by iterator: holes read as undefined, and the budget ends a `new Array(1e9)`.
      return push(v, path, "]", () => (i < v.length ? [i, v[i++]] : undefined));
    }
    if (v instanceof Set) {
      const it = v.values();
      let i = 0;
      return push(v, path, "]", () => {
        const n = it.next();
        return n.done ? undefined : [i++, n.value];
      });
    }
    if (v instanceof Map) {
      const simple = [...v.keys()].every((k) => typeof k === "string" || typeof k === "number");
      const it = v.entries();
      let i = 0;
      return simple
        ? push(v, path, "}", () => {
            const n = it.next();
            return n.done ? undefined : [String(n.value[0]), n.value[1]];
          })
        : push(v, path, "]", () => {
            const n = it.next();
            return n.done ? undefined : [i++, [n.value[0], n.value[1]]];
          });
    }
    return push(v, path, "}", entriesOf(Object.entries(v)));
  };

  const push = (obj: object, path: string | undefined, close: "]" | "}", next: () => Entry | undefined) => {
    write(close === "]" ? "[" : "{");
    open.add(obj);
    stack.push({ close, next, path, obj, count: 0 });
  };

  try {
    visit(value, "$");
    while (stack.length > 0) {
      const f = stack[stack.length - 1]!;
      const e = f.next();
      if (!e) {
        stack.pop();
        open.delete(f.obj);
        write(f.count > 0 ? `${newline(stack.length)}${f.close}` : f.close);
        continue;
      }
      write(`${f.count++ > 0 ? "," : ""}${newline(stack.length)}`);
      if (f.close === "}") write(`${JSON.stringify(String(e[0]))}:${indent ? " " : ""}`);
      visit(e[1], childPath(f.path, e[0]));
    }
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
  }
  return out.join("");
}

function entriesOf(list: [string, unknown][]): () => Entry | undefined {
  let i = 0;
  return () => (i < list.length ? list[i++] : undefined);
}

function base64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}
