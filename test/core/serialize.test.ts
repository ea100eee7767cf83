import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hashOf, refOf } from "../../core/artifacts.ts";
import { deserialize, describeType, type Encoded, encodeForHash, SerializeError, serialize } from "../../core/serialize.ts";
import nodeHost from "../../plugins/host/node.ts";

function join(enc: Encoded): Uint8Array {
  const out = new Uint8Array(enc.size);
  let at = 0;
  for (const c of enc.chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  expect(at).toBe(enc.size);
  return out;
}

const bytesOf = (v: unknown, name = "x") => join(serialize(v, name));
const roundTrip = <T>(v: T, name = "x"): T => deserialize(bytesOf(v, name), name) as T;

/** The error `fn` throws (fails the test when it does not throw). */
function thrown(fn: () => unknown): SerializeError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SerializeError);
    return e as SerializeError;
  }
  throw new Error("expected a SerializeError");
}

describe("serialize: JSON-like values", () => {
  it("round-trips primitives, including the ones JSON loses", () => {
    for (const v of ["", "héllo wörld ✓ 🎉 日本語", "\u0000\n\"\\", 0, 1.5, -7, 1e21, 5e-324, Number.MAX_VALUE, true, false, null]) {
      expect(roundTrip(v)).toBe(v);
    }
    expect(Object.is(roundTrip(-0), -0)).toBe(true);
    expect(roundTrip(Number.NaN)).toBeNaN();
    expect(roundTrip(Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
    expect(roundTrip(Number.NEGATIVE_INFINITY)).toBe(Number.NEGATIVE_INFINITY);
    expect(roundTrip(undefined)).toBeUndefined();
    expect(roundTrip(123456789012345678901234567890n)).toBe(123456789012345678901234567890n);
    expect(roundTrip(-1n)).toBe(-1n);
  });

  it("keeps lone surrogates and a leading BOM", () => {
    expect(roundTrip("a\uD800b")).toBe("a\uD800b");
    expect(roundTrip("\uFEFFbom")).toBe("\uFEFFbom");
  });

  it("round-trips nested objects and arrays with undefined, -0 and NaN inside", () => {
    const v = { a: [1, "two", { three: [null, undefined, -0, Number.NaN] }], b: {}, c: [], "weird key": 1 };
    const back = roundTrip(v);
    expect(back).toEqual(v);
    expect(Object.is(back.a[2] && (back.a[2] as any).three[2], -0)).toBe(true);
    expect("1" in (back.a[2] as any).three).toBe(true);
  });

  it("does not confuse objects that have a '$' key with tagged nodes", () => {
    const v = { $: "ref", i: 0, nested: { $: "undefined" }, list: [{ $: "Map", v: [] }], e: { $: {} } };
    expect(roundTrip(v)).toEqual(v);
    expect(roundTrip({ $: "hole", n: 3 })).toEqual({ $: "hole", n: 3 });
  });

  it("keeps an own '__proto__' key as data, without touching the prototype", () => {
    const v = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}');
    const back = roundTrip(v);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.hasOwn(back, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(back, "__proto__")?.value).toEqual({ polluted: true });
    expect(({} as any).polluted).toBeUndefined();
  });

  it("round-trips sparse arrays with holes at the start, middle and end", () => {
    const a: unknown[] = [];
    a[2] = "x";
    a[5] = { y: 1 };
    a.length = 9;
    const back = roundTrip(a);
    expect(back.length).toBe(9);
    expect(Object.keys(back)).toEqual(["2", "5"]);
    expect(back[5]).toEqual({ y: 1 });
    expect(Object.keys(roundTrip(new Array(4)))).toEqual([]);
    expect(roundTrip([undefined]).length).toBe(1);
    expect(0 in roundTrip([undefined])).toBe(true);
  });

  it("stores class instances as plain objects of their own enumerable props, without symbol keys", () => {
    class Point {
      y = 2;
      constructor(readonly x: number) {}
      norm() {
        return Math.hypot(this.x, this.y);
      }
    }
    const p = Object.assign(new Point(1), { [Symbol("s")]: 3 });
    Object.defineProperty(p, "hidden", { value: 4, enumerable: false });
    const back = roundTrip(p);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(back).toEqual({ x: 1, y: 2 });
    expect(Object.getOwnPropertySymbols(back)).toEqual([]);
    expect(roundTrip(Object.create(null))).toEqual({});
  });

  it("round-trips very long strings, ASCII and not, and stores a repeated one once", () => {
    const ascii = "abcdefghij".repeat(100_000);
    const uni = "é✓🎉".repeat(40_000);
    const lone = "x".repeat(70_000) + "\uDC00";
    const back = roundTrip({ ascii, uni, lone, again: ascii });
    expect(back.ascii).toBe(ascii);
    expect(back.uni).toBe(uni);
    expect(back.lone).toBe(lone);
    expect(back.again).toBe(ascii);
    expect(serialize({ a: ascii, b: ascii }, "x").size).toBeLessThan(ascii.length * 1.1);
  });
});

describe("serialize: structured-clone types", () => {
  it("round-trips Date (valid and invalid) and RegExp with flags and lastIndex", () => {
    const d = new Date("2024-02-29T12:34:56.789Z");
    expect(roundTrip(d)).toEqual(d);
    expect(roundTrip(new Date(Number.NaN)).getTime()).toBeNaN();
    const r = /a(b)+\/c/giu;
    r.lastIndex = 3;
    const back = roundTrip(r);
    expect(back).toBeInstanceOf(RegExp);
    expect(back.source).toBe(r.source);
    expect(back.flags).toBe("giu");
    expect(back.lastIndex).toBe(3);
  });

  it("round-trips Maps with object keys, nested Maps and Sets", () => {
    const key = { id: 1 };
    const inner = new Set([1, "a", key]);
    const m = new Map<unknown, unknown>([
      [key, "by object"],
      ["s", inner],
      [2n, new Map([[Number.NaN, -0]])],
      [undefined, null],
    ]);
    const back = roundTrip(m);
    expect(back).toBeInstanceOf(Map);
    expect(back.size).toBe(4);
    const [k] = back.keys() as Iterable<any>;
    expect(k).toEqual({ id: 1 });
    expect(back.get(k)).toBe("by object");
    const s = back.get("s") as Set<unknown>;
    expect(s).toBeInstanceOf(Set);
    expect(s.has(k)).toBe(true); // the key object is shared between the Map and the Set
    expect(Object.is((back.get(2n) as Map<number, number>).get(Number.NaN), -0)).toBe(true);
    expect(back.has(undefined)).toBe(true);
  });

  it("round-trips errors: standard classes, cause, extra props, custom names, AggregateError", () => {
    const cause = new RangeError("too far");
    const e = Object.assign(new TypeError("bad input", { cause }), { code: "E_BAD", details: { at: [1, 2] } });
    const back = roundTrip(e);
    expect(back).toBeInstanceOf(TypeError);
    expect(back.message).toBe("bad input");
    expect(back.stack).toBe(e.stack);
    expect(back.cause).toBeInstanceOf(RangeError);
    expect((back.cause as Error).message).toBe("too far");
    expect(back.code).toBe("E_BAD");
    expect(back.details).toEqual({ at: [1, 2] });
    expect(Object.keys(back).sort()).toEqual(["code", "details"]);

    class HttpError extends Error {
      override name = "HttpError";
      status = 404;
    }
    const h = roundTrip(new HttpError("not found"));
    expect(h).toBeInstanceOf(Error);
    expect(h.name).toBe("HttpError");
    expect(h.status).toBe(404);

    for (const C of [Error, EvalError, ReferenceError, SyntaxError, URIError]) expect(roundTrip(new C("m"))).toBeInstanceOf(C);
    const agg = roundTrip(new AggregateError([new Error("one")], "many"));
    expect(agg).toBeInstanceOf(AggregateError);
    expect(agg.errors[0].message).toBe("one");
    expect(Object.hasOwn(roundTrip(new Error()), "message")).toBe(false);
  });

  it("round-trips boxed primitives", () => {
    const v = [new String("s"), new Number(-0), new Number(Number.NaN), new Boolean(false), Object(10n)];
    const back = roundTrip(v);
    expect(back[0]).toBeInstanceOf(String);
    expect(back[0]!.valueOf()).toBe("s");
    expect(Object.is(back[1]!.valueOf(), -0)).toBe(true);
    expect(back[2]!.valueOf()).toBeNaN();
    expect(back[3]).toBeInstanceOf(Boolean);
    expect(back[3]!.valueOf()).toBe(false);
    expect(typeof back[4]).toBe("object");
    expect(back[4]!.valueOf()).toBe(10n);
  });

  it("round-trips ArrayBuffer and every typed array kind, empty ones too", () => {
    const kinds: any[] = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array];
    if (typeof (globalThis as any).Float16Array === "function") kinds.push((globalThis as any).Float16Array);
    for (const K of kinds) {
      const ta = K.from([0, 1, 2, 3, 127, 250].map((x) => x));
      const back = roundTrip(ta);
      expect(back).toBeInstanceOf(K);
      expect(Array.from(back)).toEqual(Array.from(ta));
      expect(back.buffer.byteLength).toBe(ta.byteLength); // small values own exact buffers
      expect(roundTrip(new K(0))).toBeInstanceOf(K);
      expect(roundTrip(new K(0)).length).toBe(0);
    }
    expect(Array.from(roundTrip(new BigInt64Array([-1n, 2n ** 62n])))).toEqual([-1n, 2n ** 62n]);
    expect(Array.from(roundTrip(new BigUint64Array([2n ** 64n - 1n])))).toEqual([2n ** 64n - 1n]);
    const f = roundTrip(new Float64Array([-0, Number.NaN, Number.POSITIVE_INFINITY]));
    expect(Object.is(f[0], -0)).toBe(true);
    expect(f[1]).toBeNaN();

    const ab = new Uint8Array([9, 8, 7]).buffer;
    const abBack = roundTrip(ab);
    expect(abBack).toBeInstanceOf(ArrayBuffer);
    expect(Array.from(new Uint8Array(abBack))).toEqual([9, 8, 7]);
    expect(roundTrip(new ArrayBuffer(0)).byteLength).toBe(0);
  });

  it("round-trips subarray views with a non-zero byteOffset and DataViews", () => {
    const base = new Float32Array(100).map((_, i) => i);
    const sub = base.subarray(13, 17);
    const back = roundTrip(sub);
    expect(Array.from(back)).toEqual([13, 14, 15, 16]);
    expect(back.buffer.byteLength).toBe(16); // only the viewed bytes are stored
    expect(serialize(sub, "x").size).toBeLessThan(200);

    const dv = new DataView(new ArrayBuffer(32), 3, 10);
    dv.setUint16(0, 0xbeef, true);
    const dvBack = roundTrip(dv);
    expect(dvBack).toBeInstanceOf(DataView);
    expect(dvBack.byteLength).toBe(10);
    expect(dvBack.getUint16(0, true)).toBe(0xbeef);
  });

  it("keeps views on one buffer sharing it, and a buffer with its views", () => {
    const buf = new ArrayBuffer(64);
    const bytes = new Uint8Array(buf, 1, 7);
    const floats = new Float64Array(buf, 16, 4);
    floats[0] = 1.25;
    bytes[0] = 42;
    const back = roundTrip({ bytes, floats });
    expect(back.bytes.buffer).toBe(back.floats.buffer);
    expect(back.floats[0]).toBe(1.25);
    expect(back.bytes[0]).toBe(42);
    back.bytes[0] = 1;
    expect(new Uint8Array(back.floats.buffer)[back.bytes.byteOffset]).toBe(1);

    const withBuf = roundTrip({ view: new Int32Array(buf, 8, 2), buf });
    expect(withBuf.buf).toBeInstanceOf(ArrayBuffer);
    expect(withBuf.view.buffer).toBe(withBuf.buf);
    expect(withBuf.view.byteOffset).toBe(8);
    expect(withBuf.buf.byteLength).toBe(64);
  });
});

describe("serialize: identity", () => {
  it("keeps shared references shared", () => {
    const shared = { n: 1 };
    const date = new Date(0);
    const ta = new Uint8Array([1]);
    const back = roundTrip({ a: shared, b: [shared, date, ta], c: new Map([["k", shared]]), d: date, e: ta });
    expect(back.b[0]).toBe(back.a);
    expect(back.c.get("k")).toBe(back.a);
    expect(back.d).toBe(back.b[1]);
    expect(back.e).toBe(back.b[2]);
  });

  it("round-trips cycles through objects, arrays, Maps, Sets and errors", () => {
    const o: any = { name: "root" };
    o.self = o;
    o.list = [o, { parent: o }];
    o.map = new Map<unknown, unknown>([[o, o]]);
    o.set = new Set([o]);
    o.err = new Error("loop", { cause: o });
    const back = roundTrip(o);
    expect(back.self).toBe(back);
    expect(back.list[0]).toBe(back);
    expect(back.list[1].parent).toBe(back);
    expect(back.map.get(back)).toBe(back);
    expect(back.set.has(back)).toBe(true);
    expect(back.err.cause).toBe(back);
    const a: any[] = [];
    a.push(a);
    const aBack = roundTrip(a);
    expect(aBack[0]).toBe(aBack);
  });

  it("handles nesting 10,000 deep without overflowing the stack", () => {
    let arr: unknown[] = [];
    const rootArr = arr;
    let obj: any = {};
    const rootObj = obj;
    for (let i = 0; i < 10_000; i++) {
      const nextArr: unknown[] = [];
      arr.push(nextArr);
      arr = nextArr;
      obj.c = { i };
      obj = obj.c;
    }
    arr.push("bottom");
    let back: any = roundTrip(rootArr);
    for (let i = 0; i < 10_000; i++) back = back[0];
    expect(back).toEqual(["bottom"]);
    let o: any = roundTrip(rootObj);
    for (let i = 0; i < 10_000; i++) o = o.c;
    expect(o.i).toBe(9_999);
  });

  it("gives identical bytes for identical values (content hashes depend on it)", () => {
    const make = () => ({ a: [1, 2, { b: new Map([[1, new Float32Array([1, 2])]]) }], s: new Set(["x"]) });
    expect(bytesOf(make())).toEqual(bytesOf(make()));
  });
});

describe("serialize: binary without copies", () => {
  it("returns a 50 MB Uint8Array as a chunk on the caller's own memory", () => {
    const big = new Uint8Array(50 * 1024 * 1024);
    big[0] = 1;
    big[big.length - 1] = 2;
    const enc = serialize({ big }, "big");
    const chunk = enc.chunks.find((c) => c.byteLength === big.byteLength);
    expect(chunk?.buffer).toBe(big.buffer);
    expect(chunk?.byteOffset).toBe(0);
    expect(enc.size).toBe(enc.chunks.reduce((n, c) => n + c.byteLength, 0));
    expect(enc.type).toBe("object");
  });

  it("decodes large segments as views on the input and small ones as copies", () => {
    const large = new Float64Array(10_000).map((_, i) => i / 3);
    const small = new Int16Array([1, -2, 3]);
    const bytes = bytesOf({ large, small });
    const back = deserialize(bytes) as { large: Float64Array; small: Int16Array };
    expect(back.large.buffer).toBe(bytes.buffer);
    expect(Array.from(back.large)).toEqual(Array.from(large));
    expect(back.small.buffer).not.toBe(bytes.buffer);
    expect(Array.from(back.small)).toEqual([1, -2, 3]);

    // An input that is not 8-aligned cannot hold aligned views: large segments are copied then.
    const shifted = new Uint8Array(bytes.byteLength + 3).subarray(3);
    shifted.set(bytes);
    const back2 = deserialize(shifted) as { large: Float64Array };
    expect(back2.large.buffer).not.toBe(shifted.buffer);
    expect(Array.from(back2.large)).toEqual(Array.from(large));
  });

  it("stores a 1e6-number array as float64 and gives back a plain array", () => {
    const nums = Array.from({ length: 1_000_000 }, (_, i) => i * 0.5 - 3);
    nums[7] = -0;
    nums[8] = Number.NaN;
    const enc = serialize(nums, "nums");
    expect(enc.size).toBeLessThan(8_000_200);
    const back = deserialize(join(enc)) as number[];
    expect(Array.isArray(back)).toBe(true);
    expect(back.length).toBe(1_000_000);
    expect(back[999_999]).toBe(nums[999_999]);
    expect(Object.is(back[7], -0)).toBe(true);
    expect(back[8]).toBeNaN();
    const mixed = [...nums.slice(0, 300), "x"];
    expect(roundTrip(mixed)).toEqual(mixed);
  });

  it("reads a blob from a Node Buffer at any pool offset", () => {
    if (typeof Buffer === "undefined") return;
    const v = { t: new Float32Array(20_000).fill(1.5), s: "ok" };
    const bytes = bytesOf(v);
    const pooled = Buffer.concat([Buffer.alloc(8), Buffer.from(bytes)]).subarray(8);
    expect(deserialize(pooled)).toEqual(v);
  });
});

describe("serialize: errors", () => {
  it("names the artifact and the path of a function deep inside", () => {
    const model = { layers: [{}, {}, { fn: () => 1 }] };
    expect(thrown(() => serialize(model, "model")).message).toBe(
      "artifact 'model' cannot be serialized: model.layers[2].fn is a function",
    );
    expect(thrown(() => serialize(() => 1, "f")).message).toBe("artifact 'f' cannot be serialized: f is a function");
    expect(thrown(() => serialize({ "weird key": [Symbol("s")] }, "w")).message).toBe(
      `artifact 'w' cannot be serialized: w["weird key"][0] is a symbol`,
    );
  });

  it("names paths through Maps, Sets and errors", () => {
    const m = new Map<unknown, unknown>([
      ["ok", 1],
      ["cb", { run: () => 0 }],
    ]);
    expect(thrown(() => serialize({ m }, "a")).message).toBe(`artifact 'a' cannot be serialized: a.m.get("cb").run is a function`);
    const byKey = new Map([[() => 0, 1]]);
    expect(thrown(() => serialize(byKey, "a")).message).toBe("artifact 'a' cannot be serialized: a<map key 0> is a function");
    expect(thrown(() => serialize(new Set([1, Symbol.iterator]), "a")).message).toBe(
      "artifact 'a' cannot be serialized: a<set value 1> is a symbol",
    );
    const e = new Error("x", { cause: { f() {} } });
    expect(thrown(() => serialize(e, "a")).message).toBe("artifact 'a' cannot be serialized: a.cause.f is a function");
  });

  it("refuses Promises, weak collections and host objects with a hint", () => {
    expect(thrown(() => serialize({ p: Promise.resolve(1) }, "a")).message).toBe(
      "artifact 'a' cannot be serialized: a.p is a Promise (await it before storing it)",
    );
    expect(thrown(() => serialize([new WeakMap()], "a")).message).toMatch(/a\[0\] is a WeakMap/);
    expect(thrown(() => serialize(new WeakSet(), "a")).message).toMatch(/a is a WeakSet/);
    expect(thrown(() => serialize(new WeakRef({}), "a")).message).toMatch(/a is a WeakRef/);
    expect(thrown(() => serialize([1].values(), "a")).message).toMatch(/a is an Array Iterator/);
    expect(thrown(() => serialize(new URL("https://x.y"), "a")).message).toMatch(/a is a URL \(store url\.href\)/);
  });

  it("reports a throwing getter with its path", () => {
    const v = {
      get boom(): number {
        throw new Error("nope");
      },
    };
    expect(thrown(() => serialize({ v }, "g")).message).toBe("artifact 'g' cannot be serialized: reading g.v.boom threw Error: nope");
  });

  it("rejects corrupt bytes naming the artifact", () => {
    const good = bytesOf({ a: [1, 2, 3], t: new Uint8Array(10) });
    const corrupt = (b: Uint8Array, name?: string) => thrown(() => deserialize(b, name));
    expect(corrupt(new TextEncoder().encode("{\"a\":1}"), "x").message).toMatch(/^artifact 'x' is corrupt: it does not start with "TSF1"$/);
    expect(corrupt(good.subarray(0, 5), "x").message).toMatch(/^artifact 'x' is corrupt: .*too short/);
    expect(corrupt(good.subarray(0, 20), "x").message).toMatch(/^artifact 'x' is corrupt: it is truncated/);
    expect(corrupt(good.subarray(0, good.length - 1), "x").message).toMatch(/^artifact 'x' is corrupt: it is truncated/);
    const trailing = new Uint8Array(good.length + 1);
    trailing.set(good);
    expect(corrupt(trailing, "x").message).toMatch(/1 unexpected trailing bytes/);
    const badJson = good.slice();
    badJson[9] = 0x7b; // '{' where the header expects '"'
    expect(corrupt(badJson, "x").message).toMatch(/^artifact 'x' is corrupt: its header is not valid JSON/);
    expect(corrupt(badJson).message).toMatch(/^serialized value is corrupt: /);
    expect(corrupt(badJson).code).toBe("CorruptArtifact");

    const forge = (header: string) => {
      const h = new TextEncoder().encode(header);
      const b = new Uint8Array(8 + h.length);
      b.set([0x54, 0x53, 0x46, 0x31]);
      new DataView(b.buffer).setUint32(4, h.length, true);
      b.set(h, 8);
      return b;
    };
    expect(deserialize(forge('{"v":[1],"s":[]}'))).toEqual([1]);
    expect(corrupt(forge('{"v":{"$":"ref","i":4},"s":[]}'), "x").message).toMatch(/^artifact 'x' is corrupt: reference to object 4/);
    expect(corrupt(forge('{"v":{"$":"nope"},"s":[]}'), "x").message).toMatch(/unknown tag "nope"/);
    expect(corrupt(forge('{"v":{"$":"Uint8Array","b":0,"o":0,"n":1},"s":[]}'), "x").message).toMatch(/no segment 0/);
    expect(corrupt(forge('{"s":[]}'), "x").message).toMatch(/lacks the value/);
  });
});

describe("encodeForHash", () => {
  /** What encodeForHash feeds, copied block by block (each block is only valid during its call). */
  function streamed(v: unknown, name = "x"): { bytes: Uint8Array; size: number; type: string } {
    const enc = encodeForHash(v, name);
    const parts: Uint8Array[] = [];
    expect(enc.feed((b) => parts.push(b.slice()))).toBe(true);
    const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.byteLength;
    }
    return { bytes, size: enc.size, type: enc.type };
  }

  it("feeds exactly serialize's bytes for long number arrays, however they sit in the value", () => {
    const odd = Array.from({ length: 8192 * 3 + 17 }, (_, i) => (i % 7 === 0 ? -0 : i % 5 === 0 ? Number.NaN : i * 0.25 - 100));
    const values = [
      Array.from({ length: 1_000_000 }, (_, i) => i * 0.5),
      odd,
      { a: odd, b: new Uint8Array([1, 2, 3]), c: [odd, "text", odd.slice(0, 300)], d: new Float32Array(1000).fill(1.5) },
      ["three", ...Array.from({ length: 400 }, (_, i) => i)],
      new Map([[Array.from({ length: 256 }, (_, i) => i), Array.from({ length: 257 }, (_, i) => -i)]]),
    ];
    for (const v of values) {
      const s = streamed(v);
      const whole = serialize(v, "x");
      expect(s.size).toBe(whole.size);
      expect(s.type).toBe(whole.type);
      expect(Buffer.from(s.bytes).equals(Buffer.from(bytesOf(v)))).toBe(true);
    }
  });

  it("gives up on a long array that only starts with numbers; hashOf then hashes serialize's bytes", () => {
    const host = nodeHost();
    const late = Array.from({ length: 20_000 }, (_, i) => (i === 19_999 ? "not a number" : i));
    const holey = Array.from({ length: 300 }, (_, i) => i);
    delete holey[150];
    for (const v of [late, { a: [late] }, holey, [1, 2, "three", ...Array.from({ length: 400 }, (_, i) => i)], [0.5, ...Array.from({ length: 299 }, () => undefined)]]) {
      expect(encodeForHash(v, "x").feed(() => {})).toBe(false);
      expect(hashOf(host, "x", v)).toBe(refOf(host, "x", v).ref.hash);
      expect(hashOf(host, "x", v, "blake3")).toBe(refOf(host, "x", v, "blake3").ref.hash);
    }
  });

  it("feeds serialize's bytes for any value (property, seeded)", () => {
    const numbers = fc.array(fc.double(), { minLength: 250, maxLength: 700 });
    const value = fc.oneof(
      fc.anything({ maxDepth: 2, maxKeys: 4, withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withBoxedValues: true }),
      numbers,
      fc.record({ n: numbers, rest: fc.anything({ maxDepth: 1 }) }),
    );
    const host = nodeHost();
    fc.assert(
      fc.property(value, (v) => {
        expect(hashOf(host, "x", v)).toBe(refOf(host, "x", v).ref.hash);
        if (!encodeForHash(v, "x").feed(() => {})) return;
        expect(Buffer.from(streamed(v).bytes).equals(Buffer.from(bytesOf(v)))).toBe(true);
      }),
      process.env.TSFLOW_SOAK === "1" ? { numRuns: 5_000 } : { numRuns: 300, seed: 20261130 },
    );
  });

  it("refuses what serialize refuses, with the same message", () => {
    const bad = { ok: Array.from({ length: 300 }, (_, i) => i), f: () => 1 };
    expect(thrown(() => encodeForHash(bad, "x")).message).toBe(thrown(() => serialize(bad, "x")).message);
  });
});

describe("describeType", () => {
  it("names types for listings", () => {
    class Foo {
      a = 1;
    }
    const cases: [unknown, string][] = [
      ["s", "string"],
      [1, "number"],
      [true, "boolean"],
      [null, "null"],
      [undefined, "undefined"],
      [1n, "bigint"],
      [[], "Array"],
      [{}, "object"],
      [new Foo(), "object"],
      [new Map(), "Map"],
      [new Set(), "Set"],
      [new Date(), "Date"],
      [/x/, "RegExp"],
      [new Error(), "Error"],
      [new TypeError(), "TypeError"],
      [new Uint8Array(), "Uint8Array"],
      [new Float64Array(), "Float64Array"],
      [new ArrayBuffer(1), "ArrayBuffer"],
      [new DataView(new ArrayBuffer(1)), "DataView"],
      [new String(""), "String"],
      [() => 0, "function"],
    ];
    for (const [v, t] of cases) expect(describeType(v)).toBe(t);
    expect(serialize(new Map(), "m").type).toBe("Map");
  });

  it("is not fooled by a fake Symbol.toStringTag", () => {
    class FakeMap {
      get [Symbol.toStringTag]() {
        return "Map";
      }
      x = 1;
    }
    expect(describeType(new FakeMap())).toBe("object");
    expect(roundTrip(new FakeMap())).toEqual({ x: 1 });
  });
});
