/** What the inspection commands share: the client over the chosen datastore, and formatting. */
import { createClient } from "../../core/client.ts";
import nodeHost from "../../plugins/host/node.ts";
import { openDatastore } from "../../runner/stores.ts";

export const datastoreArg = {
  datastore: { type: "string", description: "Where runs are stored: a path or s3://bucket/prefix (default: .tsflow found upwards)" },
} as const;

/** A client over `--datastore` (or the default), seeing every namespace: the terminal shows all runs. */
export async function cliClient(datastore: string | undefined) {
  const store = await openDatastore(datastore);
  const client = createClient(store, nodeHost());
  client.namespace(null);
  return { store, client };
}

/** `2026-11-29 03:12:05` in local time. */
export function formatTime(d: Date | undefined): string {
  if (!d) return "-";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "-";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return m < 60 ? `${m}m${Math.round((ms % 60_000) / 1000)}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

/** Rows as aligned columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

/** Text safe for a terminal: control characters (escape sequences from artifacts) shown escaped. */
export function printable(s: string): string {
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
