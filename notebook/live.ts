/**
 * A live run handle in a notebook: one progress line that updates in place while the run goes
 * on (the kernel's `display_id` updates), then the finished run's line. Elsewhere (`console.log`)
 * the handle is that same line, once.
 */
import { denoJupyter } from "../runner/notebook.ts";
import type { RunHandle } from "../runner/run.ts";

interface JupyterDisplay {
  display(bundle: Record<string, unknown>, options: { raw: true; display_id?: string; update?: boolean }): Promise<void>;
}

/** `PetsFlow/12 running · 3 of 5 tasks done · running: a, b`. */
export function progressLine(handle: RunHandle): string {
  const p = handle.progress;
  const id = handle.runId ? `${p.flow}/${handle.runId}` : p.flow;
  const failed = p.failed ? ` · ${p.failed} failed` : "";
  const running = p.running.length ? ` · running: ${[...new Set(p.running)].join(", ")}` : "";
  const took = p.durationMs !== undefined ? ` in ${(p.durationMs / 1000).toFixed(1)} s` : "";
  return `${id} ${handle.status}${took} · ${p.finished} of ${p.started} tasks done${failed}${running}`;
}

const COLORS: Record<string, string> = { succeeded: "#2e9d57", failed: "#d0453a", running: "#2f6fd6", starting: "#9aa3ad" };
function bundle(handle: RunHandle): Record<string, unknown> {
  const text = progressLine(handle);
  const esc = text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return { "text/plain": text, "text/html": `<div style="font:13px system-ui,sans-serif"><span style="display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:6px;background:${COLORS[handle.status] ?? "#9aa3ad"}"></span>${esc}</div>` };
}

/**
 * The handle's mimebundle. In Deno's kernel the line is displayed with an id and updated on
 * every event (at most a few times a second); the cell's own result is then left empty.
 */
export async function liveDisplay(handle: RunHandle, beforeSettle: (last: () => Promise<void>) => void): Promise<Record<string, unknown>> {
  const jupyter = denoJupyter<JupyterDisplay>();
  if (!jupyter?.display || handle.status === "succeeded" || handle.status === "failed") return bundle(handle);
  const id = `tsflow-${Math.random().toString(36).slice(2)}`;
  await jupyter.display(bundle(handle), { raw: true, display_id: id });
  let last = 0;
  let pending: ReturnType<typeof setTimeout> | undefined;
  const update = () => {
    pending = undefined;
    last = Date.now();
    return jupyter.display(bundle(handle), { raw: true, display_id: id, update: true });
  };
  // The final line is written before the handle's wait() resolves (see startFlow).
  beforeSettle(async () => {
    if (pending) clearTimeout(pending);
    await update();
  });
  void (async () => {
    for await (const _ of handle) {
      if (pending || handle.status === "succeeded" || handle.status === "failed") continue;
      const wait = 250 - (Date.now() - last);
      if (wait <= 0) update().catch(() => {});
      else pending = setTimeout(() => update().catch(() => {}), wait);
    }
  })();
  return {};
}
