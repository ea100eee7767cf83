/**
 * `tsflow view` as a Hono app over a Datastore and a Host: web standards only, so it runs on
 * Node (cli/commands/view.ts), Bun or Deno, and tests drive it with `app.request()`.
 *
 * Safe by construction: only GET and HEAD are answered; every path segment is checked against
 * a strict pattern (and `checkKey`) before it reaches a key; all user content is escaped; a
 * Content-Security-Policy forbids inline script and every origin but our own.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { readStream } from "../core/_datastore.ts";
import { JsonLimitError, jsonText } from "../core/_json.ts";
import { isTsflowError } from "../core/errors.ts";
import { inlineBytes, loadArtifact } from "../core/artifacts.ts";
import { blobKey } from "../core/_layout.ts";
import type { ArtifactRef, Datastore, Host } from "../core/types.ts";
import { accessControl } from "./_access.ts";
import { CARD_HEADERS } from "../cards/document.ts";
import { loadCardDocument, loadCardFragment } from "../core/cards.ts";
import { findCard } from "./cards.ts";
import { CSS, JS } from "./assets.ts";
import { fingerprint, setViewerHost, validArtifact, validName } from "./data.ts";
import { type Links, qs } from "./html.ts";
import { flowsPage, runPage, runsPage, taskArtifacts, taskPage } from "./pages.ts";
import { bytesOf, imageType, PREVIEW_MAX } from "./preview.ts";

export interface ViewerOptions {
  store: Datastore;
  host: Host;
  /**
   * `Host` headers to answer (`127.0.0.1:8324`, `localhost:8324`); others get 403. Set when
   * bound to loopback, so a web page whose DNS name is re-pointed at 127.0.0.1 (DNS rebinding)
   * cannot read runs through the visitor's browser. Unset: any Host.
   */
  allowedHosts?: string[];
  /**
   * Access token every request must carry (`?token=` once, then an HttpOnly cookie; or
   * `Authorization: Bearer`). Without it every route answers 401 before reading anything.
   * Set whenever the viewer is reachable beyond loopback.
   */
  token?: string;
  /** What one request, and all requests together, may make the viewer load. */
  limits?: ViewerLimits;
}

export interface ViewerLimits {
  /** Most tasks whose records a run page reads (default 50,000); bigger runs show their listing. */
  runTasks?: number;
  /**
   * Requests that read the datastore at once (default 4); more wait their turn. Each page is
   * bounded, so this bounds the whole process: 20 visitors of the biggest page cost 4 pages.
   */
  concurrent?: number;
}

export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const e = encodeURIComponent;
export const serverLinks: Links = {
  home: () => "/",
  runs: (q) => `/runs${qs(q)}`,
  run: (f, r, q) => `/runs/${e(f)}/${e(r)}${qs(q)}`,
  task: (f, r, s, t, a) => `/runs/${e(f)}/${e(r)}/${e(s)}/${e(t)}${a === undefined ? "" : `?attempt=${a}`}`,
  artifact: (f, r, s, t, name, _ref, format) => `/artifacts/${e(f)}/${e(r)}/${e(s)}/${e(t)}/${e(name)}?format=${format}`,
  asset: (name) => `/assets/${name}`,
  live: (f, r, s, t) => (s && t ? `/api/live/${e(f)}/${e(r)}/${e(s)}/${e(t)}` : `/api/live/${e(f)}/${e(r)}`),
  card: (f, r, s, t, a, id) => `/cards/${e(f)}/${e(r)}/${e(s)}/${e(t)}/${e(id)}?attempt=${a}`,
  cardLive: (f, r, s, t, a, id) => `/api/cards/${e(f)}/${e(r)}/${e(s)}/${e(t)}/${e(id)}?attempt=${a}`,
};

const NAMES = ["flow", "run", "step", "task"] as const;

export function createViewerApp({ store, host, allowedHosts, token, limits = {} }: ViewerOptions): Hono {
  const app = new Hono();
  // Run status through the same rule as the client, dead orchestrators on this machine included.
  setViewerHost(host);

  app.use("*", async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") return c.text("the viewer is read-only", 405, { Allow: "GET, HEAD" });
    await next();
    // A card document brings its own, stricter policy (sandboxed, framable by the viewer only).
    if (c.res.headers.has("Content-Security-Policy")) return;
    c.header("Content-Security-Policy", CSP);
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Frame-Options", "DENY");
  });
  // Before every route, including ones added after this line: nothing is read for a refused request.
  app.use("*", accessControl({ allowedHosts, token }));
  app.use("*", oneAtATime(limits.concurrent ?? 4));

  // Every named segment is validated once, before any handler touches the datastore.
  const checked = (handler: (c: any, p: Record<(typeof NAMES)[number] | "name", string>) => Promise<Response> | Response) => (c: any) => {
    const p = c.req.param() as Record<string, string>;
    for (const n of NAMES) if (n in p && !validName(p[n])) return c.text(`invalid ${n} name`, 400);
    if ("name" in p && !validArtifact(p.name)) return c.text("invalid artifact name", 400);
    return handler(c, p as Record<(typeof NAMES)[number] | "name", string>);
  };
  const optName = (v: string | undefined) => (v === undefined || v === "" ? undefined : validName(v) ? v : null);
  const attemptOf = (v: string | undefined) => (v === undefined || v === "" ? undefined : /^\d{1,4}$/.test(v) ? Number(v) : null);

  app.get("/assets/app.css", (c) => c.body(CSS, 200, { "Content-Type": "text/css; charset=utf-8", "Cache-Control": "max-age=300" }));
  app.get("/assets/app.js", (c) => c.body(JS, 200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "max-age=300" }));

  app.get("/favicon.ico", (c) => c.body(null, 204));
  app.get("/", async (c) => c.html(await flowsPage(store, serverLinks)));

  app.get("/runs", async (c) => {
    const flow = optName(c.req.query("flow"));
    const status = c.req.query("status") || undefined;
    if (flow === null || (status && !["running", "succeeded", "failed", "abandoned"].includes(status))) return c.text("invalid filter", 400);
    const page = Number(c.req.query("page") ?? 1);
    return c.html(await runsPage(store, serverLinks, { flow, status, tag: c.req.query("tag") || undefined, page: Number.isInteger(page) && page > 0 ? page : 1 }));
  });

  app.get(
    "/runs/:flow/:run",
    checked(async (c, p) => {
      const step = optName(c.req.query("step"));
      const tp = Number(c.req.query("tp") ?? 1);
      if (step === null) return c.text("invalid step name", 400);
      const html = await runPage(store, serverLinks, p.flow, p.run, { step, taskPage: Number.isInteger(tp) && tp > 0 ? tp : 1, live: true, maxTasks: limits.runTasks });
      return html ? c.html(html) : c.text("no such run", 404);
    }),
  );

  app.get(
    "/runs/:flow/:run/:step/:task",
    checked(async (c, p) => {
      const attempt = attemptOf(c.req.query("attempt"));
      if (attempt === null) return c.text("invalid attempt", 400);
      const html = await taskPage(store, host, serverLinks, p.flow, p.run, p.step, p.task, attempt, true);
      return html ? c.html(html) : c.text("no such task", 404);
    }),
  );

  app.get(
    "/artifacts/:flow/:run/:step/:task/:name",
    checked(async (c, p) => {
      const attempt = attemptOf(c.req.query("attempt"));
      if (attempt === null) return c.text("invalid attempt", 400);
      const refs = await taskArtifacts(store, p.flow, p.run, p.step, p.task, attempt);
      // Own names only: `constructor` or `__proto__` are not artifacts.
      const ref = Object.hasOwn(refs, p.name) ? refs[p.name] : undefined;
      if (!ref || typeof ref.hash !== "string") return c.text("no such artifact", 404);
      return artifactResponse(store, host, ref, p.name, c.req.query("format") ?? "raw");
    }),
  );

  app.get(
    "/api/live/:flow/:run",
    checked(async (c, p) => c.json(await fingerprint(store, p.flow, p.run), 200, { "Cache-Control": "no-store" })),
  );
  app.get(
    "/api/live/:flow/:run/:step/:task",
    checked(async (c, p) => c.json(await fingerprint(store, p.flow, p.run, p.step, p.task), 200, { "Cache-Control": "no-store" })),
  );

  // A card: its self-contained document (for the sandboxed frame), or its fragment as JSON (live
  // updates, handed to the frame by the page's script).
  const card = async (c: any, p: Record<string, string>) => {
    const attempt = attemptOf(c.req.query("attempt"));
    if (attempt === null || !validCardId(p.id)) return { error: c.text("invalid attempt or card id", 400) };
    const ref = await findCard(store, p.flow!, p.run!, p.step!, p.task!, attempt, p.id!);
    return ref ? { ref } : { error: c.text("no such card", 404) };
  };
  app.get(
    "/cards/:flow/:run/:step/:task/:id",
    checked(async (c, p) => {
      const found = await card(c, p);
      if (!found.ref) return found.error;
      const html = await loadCardDocument(store, host, found.ref, `${p.flow}/${p.run}/${p.step}/${p.task} · ${found.ref.id}`);
      return c.body(html, 200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", ...CARD_HEADERS });
    }),
  );
  app.get(
    "/api/cards/:flow/:run/:step/:task/:id",
    checked(async (c, p) => {
      const found = await card(c, p);
      if (!found.ref) return found.error;
      const { html, vega } = await loadCardFragment(store, host, found.ref);
      return c.json({ id: found.ref.id, version: found.ref.html ?? found.ref.data, final: found.ref.final, vega, html }, 200, { "Cache-Control": "no-store" });
    }),
  );

  app.notFound((c) => c.text("not found", 404));
  app.onError((err, c) => {
    if (isTsflowError(err) && err.code === "TooLarge") return c.text(`the viewer will not load this: ${err.message}`, 413);
    // A damaged record is the datastore's state, not the viewer's failure: say which file.
    if (isTsflowError(err) && err.code === "CorruptMetadata") return c.text(`the viewer cannot show this: ${err.message}`, 422);
    return c.text(`the viewer could not read this page: ${err.message}`, 500);
  });
  return app;
}

/** At most `n` requests past this point at once; the rest wait in order of arrival. */
function oneAtATime(n: number): MiddlewareHandler {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (c, next) => {
    if (c.req.path.startsWith("/assets/")) return next();
    if (running >= n) await new Promise<void>((go) => waiting.push(go));
    else running++;
    try {
      await next();
    } finally {
      const go = waiting.shift();
      if (go) go();
      else running--;
    }
  };
}

/** What a JSON download may cost: values walked and characters written. */
export const JSON_MAX = { values: 2_000_000, chars: 64 << 20 };

/**
 * An artifact as a download: `raw` streams the serialized value (any size, never loaded whole;
 * a gzipped blob is inflated on the way, no further than its serialized size); `json`, `bytes`
 * and `image` decode it, so they load at most `PREVIEW_MAX * 64` bytes, by the blob's real size.
 */
export async function artifactResponse(store: Datastore, host: Host, ref: ArtifactRef, name: string, format: string): Promise<Response> {
  // Any artifact name is allowed; the file name keeps only safe characters (no header injection).
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 100) || "artifact";
  const disposition = (ext: string) => ({ "Content-Disposition": `attachment; filename="${safe}.${ext}"; filename*=UTF-8''${encodeURIComponent(name)}.${ext}` });
  if (format === "raw") {
    const body = await rawStream(store, ref);
    if (!body) return new Response("the artifact's blob is missing", { status: 404 });
    // Only a length the store measured is announced: `ref.size` is what done.json claims.
    const length = typeof ref.inline === "string" ? inlineBytes(ref.inline).byteLength : ref.gzipped === undefined && store.size ? await store.size(blobKey(ref.hash)) : null;
    return new Response(body, { headers: { "Content-Type": "application/octet-stream", ...(length === null ? {} : { "Content-Length": String(length) }), ...disposition("tsf") } });
  }
  if (!["json", "bytes", "image"].includes(format)) return new Response("unknown format (raw, json, bytes, image)", { status: 400 });
  const max = PREVIEW_MAX * 64;
  if (ref.size > max) return new Response(`artifact '${name}' is too large to convert (${ref.size} bytes): download format=raw`, { status: 413 });
  const value = await loadArtifact(store, host, ref, name, "", { maxBytes: max });
  const bytes = bytesOf(value);
  if (format === "json") {
    let text: string;
    try {
      text = jsonText(value, { indent: 2, maxValues: JSON_MAX.values, maxChars: JSON_MAX.chars });
    } catch (e) {
      if (e instanceof JsonLimitError) return new Response(`artifact '${name}' is too large to show as JSON (${e.message}): download format=raw`, { status: 413 });
      throw e;
    }
    return new Response(text, { headers: { "Content-Type": "application/json; charset=utf-8", ...disposition("json") } });
  }
  if (!bytes) return new Response(`artifact '${name}' is not binary`, { status: 400 });
  const img = imageType(bytes);
  if (format === "image") {
    if (!img) return new Response(`artifact '${name}' is not a PNG or JPEG image`, { status: 400 });
    return new Response(bytes.slice(), { headers: { "Content-Type": img } });
  }
  return new Response(bytes.slice(), { headers: { "Content-Type": "application/octet-stream", ...disposition("bin") } });
}

const validCardId = (s: string | undefined): s is string => typeof s === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(s);

/**
 * The serialized bytes of an artifact as a stream: the blob as stored, or inflated when stored
 * gzipped (a download of gzip bytes would not `deserialize`), cut off past `ref.size`.
 */
export async function rawStream(store: Datastore, ref: ArtifactRef): Promise<ReadableStream<Uint8Array> | null> {
  // A tiny value is in its reference (no blob): its serialized bytes are rebuilt from it.
  if (typeof ref.inline === "string") {
    const bytes = inlineBytes(ref.inline);
    return new ReadableStream<Uint8Array>({
      start(ctrl) {
        ctrl.enqueue(bytes);
        ctrl.close();
      },
    });
  }
  const stream = await readStream(store, blobKey(ref.hash));
  if (!stream) return null;
  const iter = stream[Symbol.asyncIterator]();
  const body = new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      const { value, done } = await iter.next();
      if (done) ctrl.close();
      else ctrl.enqueue(value);
    },
    cancel: () => void iter.return?.(),
  });
  if (ref.gzipped === undefined) return body;
  let sent = 0;
  const cap = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, ctrl) {
      sent += chunk.byteLength;
      if (sent > ref.size) ctrl.error(new Error(`the gzipped blob ${ref.hash} inflates past its ${ref.size} bytes`));
      else ctrl.enqueue(chunk);
    },
  });
  return body.pipeThrough(new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>).pipeThrough(cap);
}
