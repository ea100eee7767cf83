/**
 * Artifact previews. An artifact is loaded only when its serialized size is at most
 * {@link PREVIEW_MAX}; anything larger shows its size and a download link, so a 1 GB artifact
 * costs the page nothing. A loaded value is walked with a budget and each object is shown once
 * (a second meeting says where it was), so a 1 KB blob of shared sub-objects (2^40 paths) costs
 * the page at most {@link MAX_NODES} nodes.
 */
import { jsonText } from "../core/_json.ts";
import { esc, fmtSize } from "./html.ts";

export const PREVIEW_MAX = 512 * 1024;
const MAX_NODES = 1500;
const MAX_ROWS = 200;
const MAX_TEXT = 100_000;

/** The bytes of a binary value (Uint8Array, ArrayBuffer, other views), or `null`. */
export function bytesOf(v: unknown): Uint8Array | null {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

export function imageType(b: Uint8Array): string | null {
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "image/png";
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  return null;
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype;

/** HTML preview of a loaded value. `imageUrl` is where the raw image bytes can be fetched. */
export function previewHtml(value: unknown, imageUrl?: string): string {
  if (typeof value === "string") {
    const cut = value.length > MAX_TEXT;
    return `<pre class="text">${esc(cut ? value.slice(0, MAX_TEXT) : value)}</pre>${cut ? `<p class="mute">showing the first ${MAX_TEXT} of ${value.length} characters</p>` : ""}`;
  }
  const bytes = bytesOf(value);
  if (bytes) {
    const img = imageType(bytes);
    if (img && imageUrl) return `<img alt="artifact image" src="${esc(imageUrl)}">`;
    const head = bytes.subarray(0, 256);
    const lines: string[] = [];
    for (let i = 0; i < head.length; i += 16) {
      const row = Array.from(head.subarray(i, i + 16), (b) => b.toString(16).padStart(2, "0")).join(" ");
      lines.push(`${i.toString(16).padStart(6, "0")}  ${row}`);
    }
    return `<p>${esc((value as object).constructor?.name ?? "binary")}, ${fmtSize(bytes.byteLength)}</p><pre class="hex">${esc(lines.join("\n"))}${bytes.length > 256 ? "\n…" : ""}</pre>`;
  }
  if (Array.isArray(value) && value.length > 0 && value.slice(0, MAX_ROWS).every(isRecord)) return recordsTable(value);
  if (value !== null && typeof value === "object") {
    const budget = { n: MAX_NODES };
    return `<div class="tree">${tree(value, 0, budget, new Map(), "value")}</div>${budget.n <= 0 ? `<p class="mute">(truncated: download the value to see all of it)</p>` : ""}`;
  }
  return `<pre class="text">${esc(typeof value === "bigint" ? `${value}n` : String(value))}</pre>`;
}

function recordsTable(rows: Record<string, unknown>[]): string {
  const cols: string[] = [];
  for (const r of rows.slice(0, MAX_ROWS)) for (const k of Object.keys(r)) if (!cols.includes(k) && cols.length < 40) cols.push(k);
  const cell = (v: unknown) => {
    const s = typeof v === "string" ? v : jsonText(v, { maxChars: 201, maxValues: 200, truncate: true });
    return esc(s.length > 200 ? `${s.slice(0, 197)}…` : s);
  };
  const body = rows
    .slice(0, MAX_ROWS)
    .map((r) => `<tr>${cols.map((c) => `<td>${cell(r[c])}</td>`).join("")}</tr>`)
    .join("");
  return `<table class="records"><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>${body}</tbody></table>${rows.length > MAX_ROWS ? `<p class="mute">showing ${MAX_ROWS} of ${rows.length} rows</p>` : ""}`;
}

function leaf(v: unknown): string {
  if (typeof v === "string") return `<span class="s">${esc(JSON.stringify(v.length > 500 ? `${v.slice(0, 500)}…` : v))}</span>`;
  if (typeof v === "bigint") return `<span class="n">${esc(v)}n</span>`;
  if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined) return `<span class="n">${esc(String(v))}</span>`;
  if (v instanceof Date) return `<span class="n">Date ${esc(Number.isNaN(v.getTime()) ? "Invalid" : v.toISOString())}</span>`;
  if (v instanceof RegExp) return `<span class="s">${esc(String(v))}</span>`;
  if (v instanceof Error) return `<span class="s">${esc(`${v.name}: ${v.message}`)}</span>`;
  const b = bytesOf(v);
  if (b) return `<span class="n">${esc((v as object).constructor?.name ?? "bytes")} (${fmtSize(b.byteLength)})</span>`;
  return "";
}

/** `seen`: every object already shown, with where; a shared one is shown once, then named. */
function tree(v: unknown, depth: number, budget: { n: number }, seen: Map<object, string>, path: string): string {
  const l = leaf(v);
  if (l || v === null || typeof v !== "object") return l || esc(String(v));
  const first = seen.get(v);
  if (first !== undefined) return `<span class="mute">${esc(first === path ? "[circular]" : `[same as ${first}]`)}</span>`;
  seen.set(v, path);
  const label = v instanceof Map ? `Map(${v.size})` : v instanceof Set ? `Set(${v.size})` : Array.isArray(v) ? `Array(${v.length})` : `{${Object.keys(v).length}}`;
  const items: string[] = [];
  for (const [k, x] of entriesOf(v, budget.n)) {
    if (--budget.n <= 0) {
      items.push(`<div class="mute">…</div>`);
      break;
    }
    const key = typeof k === "string" ? k : typeof k === "number" ? String(k) : jsonText(k, { maxChars: 80, maxValues: 20, truncate: true });
    const sub = path.length > 120 ? `${path.slice(0, 117)}…` : typeof k === "number" ? `${path}[${k}]` : `${path}.${key}`;
    items.push(`<div><span class="k">${esc(key)}</span>: ${tree(x, depth + 1, budget, seen, sub)}</div>`);
  }
  return `<details${depth < 1 || budget.n > MAX_NODES - 40 ? " open" : ""}><summary>${esc(label)}</summary>${items.join("")}</details>`;
}

/** At most `max` entries of a container, read lazily: `new Array(1e9)` costs `max` steps. */
function* entriesOf(v: object, max: number): Generator<[unknown, unknown]> {
  let n = 0;
  if (v instanceof Map) {
    for (const e of v) if (n++ < max) yield e;
    else return;
  } else if (v instanceof Set) {
    for (const x of v) if (n < max) yield [n++, x];
    else return;
  } else if (Array.isArray(v)) {
    for (let i = 0; i < v.length && i < max; i++) yield [i, v[i]];
  } else {
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue;
      if (n++ >= max) return;
      yield [k, (v as Record<string, unknown>)[k]];
    }
  }
}
