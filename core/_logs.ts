/**
 * Task logs: one writer per attempt appends numbered chunks, readers concatenate them.
 *
 *   <attempt>/stdout/00000001, <attempt>/stdout/00000002, …   (and stderr/)
 *
 * No datastore can append in place (S3 cannot), and rewriting the whole log every second costs
 * O(output × seconds) bytes; a new chunk per flush costs O(output), keeps the writer's memory to
 * what it has not flushed yet, and lets a reader take just the chunks it needs (the tail) while
 * the task still runs. Runs stored before chunks kept each log as one object at
 * `<attempt>/stdout`; readers still read those.
 */
import { attemptKey, logChunkKey, logPrefix } from "./_layout.ts";
import type { Bytes, Datastore } from "./types.ts";

export type LogStream = "stdout" | "stderr";

/** Where one attempt's logs live. */
export interface AttemptRef {
  flow: string;
  run: string;
  step: string;
  task: string;
  attempt: number;
}

const FLUSH_MS = 1000;
/** A chunk is written at once when this much is pending, whatever the clock says. */
const CHUNK_BYTES = 4 * 1024 * 1024;

/** Appends one attempt's output to the datastore in chunks while the task runs. */
export class LogWriter {
  private pending: Record<LogStream, Bytes[]> = { stdout: [], stderr: [] };
  private pendingBytes: Record<LogStream, number> = { stdout: 0, stderr: 0 };
  private seq: Record<LogStream, number> = { stdout: 0, stderr: 0 };
  private timer: ReturnType<typeof setInterval> | undefined;
  private writing: Promise<void> = Promise.resolve();
  /** Bytes written to the datastore, for tests and benchmarks. */
  written = 0;

  /** Chunks written so far to `stream` (numbered 1…n): a reader that knows n need not list them. */
  chunks(stream: LogStream): number {
    return this.seq[stream];
  }

  constructor(
    private readonly store: Datastore,
    private readonly at: AttemptRef,
    private readonly options: { flushMs?: number; onError?: (e: unknown) => void } = {},
  ) {}

  add(stream: LogStream, chunk: Bytes): void {
    if (chunk.byteLength === 0) return;
    // The caller may reuse its buffer (a stream's chunk): keep a copy.
    this.pending[stream].push(chunk.slice());
    this.pendingBytes[stream] += chunk.byteLength;
    if (this.pendingBytes[stream] >= CHUNK_BYTES) void this.flush();
    else this.timer ??= setInterval(() => void this.flush(), this.options.flushMs ?? FLUSH_MS);
  }

  /** Writes what is pending as one new chunk per stream. */
  flush(): Promise<void> {
    this.writing = this.writing.then(async () => {
      for (const stream of ["stdout", "stderr"] as const) {
        const data = this.pending[stream];
        if (data.length === 0) continue;
        const size = this.pendingBytes[stream];
        this.pending[stream] = [];
        this.pendingBytes[stream] = 0;
        const seq = this.seq[stream] + 1;
        try {
          await this.store.put(logChunkKey(this.at.flow, this.at.run, this.at.step, this.at.task, this.at.attempt, stream, seq), data);
          this.seq[stream] = seq;
          this.written += size;
        } catch (e) {
          // Kept for the next flush (the store may be back by then), in order.
          this.pending[stream] = [...data, ...this.pending[stream]];
          this.pendingBytes[stream] += size;
          this.options.onError?.(e);
        }
      }
    });
    return this.writing;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}

/** One stored piece of a log, in order. `size` is `undefined` when the store cannot tell it cheaply. */
export interface LogPart {
  key: string;
  size: number | undefined;
}

/** The pieces of one attempt's log in order; `[]` when nothing was stored. */
async function logParts(store: Datastore, at: AttemptRef, stream: LogStream): Promise<LogPart[]> {
  const prefix = logPrefix(at.flow, at.run, at.step, at.task, at.attempt, stream);
  const names = (await store.list(prefix)).filter((n) => /^\d+$/.test(n)).sort();
  let keys = names.map((n) => prefix + n);
  if (keys.length === 0) {
    const legacy = attemptKey(at.flow, at.run, at.step, at.task, at.attempt, stream);
    keys = (await store.has(legacy)) ? [legacy] : [];
  }
  return Promise.all(keys.map(async (key) => ({ key, size: store.size ? ((await store.size(key)) ?? 0) : undefined })));
}

/** The log's pieces as they are stored, one read at a time (bounded memory, any length). */
export async function* readLogChunks(store: Datastore, at: AttemptRef, stream: LogStream): AsyncGenerator<Bytes> {
  for (const part of await logParts(store, at, stream)) {
    const bytes = await store.get(part.key);
    if (bytes) yield bytes;
  }
}

/** The whole log (for short logs and tests; use {@link readLogChunks} or {@link readLogTail} for big ones). */
export async function readLog(store: Datastore, at: AttemptRef, stream: LogStream): Promise<Bytes | null> {
  const parts: Bytes[] = [];
  let any = false;
  for await (const chunk of readLogChunks(store, at, stream)) {
    parts.push(chunk);
    any = true;
  }
  if (!any && (await logParts(store, at, stream)).length === 0) return null;
  return concat(parts);
}

/**
 * The last `max` bytes of a log and its total size, reading only the chunks the tail needs when
 * the store knows sizes (otherwise chunks are read from the end until `max` bytes are found,
 * and the size counts only those). `null` when no log was stored.
 */
export async function readLogTail(store: Datastore, at: AttemptRef, stream: LogStream, max: number): Promise<{ bytes: Bytes; size: number; truncated: boolean } | null> {
  const parts = await logParts(store, at, stream);
  if (parts.length === 0) return null;
  const known = parts.every((p) => p.size !== undefined);
  const total = known ? parts.reduce((a, p) => a + p.size!, 0) : undefined;
  const taken: Bytes[] = [];
  let have = 0;
  let readAll = true;
  for (let i = parts.length - 1; i >= 0; i--) {
    if (have >= max) {
      readAll = false;
      break;
    }
    const bytes = await store.get(parts[i]!.key);
    if (!bytes) continue;
    taken.unshift(bytes);
    have += bytes.byteLength;
  }
  const all = concat(taken);
  const truncated = all.byteLength > max || !readAll;
  return { bytes: all.byteLength > max ? all.subarray(all.byteLength - max) : all, size: total ?? all.byteLength, truncated };
}

/** Total size of a log: the sum of its chunks' sizes (each read when the store cannot tell). */
export async function logSize(store: Datastore, at: AttemptRef, stream: LogStream): Promise<number | null> {
  const parts = await logParts(store, at, stream);
  if (parts.length === 0) return null;
  let total = 0;
  for (const p of parts) total += p.size ?? (await store.get(p.key))?.byteLength ?? 0;
  return total;
}

function concat(parts: Bytes[]): Bytes {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Follows a log being written by another process (a Batch job): each poll returns only the new chunks. */
export class LogFollower {
  private next: Record<LogStream, number> = { stdout: 1, stderr: 1 };

  constructor(
    private readonly store: Datastore,
    private readonly at: AttemptRef,
  ) {}

  async poll(stream: LogStream): Promise<Bytes[]> {
    const prefix = logPrefix(this.at.flow, this.at.run, this.at.step, this.at.task, this.at.attempt, stream);
    const seqs = (await this.store.list(prefix))
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .filter((n) => n >= this.next[stream])
      .sort((a, b) => a - b);
    const out: Bytes[] = [];
    for (const seq of seqs) {
      // Chunks are written in order; stop at a gap so nothing is skipped.
      if (seq !== this.next[stream]) break;
      const bytes = await this.store.get(prefix + String(seq).padStart(8, "0"));
      if (!bytes) break;
      out.push(bytes);
      this.next[stream] = seq + 1;
    }
    return out;
  }

  /** The chunks not returned yet up to chunk `last`, read without listing: the writer said how many it wrote. */
  async readUpTo(stream: LogStream, last: number): Promise<Bytes[]> {
    const out: Bytes[] = [];
    for (let seq = this.next[stream]; seq <= last; seq++) {
      const bytes = await this.store.get(logChunkKey(this.at.flow, this.at.run, this.at.step, this.at.task, this.at.attempt, stream, seq));
      if (!bytes) break;
      out.push(bytes);
      this.next[stream] = seq + 1;
    }
    return out;
  }
}
