/**
 * A fault-injecting HTTP proxy in front of s3rver: what a flaky network and a throttling S3 do
 * to a client, at seeded rates, so a failing sequence can be replayed from its seed.
 *
 * Per request it draws one fault (or none) and counts it:
 * - `latency`: the request waits 20–300 ms before it is forwarded;
 * - `error500` / `error503`: answered `500 InternalError` / `503 ServiceUnavailable` without
 *   reaching the store (the body is drained, as S3 does);
 * - `slowDown`: answered `503 SlowDown`, S3's throttling;
 * - `resetRequest`: the connection is destroyed after part of the request body went upstream
 *   (an upload cut mid-body; the store never completes that request);
 * - `resetResponse`: the store answered, but the connection is destroyed after the headers and
 *   part of the body (for a PUT the write happened and the client does not know it);
 * - `truncated`: the store answered; the body is cut short and the connection closed cleanly,
 *   with the original Content-Length (what an ended TCP stream looks like to the client).
 */
import { type IncomingMessage, createServer, request as httpRequest, type ServerResponse } from "node:http";
import { listenLocal } from "../_s3rver.ts";
import { prng } from "./_util.ts";

export const FAULTS = ["latency", "error500", "error503", "slowDown", "resetRequest", "resetResponse", "truncated"] as const;
export type Fault = (typeof FAULTS)[number];

export interface ChaosOptions {
  seed: number;
  /** Probability of each fault per request (their sum at most 1). */
  rates: Partial<Record<Fault, number>>;
  /** Only requests for which this is true may get a fault (default: all). */
  target?: (method: string, path: string) => boolean;
}

export interface ChaosProxy {
  endpoint: string;
  port: number;
  /** Faults injected so far, by kind. */
  injected: Record<Fault, number>;
  /** Requests seen, and the `If-None-Match` headers among them. */
  requests: number;
  conditionalPuts: number;
  /** Stops injecting (requests pass through unchanged) or starts again. */
  setEnabled(on: boolean): void;
  /** Points the proxy at another upstream port (a restarted store). */
  retarget(port: number): void;
  close(): Promise<void>;
}

const xmlError = (code: string, message: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>chaos</RequestId></Error>`;

export async function startChaosProxy(targetPort: number, options: ChaosOptions): Promise<ChaosProxy> {
  const random = prng(options.seed);
  const injected = Object.fromEntries(FAULTS.map((f) => [f, 0])) as Record<Fault, number>;
  let enabled = true;
  let upstreamPort = targetPort;

  const draw = (method: string, path: string): Fault | undefined => {
    if (!enabled || (options.target && !options.target(method, path))) return undefined;
    let x = random();
    for (const f of FAULTS) {
      x -= options.rates[f] ?? 0;
      if (x < 0) return f;
    }
    return undefined;
  };

  const answer = (req: IncomingMessage, res: ServerResponse, status: number, code: string) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(status, { "content-type": "application/xml", connection: "close" });
      res.end(req.method === "HEAD" ? undefined : xmlError(code, `injected by the chaos proxy`));
    });
  };

  const forward = (req: IncomingMessage, res: ServerResponse, fault: Fault | undefined) => {
    const upstream = httpRequest({ host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (up) => {
      if (fault === "resetResponse" || fault === "truncated") {
        const length = Number(up.headers["content-length"] ?? 0);
        res.writeHead(up.statusCode ?? 502, up.headers);
        // Half the body (at least the headers) reaches the client, then the line goes dead.
        let budget = Math.floor(length / 2);
        const cut = () => {
          up.destroy();
          if (fault === "truncated") res.socket?.end();
          else res.socket?.destroy();
        };
        if (budget === 0) {
          res.flushHeaders();
          setImmediate(cut);
          return;
        }
        up.on("data", (chunk: Buffer) => {
          if (budget <= 0) return;
          const part = chunk.subarray(0, budget);
          budget -= part.byteLength;
          res.write(part);
          if (budget <= 0) cut();
        });
        up.on("end", cut);
        return;
      }
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on("error", () => res.socket?.destroy());
    if (fault === "resetRequest") {
      // Let part of the body (or just the headers) through, then cut both sides.
      const length = Number(req.headers["content-length"] ?? 0);
      let budget = Math.floor(length / 2);
      const cut = () => {
        upstream.destroy();
        req.socket.destroy();
      };
      if (budget === 0) return setImmediate(cut);
      req.on("data", (chunk: Buffer) => {
        if (budget <= 0) return;
        const part = chunk.subarray(0, budget);
        budget -= part.byteLength;
        upstream.write(part);
        if (budget <= 0) cut();
      });
      return;
    }
    req.pipe(upstream);
  };

  const proxy: ChaosProxy = {
    endpoint: "",
    port: 0,
    injected,
    requests: 0,
    conditionalPuts: 0,
    setEnabled: (on) => (enabled = on),
    retarget: (port) => (upstreamPort = port),
    close: async () => {},
  };

  const server = createServer((req, res) => {
    proxy.requests++;
    if (req.method === "PUT" && req.headers["if-none-match"]) proxy.conditionalPuts++;
    const fault = draw(req.method ?? "", req.url ?? "");
    if (fault) injected[fault]++;
    switch (fault) {
      case "latency":
        setTimeout(() => forward(req, res, undefined), 20 + Math.floor(random() * 280));
        return;
      case "error500":
        return answer(req, res, 500, "InternalError");
      case "error503":
        return answer(req, res, 503, "ServiceUnavailable");
      case "slowDown":
        return answer(req, res, 503, "SlowDown");
      default:
        forward(req, res, fault);
    }
  });
  const local = await listenLocal(server);
  proxy.port = local.port;
  proxy.endpoint = local.endpoint;
  proxy.close = local.close;
  return proxy;
}

/** Total faults injected. */
export const totalFaults = (p: ChaosProxy) => Object.values(p.injected).reduce((a, b) => a + b, 0);
