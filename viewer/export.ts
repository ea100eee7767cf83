/**
 * A static, self-contained copy of one run: `index.html` (the run page), one page per task
 * (and per attempt), the two assets, `data/run.json`, and the artifacts its pages link to.
 * Links are relative, so the folder opens from disk or any static host. Writing goes through
 * `write`, so this file stays portable (the CLI passes node:fs).
 */
import { runKey } from "../core/_layout.ts";
import { loadCardDocument } from "../core/cards.ts";
import { TsflowError } from "../core/errors.ts";
import type { ArtifactRef, Bytes, Datastore, Host } from "../core/types.ts";
import { artifactResponse, rawStream } from "./app.ts";
import { CSS, JS } from "./assets.ts";
import { findCard } from "./cards.ts";
import { getRun, getTasks, validName } from "./data.ts";
import type { Links } from "./html.ts";
import { runPage, taskPage } from "./pages.ts";
import { PREVIEW_MAX } from "./preview.ts";

/** Raw artifacts above this size are left out of an export (the page says so by having no link). */
export const EXPORT_BLOB_MAX = 64 * 1024 * 1024;

export interface ExportResult {
  files: number;
  bytes: number;
}

export async function exportRun(store: Datastore, host: Host, flow: string, runId: string, write: (path: string, data: Bytes | AsyncIterable<Bytes>) => Promise<void>): Promise<ExportResult> {
  if (!validName(flow) || !validName(runId)) throw new TsflowError("BadOption", `invalid run pathspec '${flow}/${runId}': give Flow/runId`);
  const run = await getRun(store, flow, runId);
  if (!run) throw new TsflowError("NotFound", `run ${flow}/${runId} is not in ${store.url}: list runs with tsflow view`);
  const tasks = await getTasks(store, run);
  // Tasks with several attempts get a page per attempt; a link to the attempt of a task that
  // has only one (a timeline bar) is the task's page, so every link of the copy has its file.
  const retried = new Set(tasks.filter((t) => t.attempts.length > 1).map((t) => `${t.step}/${t.task}`));
  const wanted = new Map<string, { ref: ArtifactRef; name: string; format: string }>();
  const cards = new Map<string, { step: string; task: string; attempt: number; id: string }>();
  const ext: Record<string, string> = { raw: "tsf", json: "json", bytes: "bin", image: "img" };
  const links: Links = {
    run: () => "index.html",
    task: (_f, _r, s, t, a) => `task-${s}-${t}${a === undefined || !retried.has(`${s}/${t}`) ? "" : `-a${a}`}.html`,
    artifact(_f, _r, _s, _t, name, ref, format) {
      if (format === "raw" ? ref.size > EXPORT_BLOB_MAX : ref.size > PREVIEW_MAX) return undefined;
      const path = `data/${ref.hash}.${ext[format]}`;
      wanted.set(path, { ref, name, format });
      return path;
    },
    asset: (name) => `assets/${name}`,
    card(_f, _r, s, t, a, id) {
      const path = `cards/${s}-${t}-${a}-${id}.html`;
      cards.set(path, { step: s, task: t, attempt: a, id });
      return path;
    },
  };
  const enc = new TextEncoder();
  let files = 0;
  let bytes = 0;
  const put = async (path: string, data: Bytes | string) => {
    const b = typeof data === "string" ? enc.encode(data) : data;
    await write(path, b);
    files++;
    bytes += b.length;
  };
  await put("assets/app.css", CSS);
  await put("assets/app.js", JS);
  await put("data/run.json", (await store.get(runKey(flow, runId))) ?? new Uint8Array());
  await put("index.html", (await runPage(store, links, flow, runId, { allTasks: true }))!);
  for (const t of tasks) {
    await put(links.task(flow, runId, t.step, t.task), (await taskPage(store, host, links, flow, runId, t.step, t.task)) ?? "");
    if (t.attempts.length > 1) for (const a of t.attempts) await put(links.task(flow, runId, t.step, t.task, a.attempt), (await taskPage(store, host, links, flow, runId, t.step, t.task, a.attempt)) ?? "");
  }
  // Each card as its own self-contained document, shown by the task pages in sandboxed frames.
  for (const [path, c] of cards) {
    const ref = await findCard(store, flow, runId, c.step, c.task, c.attempt, c.id);
    if (ref) await put(path, await loadCardDocument(store, host, ref, `${flow}/${runId}/${c.step}/${c.task} · ${c.id}`));
  }
  for (const [path, { ref, name, format }] of wanted) {
    if (format === "raw") {
      const stream = await rawStream(store, ref);
      if (stream) {
        await write(path, streamChunks(stream));
        files++;
        bytes += ref.size;
      }
      continue;
    }
    const res = await artifactResponse(store, host, ref, name, format);
    if (res.ok) await put(path, new Uint8Array(await res.arrayBuffer()));
  }
  return { files, bytes };
}

async function* streamChunks(stream: ReadableStream<Uint8Array>): AsyncGenerator<Bytes> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}
