/** What the inspection commands share: the client over the chosen datastore, and formatting. */
import { printable } from "../_terminal.ts";
import { getJson } from "../../core/_datastore.ts";
import { attemptKey } from "../../core/_layout.ts";
import { createClient, type Task } from "../../core/client.ts";
import { ERROR_CODES } from "../../core/errors.ts";
import type { Datastore, TaskError, TaskResult } from "../../core/types.ts";
import nodeHost from "../../plugins/host/node.ts";
import { openDatastore } from "../../runner/stores.ts";
import { userFrames } from "../reporter.ts";

export const datastoreArg = {
  datastore: { type: "string", description: "Where runs are stored: a path, s3://bucket/prefix or a datastore plugin file (./my-store.ts[:options]); default: .tsflow found upwards" },
} as const;

/**
 * A client over `--datastore` (or the default). Commands that name a run see every namespace;
 * listings (`runs`) pass `allNamespaces: false` to follow the client's rule (your own runs).
 */
export async function cliClient(datastore: string | undefined, options: { allNamespaces?: boolean } = {}) {
  const store = await openDatastore(datastore);
  const client = createClient(store, nodeHost());
  if (options.allNamespaces !== false) client.namespace(null);
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

export { printable };

/** English count: `1 task`, `2 tasks`. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * A task's error as a Metaflow user reads it at the end of a failed task's stderr: the type and
 * message, then the frames of the user's code (tsflow's own errors say everything in their
 * message, so they get none).
 */
export function formatTaskError(err: TaskError, indent = ""): string {
  const frames = err.stack && !TSFLOW_CODES.has(err.type) ? userFrames(err.stack) : [];
  return [`${indent}${err.type}: ${printable(err.message)}`, ...frames.map((f) => `${indent}    ${printable(f)}`)].join("\n");
}

const TSFLOW_CODES = new Set<string>(ERROR_CODES);

/** The error of one attempt of a failed task: its result record, else the run's first failure. */
export async function attemptError(store: Datastore, task: Task, attempt: number): Promise<TaskError | undefined> {
  if (task.successful && attempt === task.attempt) return undefined;
  const run = task.step.run;
  const result = await getJson<TaskResult>(store, attemptKey(run.flow, run.id, task.step.name, task.id, attempt, "result.json")).catch(() => null);
  if (result) return result.ok ? undefined : result.error;
  return attempt === task.attempt ? task.exception : undefined;
}
