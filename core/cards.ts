/**
 * Cards: visual reports attached to a task (Metaflow's `@card`).
 *
 * This file is the runtime-free half: the component classes a step appends (`new Markdown(…)`,
 * `new Table(…)`, …), the plain serialisable data each one becomes, the `@card` decorator,
 * `current.card` (a {@link CardSession} per task) and where cards are stored. Turning card data
 * into HTML (markdown-it, tables, the vega bundles) lives outside the core, in `cards/`; the
 * core reaches it through the {@link CardRenderer} that `mod.ts` installs, so a card rendered
 * today and re-rendered from its data later look the same, and the core stays portable.
 *
 * A card never fails its task: a component that cannot become data turns into an error
 * component, and a renderer that throws leaves the error in the card.
 */
import { getJson, putJson } from "./_datastore.ts";
import { blobKey, cardKey, cardsPrefix } from "./_layout.ts";
import { TsflowError } from "./errors.ts";
import { stepDecoratorMerge } from "./flow.ts";
import type { Datastore, ForeachFrame, Host, TaskError, TaskSpec } from "./types.ts";

// ---------------------------------------------------------------------------------------
// Data: what a card stores. Plain JSON, versioned, so old cards render later.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A table cell: a plain value, or a component (a chart in a cell, an image…). */
export type CardCell = string | number | boolean | null | ComponentData;

export interface MarkdownData {
  type: "markdown";
  text: string;
}
export interface TableData {
  type: "table";
  headers: string[];
  rows: CardCell[][];
  /** Rows per page; larger tables are paged in the card. */
  pageSize?: number;
  label?: string;
}
export interface ImageData {
  type: "image";
  mime: "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/svg+xml";
  base64: string;
  label?: string;
}
export interface ChartData {
  type: "chart";
  /** A Vega-Lite (or Vega) specification. */
  spec: { [key: string]: Json };
  label?: string;
}
export interface ProgressData {
  type: "progress";
  max: number;
  value: number;
  label?: string;
}
export interface ArtifactData {
  type: "artifact";
  name?: string;
  /** `describeType`-like label: `Map`, `number[]`… */
  valueType: string;
  /** The value made JSON-able (Map → entries, Date → ISO, bigint → `"12n"`…), cut at {@link ARTIFACT_NODES}. */
  value: Json;
  truncated?: boolean;
}
export interface ErrorData {
  type: "error";
  message: string;
  detail?: string;
}

export type ComponentData = MarkdownData | TableData | ImageData | ChartData | ProgressData | ArtifactData | ErrorData;

/** One artifact of the task, as the default card lists it. */
export interface CardArtifact {
  name: string;
  type: string;
  size: number;
  /** A preview (table for records, image for image bytes, tree for objects) when small enough. */
  preview?: ComponentData;
}

/** What a card knows about its task. */
export interface CardTaskInfo {
  flow: string;
  runId: string;
  step: string;
  taskId: string;
  attempt: number;
  pathspec: string;
  status: "running" | "succeeded" | "failed";
  startedAt: number;
  finishedAt?: number;
  error?: TaskError;
  parents: string[];
  foreach: ForeachFrame[];
  parameters: Record<string, Json>;
  artifacts: CardArtifact[];
  /** The flow's graph (run.json's summary): where the step sits. */
  graph?: { order: string[]; steps: Record<string, { type: string; next: string[]; foreach?: string; condition?: string }> };
}

/** Everything a card stores: rendered to HTML by a card type. */
export interface CardData {
  version: 1;
  id: string;
  /** Card type: `default`, `blank`, or a plugin's name. */
  type: string;
  options: Record<string, Json>;
  components: ComponentData[];
  task: CardTaskInfo;
  /** `false` for a live snapshot taken while the task ran. */
  final: boolean;
  renderedAt: number;
}

/** A stored card: its data and HTML blobs (content-addressed, like artifacts). */
export interface CardRef {
  id: string;
  type: string;
  /** Hash of the {@link CardData} JSON blob. */
  data: string;
  /** Hash of the rendered HTML fragment; missing when no renderer was installed. */
  html?: string;
  /** The fragment holds charts: its document needs the vega bundles. */
  vega?: boolean;
  final: boolean;
  /** Why rendering failed (the card then shows the error). */
  error?: string;
  updatedAt: number;
}

// ---------------------------------------------------------------------------------------
// Components: the classes a step appends. Each becomes data when the card is rendered, so a
// component changed after `append` (a progress bar's value) shows its latest state.

/** Base of every card component. */
export abstract class CardComponent {
  /** The component as plain data. */
  abstract toData(): ComponentData;
}

const encoder = new TextEncoder();

/** Markdown text. Raw HTML in it is shown as text, never interpreted. */
export class Markdown extends CardComponent {
  constructor(public text: string) {
    super();
  }
  update(text: string): this {
    this.text = text;
    return this;
  }
  toData(): MarkdownData {
    return { type: "markdown", text: String(this.text) };
  }
}

export interface TableOptions {
  /** Column names; taken from the records' keys when the rows are records. */
  headers?: string[];
  /** Rows per page (default 50). */
  pageSize?: number;
  label?: string;
}

type Row = readonly unknown[] | Record<string, unknown>;

/** A table from rows (arrays) or records (objects); cells may hold components. */
export class Table extends CardComponent {
  constructor(
    public rows: readonly Row[] = [],
    public options: TableOptions = {},
  ) {
    super();
  }
  update(rows: readonly Row[]): this {
    this.rows = rows;
    return this;
  }
  toData(): TableData {
    const rows = Array.isArray(this.rows) ? this.rows : [];
    const isRecord = (r: unknown): r is Record<string, unknown> => r !== null && typeof r === "object" && !Array.isArray(r);
    let headers = this.options.headers ? this.options.headers.map(String) : [];
    if (!this.options.headers && rows.some(isRecord)) {
      const seen = new Set<string>();
      for (const r of rows) if (isRecord(r)) for (const k of Object.keys(r)) seen.add(k);
      headers = [...seen];
    }
    const out = rows.map((r) => (isRecord(r) ? headers.map((h) => toCell(r[h])) : Array.isArray(r) ? r.map(toCell) : [toCell(r)]));
    return { type: "table", headers, rows: out, ...(this.options.pageSize ? { pageSize: this.options.pageSize } : {}), ...(this.options.label ? { label: this.options.label } : {}) };
  }
}

function toCell(v: unknown): CardCell {
  if (v instanceof CardComponent) return safeData(v);
  if (v === null || v === undefined) return null;
  if (typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number") return Number.isFinite(v) ? v : String(v);
  const j = toJsonable(v, { n: 200 });
  return typeof j === "string" ? j : JSON.stringify(j);
}

export interface ImageOptions {
  label?: string;
}

/** An image from PNG, JPEG, GIF, WebP or SVG bytes (or SVG text). */
export class Image extends CardComponent {
  constructor(
    public source: Uint8Array | ArrayBuffer | ArrayBufferView | string,
    public options: ImageOptions = {},
  ) {
    super();
  }
  toData(): ImageData | ErrorData {
    const bytes = typeof this.source === "string" ? encoder.encode(this.source) : bytesOf(this.source);
    if (!bytes) return { type: "error", message: `Image: expected image bytes (Uint8Array) or SVG text, got ${describe(this.source)}` };
    const mime = imageMime(bytes);
    if (!mime) return { type: "error", message: `Image${this.options.label ? ` '${this.options.label}'` : ""}: the bytes are not a PNG, JPEG, GIF, WebP or SVG image` };
    return { type: "image", mime, base64: toBase64(bytes), ...(this.options.label ? { label: this.options.label } : {}) };
  }
}

/** A Vega-Lite chart, rendered in the card with the vega bundles shipped with tsflow (no CDN). */
export class Chart extends CardComponent {
  constructor(
    public spec: Record<string, unknown>,
    public options: { label?: string } = {},
  ) {
    super();
  }
  update(spec: Record<string, unknown>): this {
    this.spec = spec;
    return this;
  }
  toData(): ChartData | ErrorData {
    if (!this.spec || typeof this.spec !== "object" || Array.isArray(this.spec)) return { type: "error", message: `Chart: expected a Vega-Lite specification object, got ${describe(this.spec)}` };
    let spec: Json;
    try {
      spec = JSON.parse(JSON.stringify(this.spec)) as Json;
    } catch (e) {
      return { type: "error", message: `Chart: the specification is not JSON: ${(e as Error).message}` };
    }
    return { type: "chart", spec: spec as { [key: string]: Json }, ...(this.options.label ? { label: this.options.label } : {}) };
  }
}

/** A progress bar; `update(value)` then `current.card.refresh()` shows progress while the task runs. */
export class ProgressBar extends CardComponent {
  max: number;
  value: number;
  label?: string;
  constructor(options: { max?: number; value?: number; label?: string } = {}) {
    super();
    this.max = options.max ?? 100;
    this.value = options.value ?? 0;
    this.label = options.label;
  }
  update(value: number, label?: string): this {
    this.value = value;
    if (label !== undefined) this.label = label;
    return this;
  }
  toData(): ProgressData {
    const max = Number.isFinite(this.max) && this.max > 0 ? this.max : 100;
    const value = Number.isFinite(this.value) ? Math.min(Math.max(this.value, 0), max) : 0;
    return { type: "progress", max, value, ...(this.label !== undefined ? { label: String(this.label) } : {}) };
  }
}

/** Any value, pretty-printed as a tree (objects) or text. */
export class ArtifactValue extends CardComponent {
  constructor(
    public value: unknown,
    public options: { name?: string } = {},
  ) {
    super();
  }
  toData(): ArtifactData {
    const budget = { n: ARTIFACT_NODES };
    const value = toJsonable(this.value, budget);
    return { type: "artifact", ...(this.options.name ? { name: this.options.name } : {}), valueType: describe(this.value), value, ...(budget.n <= 0 ? { truncated: true } : {}) };
  }
}

/** An error shown in the card (exported from `tsflow` as `CardError`: `Error` is JavaScript's). */
export class CardError extends CardComponent {
  constructor(
    public error: unknown,
    public options: { title?: string } = {},
  ) {
    super();
  }
  toData(): ErrorData {
    const e = this.error;
    const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return { type: "error", message: this.options.title ? `${this.options.title}: ${message}` : message, ...(e instanceof Error && e.stack ? { detail: e.stack } : {}) };
  }
}

/** A component's data; a component that throws becomes an error component instead. */
export function safeData(c: CardComponent): ComponentData {
  try {
    return c.toData();
  } catch (e) {
    return { type: "error", message: `${c.constructor?.name ?? "component"} could not be rendered: ${(e as Error)?.message ?? String(e)}` };
  }
}

const PREVIEW_ROWS = 200;

/** The default card's preview of an artifact: a table for records, an image for image bytes, else a tree. */
export function previewComponent(value: unknown): ComponentData {
  try {
    const bytes = bytesOf(value);
    if (bytes && imageMime(bytes)) return new Image(bytes).toData();
    const isRecord = (v: unknown) => v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype;
    if (Array.isArray(value) && value.length > 0 && value.every(isRecord)) {
      const t = new Table(value.slice(0, PREVIEW_ROWS) as Record<string, unknown>[], { label: value.length > PREVIEW_ROWS ? `first ${PREVIEW_ROWS} of ${value.length} rows` : undefined }).toData();
      if (t.headers.length > 40) t.headers.length = 40;
      return t;
    }
    return new ArtifactValue(value).toData();
  } catch (e) {
    return { type: "error", message: `no preview: ${(e as Error)?.message ?? e}` };
  }
}

/** Nodes of an {@link ArtifactValue} tree kept in a card. */
export const ARTIFACT_NODES = 2000;

/** A JSON-able copy of a structured-clone value, cut after `budget.n` nodes. */
export function toJsonable(v: unknown, budget: { n: number }, seen = new Set<object>()): Json {
  if (--budget.n < 0) return "…";
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "number") return Number.isFinite(v) ? v : String(v);
  if (typeof v === "string") return v.length > 10_000 ? `${v.slice(0, 10_000)}…` : v;
  if (v === undefined) return null;
  if (typeof v === "function" || typeof v === "symbol") return `[${typeof v}]`;
  if (v === null || typeof v !== "object") return v as Json;
  if (seen.has(v)) return "[circular]";
  seen.add(v);
  try {
    if (v instanceof Date) return Number.isNaN(v.getTime()) ? "Invalid Date" : v.toISOString();
    if (v instanceof RegExp) return String(v);
    if (v instanceof Error) return { name: v.name, message: v.message };
    const bytes = bytesOf(v);
    if (bytes) return `${(v as object).constructor?.name ?? "bytes"}(${bytes.byteLength})`;
    const list = (items: Iterable<unknown>) => {
      const out: Json[] = [];
      for (const x of items) {
        if (budget.n <= 0) break;
        out.push(toJsonable(x, budget, seen));
      }
      return out;
    };
    if (v instanceof Map) return { "[Map]": list(Array.from(v, ([k, x]) => [k, x])) };
    if (v instanceof Set) return { "[Set]": list(v) };
    if (Array.isArray(v)) return list(v);
    const out: { [key: string]: Json } = {};
    for (const [k, x] of Object.entries(v)) {
      if (budget.n <= 0) break;
      out[k] = toJsonable(x, budget, seen);
    }
    return out;
  } finally {
    seen.delete(v);
  }
}

function bytesOf(v: unknown): Uint8Array | null {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

/** The image type of some bytes, from their first bytes (SVG: from the text). */
export function imageMime(b: Uint8Array): ImageData["mime"] | null {
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "image/png";
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  if (b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return "image/gif";
  if (b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45) return "image/webp";
  const head = new TextDecoder().decode(b.subarray(0, 512)).trimStart();
  if (/^(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*(<!DOCTYPE svg[^>]*>\s*)?<svg[\s>]/i.test(head)) return "image/svg+xml";
  return null;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** Base64 without `btoa` over a binary string (which costs a copy per byte on big images). */
export function toBase64(b: Uint8Array): string {
  const parts: string[] = [];
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + B64[n & 63]!;
    if (out.length > 65_536) {
      parts.push(out);
      out = "";
    }
  }
  if (i < b.length) {
    const n = (b[i]! << 16) | ((b[i + 1] ?? 0) << 8);
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + (i + 1 < b.length ? B64[(n >> 6) & 63]! : "=") + "=";
  }
  parts.push(out);
  return parts.join("");
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v) && v.length === 0) return "Array";
  if (Array.isArray(v)) return `${v.every((x) => typeof x === "number") && v.length ? "number" : v.every((x) => typeof x === "string") && v.length ? "string" : "unknown"}[]`;
  if (typeof v === "object") return (v as object).constructor?.name ?? "object";
  return typeof v;
}

// ---------------------------------------------------------------------------------------
// Card types (plugins) and the renderer the core calls

/** Helpers a card type renders with (they come from tsflow's renderer, so cards look alike). */
export interface CardHelpers {
  /** HTML of components (Markdown, Table, Chart… as data). */
  components(components: readonly ComponentData[]): string;
  /** The default card's sections: `header`, `parameters`, `artifacts`, `graph`, `error`. */
  section(name: "header" | "parameters" | "artifacts" | "graph" | "error", card: CardData): string;
  /** Escapes text for HTML. */
  escape(text: unknown): string;
}

/**
 * A card type: turns a card's data (the task's facts and the appended components) into an
 * HTML fragment. Register one with `@card({ type: myCardType })`. It runs in the task, after
 * the step; what it returns is stored, so viewing a card never runs it again.
 */
export interface CardType {
  name: string;
  /** Whether components appended to it show (default true). */
  render(card: CardData, helpers: CardHelpers): string | Promise<string>;
  /** The HTML uses charts (adds the vega bundles to the card's document). Default: it has Chart components. */
  vega?: boolean;
}

/** Declares a card type (typing only: pass it to `@card({ type })`). */
export function defineCardType(type: CardType): CardType {
  if (!type || typeof type.name !== "string" || typeof type.render !== "function") throw new TsflowError("BadFlow", "a card type needs a name and a render(card, helpers) function");
  checkCardName("card type", type.name);
  return type;
}

const TYPES = Symbol.for("tsflow.cardTypes");
const RENDERER = Symbol.for("tsflow.cardRenderer");

/** Card types registered by plugins, shared by every copy of tsflow in the process. */
export function cardTypes(): Map<string, CardType> {
  const g = globalThis as Record<symbol, Map<string, CardType> | undefined>;
  return (g[TYPES] ??= new Map());
}

/** Registers a card type (what `@card({ type })` does with a plugin object). */
export function registerCardType(type: CardType): void {
  defineCardType(type);
  cardTypes().set(type.name, type);
}

/** Turns card data into HTML; `cards/` implements it and `mod.ts` installs it. */
export interface CardRenderer {
  /** The HTML fragment of a card, and whether it draws charts. */
  render(card: CardData): Promise<{ html: string; vega: boolean }>;
  /** A self-contained HTML document around a fragment (inline CSS, scripts, vega when needed). */
  document(fragment: string, options: { title: string; vega: boolean }): Promise<string>;
}

export function installCardRenderer(renderer: CardRenderer): void {
  (globalThis as Record<symbol, CardRenderer | undefined>)[RENDERER] = renderer;
}

export function cardRenderer(): CardRenderer | undefined {
  return (globalThis as Record<symbol, CardRenderer | undefined>)[RENDERER];
}

// ---------------------------------------------------------------------------------------
// @card

/** One card of a step, as its decorator stores it. */
export interface CardSpec {
  id: string;
  type: string;
  options: Record<string, Json>;
  /** Minimum milliseconds between two live refreshes (default 1000). */
  refreshInterval: number;
}

export interface CardOptions {
  /** `default` (task facts + components), `blank` (components only), or a plugin from {@link defineCardType}. */
  type?: string | CardType;
  /** Names the card when a step has several (`current.card.get(id)`). Default: the type's name. */
  id?: string;
  /** Options handed to the card type. */
  options?: Record<string, Json>;
  /** Minimum milliseconds between live refreshes (default 1000). */
  refreshInterval?: number;
}

function checkCardName(what: string, name: string) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new TsflowError("BadFlow", `${what} '${String(name).slice(0, 80)}' is invalid: use 1 to 64 letters, digits, '-' and '_'`);
}

/** Normalises `@card` options (and `--with card:type=blank,id=x`) into a {@link CardSpec}. */
export function cardSpec(o: CardOptions | Record<string, unknown>): CardSpec {
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw new TsflowError("BadFlow", `@card takes an options object ({ type, id, options, refreshInterval }), got ${typeof o}`);
  for (const k of Object.keys(o)) if (!["type", "id", "options", "refreshInterval"].includes(k)) throw new TsflowError("BadFlow", `@card has no attribute '${k}' (valid: type, id, options, refreshInterval)`);
  const t = (o as CardOptions).type;
  let type = "default";
  if (t && typeof t === "object") {
    registerCardType(t);
    type = t.name;
  } else if (t !== undefined) type = String(t);
  checkCardName("card type", type);
  const id = o.id === undefined ? type : String(o.id);
  checkCardName("card id", id);
  const interval = Number((o as CardOptions).refreshInterval ?? 1000);
  if (!Number.isFinite(interval) || interval < 0) throw new TsflowError("BadFlow", `@card refreshInterval must be a number of milliseconds, got '${String((o as CardOptions).refreshInterval)}'`);
  const options = (o as CardOptions).options;
  return { id, type, options: options && typeof options === "object" ? (JSON.parse(JSON.stringify(options)) as Record<string, Json>) : {}, refreshInterval: interval };
}

/**
 * Attaches a card to a step: `@card()` (the default card), `@card({ type: "blank", id: "metrics" })`.
 * Repeatable: each use adds a card, ids must differ.
 */
export function card(options?: CardOptions): Decorator;
export function card<F extends (...a: any[]) => any>(method: F, context: ClassMethodDecoratorContext): F;
export function card(target: object, key: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor;
export function card(...args: unknown[]): unknown {
  const [first, second] = args;
  // `@card` without its call (as in Metaflow) means `@card()`.
  const bare = (typeof first === "function" && typeof second === "object" && second !== null && "kind" in second) || (args.length === 3 && typeof first === "object" && (typeof second === "string" || typeof second === "symbol"));
  if (bare) return (cardDecorator({}) as (...a: unknown[]) => unknown)(...args);
  return cardDecorator((first ?? {}) as CardOptions);
}

type Decorator = ReturnType<typeof stepDecoratorMerge>;

function cardDecorator(options: CardOptions): Decorator {
  const spec = cardSpec(options);
  return stepDecoratorMerge("card", (previous) => {
    const cards = ((previous?.cards as CardSpec[] | undefined) ?? []).slice();
    if (cards.some((c) => c.id === spec.id)) throw new TsflowError("BadFlow", `@card: two cards of one step have the id '${spec.id}'; give each a different { id }`);
    // Decorators apply bottom-up: put this one first so cards keep their order in the source.
    cards.unshift(spec);
    return { cards };
  });
}

/** The cards a step's decorators ask for (`@card` in code, `--with card`). */
export function cardSpecsOf(decorators: Record<string, Record<string, unknown>>): CardSpec[] {
  const d = decorators.card;
  if (!d) return [];
  const list = Array.isArray(d.cards) ? (d.cards as CardSpec[]) : [cardSpec(d)];
  return list;
}

// ---------------------------------------------------------------------------------------
// current.card

/** One card while its task runs. */
export interface CardHandle {
  readonly id: string;
  readonly type: string;
  /** The components appended so far. */
  readonly components: readonly CardComponent[];
  append(component: CardComponent): this;
  extend(components: Iterable<CardComponent>): this;
  clear(): this;
  /** Re-renders the task's cards now (at most once per `refreshInterval`; the last state always shows). */
  refresh(): void;
}

/** `current.card`: the task's cards. `append` goes to the default card (the only one, or the one without an id). */
export interface CardAccess extends CardHandle {
  /** A card by id. */
  get(id: string): CardHandle;
  /** Ids of the task's cards. */
  readonly ids: string[];
}

/** What a task feeds its card session once the step is over. */
export interface CardFinish {
  ok: boolean;
  error?: TaskError;
  startedAt: number;
  finishedAt: number;
  artifacts: CardArtifact[];
}

/**
 * The cards of one running task: collects components, renders live snapshots on `refresh()`
 * (rate-limited) and the final cards at the end, and stores them. Never throws into the step.
 */
export class CardSession implements CardAccess {
  private cards: { spec: CardSpec; components: CardComponent[]; handle: CardHandle }[];
  private lastRefresh = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private writing: Promise<unknown> = Promise.resolve();
  private warned = new Set<string>();
  /** Cards with a live snapshot stored under `<attempt>/cards/`. */
  private live = new Set<string>();
  private run?: { parameters: Record<string, Json>; graph?: CardTaskInfo["graph"] };
  readonly startedAt = Date.now();
  /** The task's artifacts with previews, set by the task once the step is over. */
  artifacts?: CardArtifact[];

  constructor(
    private spec: TaskSpec,
    private store: Datastore,
    private host: Host,
    specs: CardSpec[],
  ) {
    this.cards = specs.map((s) => {
      const entry = { spec: s, components: [] as CardComponent[], handle: undefined as unknown as CardHandle };
      entry.handle = this.handleOf(entry);
      return entry;
    });
  }

  /** Parameters and graph of the run, for the default card. */
  setRun(run: { parameters: Record<string, Json>; graph?: CardTaskInfo["graph"] }) {
    this.run = run;
  }

  get ids(): string[] {
    return this.cards.map((c) => c.spec.id);
  }

  /** The step has cards. */
  get active(): boolean {
    return this.cards.length > 0;
  }

  private warn(key: string, message: string) {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    console.warn(`[tsflow] ${message}`);
  }

  private handleOf(entry: { spec: CardSpec; components: CardComponent[] }): CardHandle {
    const session = this;
    const handle: CardHandle = {
      id: entry.spec.id,
      type: entry.spec.type,
      get components() {
        return entry.components;
      },
      append(component) {
        if (!(component instanceof CardComponent)) {
          entry.components.push(new CardError(`current.card.append() takes a card component (Markdown, Table, Image, Chart, ProgressBar, ArtifactValue, CardError), got ${describe(component)}`));
        } else entry.components.push(component);
        return this;
      },
      extend(components) {
        for (const c of components) this.append(c);
        return this;
      },
      clear() {
        entry.components.length = 0;
        return this;
      },
      refresh() {
        session.refresh();
      },
    };
    return handle;
  }

  private defaultCard(): CardHandle | undefined {
    if (this.cards.length === 1) return this.cards[0]!.handle;
    const unnamed = this.cards.filter((c) => c.spec.id === c.spec.type);
    if (unnamed.length === 1) return unnamed[0]!.handle;
    return undefined;
  }

  private get target(): CardHandle | undefined {
    const t = this.defaultCard();
    if (!t) {
      this.warn(
        "default",
        this.cards.length === 0
          ? `step '${this.spec.step}' has no @card: current.card.append() does nothing (add @card() to the step or run with --with card)`
          : `step '${this.spec.step}' has several cards (${this.ids.join(", ")}): choose one with current.card.get(id)`,
      );
    }
    return t;
  }

  get id(): string {
    return this.defaultCard()?.id ?? "";
  }
  get type(): string {
    return this.defaultCard()?.type ?? "";
  }
  get components(): readonly CardComponent[] {
    return this.defaultCard()?.components ?? [];
  }
  append(component: CardComponent): this {
    this.target?.append(component);
    return this;
  }
  extend(components: Iterable<CardComponent>): this {
    this.target?.extend(components);
    return this;
  }
  clear(): this {
    this.target?.clear();
    return this;
  }

  get(id: string): CardHandle {
    const found = this.cards.find((c) => c.spec.id === id);
    if (found) return found.handle;
    this.warn(`get:${id}`, `step '${this.spec.step}' has no card '${id}'${this.cards.length ? ` (its cards: ${this.ids.join(", ")})` : " (it has no @card)"}: what is appended to it is dropped`);
    return this.handleOf({ spec: { id, type: "missing", options: {}, refreshInterval: 0 }, components: [] });
  }

  refresh(): void {
    if (this.cards.length === 0) return;
    const interval = Math.min(...this.cards.map((c) => c.spec.refreshInterval));
    const wait = this.lastRefresh + interval - Date.now();
    if (wait <= 0) {
      this.lastRefresh = Date.now();
      this.snapshot();
    } else {
      // Rate-limited: the trailing refresh shows whatever the state is then.
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.lastRefresh = Date.now();
        this.snapshot();
      }, wait);
    }
  }

  private snapshot() {
    const info = this.info({ status: "running", artifacts: [] });
    // Writes are chained: a slow store never sees an older snapshot land after a newer one.
    this.writing = this.writing.then(() => Promise.all(this.cards.map((c) => this.store1(c, info, false)))).catch(() => {});
  }

  private info(p: { status: CardTaskInfo["status"]; artifacts: CardArtifact[]; error?: TaskError; finishedAt?: number; startedAt?: number }): CardTaskInfo {
    const s = this.spec;
    return {
      flow: s.flowName,
      runId: s.runId,
      step: s.step,
      taskId: s.taskId,
      attempt: s.attempt,
      pathspec: `${s.flowName}/${s.runId}/${s.step}/${s.taskId}`,
      status: p.status,
      startedAt: p.startedAt ?? this.startedAt,
      ...(p.finishedAt ? { finishedAt: p.finishedAt } : {}),
      ...(p.error ? { error: p.error } : {}),
      parents: s.parents,
      foreach: s.foreach,
      parameters: this.run?.parameters ?? {},
      artifacts: p.artifacts,
      ...(this.run?.graph ? { graph: this.run.graph } : {}),
    };
  }

  /** Renders and stores the final cards; resolves with their references (never rejects). */
  async finish(end: CardFinish): Promise<CardRef[]> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
    if (this.cards.length === 0) return [];
    const info = this.info({ status: end.ok ? "succeeded" : "failed", artifacts: end.artifacts, error: end.error, startedAt: end.startedAt, finishedAt: end.finishedAt });
    const refs = await Promise.all(this.cards.map((c) => this.store1(c, info, true)));
    return refs.filter((r): r is CardRef => r !== undefined);
  }

  private async store1(entry: { spec: CardSpec; components: CardComponent[] }, task: CardTaskInfo, final: boolean): Promise<CardRef | undefined> {
    const data: CardData = { version: 1, id: entry.spec.id, type: entry.spec.type, options: entry.spec.options, components: entry.components.map(safeData), task, final, renderedAt: Date.now() };
    try {
      const ref = await storeCard(this.store, this.host, data);
      // The final cards go into the task's result; a card document is only needed to replace a
      // live snapshot that readers may have seen (a task that never refreshed writes none).
      if (!final || this.live.has(entry.spec.id)) {
        await putJson(this.store, cardKey(this.spec.flowName, this.spec.runId, this.spec.step, this.spec.taskId, this.spec.attempt, entry.spec.id), ref);
        this.live.add(entry.spec.id);
      }
      return ref;
    } catch (e) {
      // The datastore failed: the task's own writes will report that; the card just goes missing.
      this.warn(`store:${entry.spec.id}`, `card '${entry.spec.id}' of ${task.pathspec} could not be stored: ${(e as Error)?.message ?? e}`);
      return undefined;
    }
  }
}

/** Renders a card (with the installed renderer) and stores its data and HTML as blobs. */
export async function storeCard(store: Datastore, host: Host, data: CardData): Promise<CardRef> {
  const renderer = cardRenderer();
  let rendered: { html: string; vega: boolean } | undefined;
  let error: string | undefined;
  if (renderer) {
    try {
      rendered = await renderer.render(data);
    } catch (e) {
      error = `card type '${data.type}' failed: ${(e as Error)?.message ?? String(e)}`;
      rendered = { html: `<div class="tf-error"><b>This card could not be rendered</b><pre>${escapeHtml(`${error}\n${(e as Error)?.stack ?? ""}`)}</pre></div>`, vega: false };
    }
  }
  const put = async (bytes: Uint8Array) => {
    const h = host.sha256();
    h.update(bytes);
    const hash = h.digest();
    await store.put(blobKey(hash), bytes, { immutable: true });
    return hash;
  };
  const [dataHash, htmlHash] = await Promise.all([put(encoder.encode(JSON.stringify(data))), rendered ? put(encoder.encode(rendered.html)) : undefined]);
  return {
    id: data.id,
    type: data.type,
    data: dataHash,
    ...(htmlHash ? { html: htmlHash, vega: rendered!.vega } : {}),
    final: data.final,
    ...(error ? { error } : {}),
    updatedAt: data.renderedAt,
  };
}

export function escapeHtml(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ---------------------------------------------------------------------------------------
// Reading cards back (viewer, CLI, client)

/**
 * The cards of one attempt: the final ones from its result (`cards` in result.json/done.json)
 * or, while it runs, the live snapshots under `<attempt>/cards/`.
 */
export async function readCardRefs(store: Datastore, flow: string, run: string, step: string, task: string, attempt: number, final?: CardRef[]): Promise<CardRef[]> {
  if (final) return final;
  const names = (await store.list(cardsPrefix(flow, run, step, task, attempt))).filter((n) => n.endsWith(".json"));
  const refs = await Promise.all(names.map((n) => getJson<CardRef>(store, cardKey(flow, run, step, task, attempt, n.slice(0, -5))).catch(() => null)));
  return refs.filter((r): r is CardRef => r !== null && typeof r.data === "string");
}

async function readBlob(store: Datastore, host: Host, hash: string, what: string): Promise<Uint8Array> {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new TsflowError("CorruptArtifact", `${what}: invalid blob hash '${hash.slice(0, 80)}'`);
  const bytes = await store.get(blobKey(hash));
  if (!bytes) throw new TsflowError("NotFound", `${what}: blob ${hash} is missing from ${store.url}`);
  const h = host.sha256();
  h.update(bytes);
  if (h.digest() !== hash) throw new TsflowError("CorruptArtifact", `${what}: blob ${hash} is corrupt (its content has another hash)`);
  return bytes;
}

/** A stored card's data. */
export async function loadCardData(store: Datastore, host: Host, ref: CardRef): Promise<CardData> {
  return JSON.parse(new TextDecoder().decode(await readBlob(store, host, ref.data, `card '${ref.id}'`))) as CardData;
}

/** A stored card's HTML fragment (rendered now from its data when it was stored without HTML). */
export async function loadCardFragment(store: Datastore, host: Host, ref: CardRef): Promise<{ html: string; vega: boolean }> {
  if (ref.html) return { html: new TextDecoder().decode(await readBlob(store, host, ref.html, `card '${ref.id}'`)), vega: ref.vega === true };
  const renderer = cardRenderer();
  if (!renderer) throw new TsflowError("NotFound", `card '${ref.id}' was stored without HTML and no card renderer is installed (import "tsflow" installs it)`);
  return renderer.render(await loadCardData(store, host, ref));
}

/** A stored card as a self-contained HTML document (renders offline: vega inlined when needed). */
export async function loadCardDocument(store: Datastore, host: Host, ref: CardRef, title: string): Promise<string> {
  const renderer = cardRenderer();
  if (!renderer) throw new TsflowError("NotFound", `no card renderer is installed (import "tsflow" installs it): cannot build card '${ref.id}'`);
  const { html, vega } = await loadCardFragment(store, host, ref);
  return renderer.document(html, { title, vega });
}
