/**
 * The warm-worker protocol, shared by the process executor and the worker it starts.
 *
 * It needs nothing but a byte pipe (stdin, stdout, stderr), so it works the same for a local
 * child process, `docker run -i` or `ssh host tsflow __worker`, on Node, Bun and Deno.
 * Commands go in on stdin as JSON lines. The worker's stdout and stderr carry the user's
 * output; control messages are embedded in them behind a random per-worker nonce that user
 * output cannot guess, and the end of each task is marked on both streams, so every byte a
 * task printed is attributed to that task before it is reported done.
 */
export const MARK = "\u001e";

/** Commands from the executor to the worker. */
export type WorkerCommand = { type: "load"; flowFile: string; exportName?: string; flowName?: string; module?: string } | { type: "task"; spec: import("../../core/types.ts").TaskSpec };

/** Control messages from the worker (on stdout). */
export type WorkerMessage =
  | { type: "ready"; pid: number }
  | { type: "loaded"; error?: import("../../core/types.ts").TaskError }
  /** The flow is loaded and the step is about to run: `@timeout` counts from here (sent only then). */
  | { type: "started" }
  | { type: "done"; result?: import("../../core/types.ts").TaskResult; error?: import("../../core/types.ts").TaskError; rss: number }
  /**
   * The worker's input ended while it was idle: it has written its last byte and is exiting
   * (also sent on stderr, as the payload `bye`, after anything it printed there).
   */
  | { type: "bye" };

export const encodeControl = (nonce: string, payload: string) => `${MARK}${nonce}${payload}\n`;

/**
 * Splits one output stream into user text and control payloads. Text is passed on as soon
 * as it cannot be the start of a control marker, so live output is not held back.
 */
export class Demuxer {
  private pending = "";
  private readonly marker: string;

  constructor(
    nonce: string,
    private readonly onText: (text: string) => void,
    private readonly onControl: (payload: string) => void,
  ) {
    this.marker = MARK + nonce;
  }

  push(chunk: string): void {
    let buf = this.pending + chunk;
    this.pending = "";
    for (;;) {
      const at = buf.indexOf(this.marker);
      if (at === -1) {
        // Keep a tail that could be the beginning of a marker split across chunks.
        const keep = this.partialTail(buf);
        if (buf.length - keep > 0) this.onText(buf.slice(0, buf.length - keep));
        this.pending = buf.slice(buf.length - keep);
        return;
      }
      if (at > 0) this.onText(buf.slice(0, at));
      const end = buf.indexOf("\n", at);
      if (end === -1) {
        this.pending = buf.slice(at);
        return;
      }
      this.onControl(buf.slice(at + this.marker.length, end));
      buf = buf.slice(end + 1);
    }
  }

  /** Flushes whatever is held back (the stream ended). */
  end(): void {
    if (this.pending) this.onText(this.pending);
    this.pending = "";
  }

  private partialTail(buf: string): number {
    const max = Math.min(buf.length, this.marker.length - 1);
    for (let n = max; n > 0; n--) if (this.marker.startsWith(buf.slice(buf.length - n))) return n;
    return 0;
  }
}
