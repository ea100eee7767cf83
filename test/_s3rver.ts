/**
 * A real S3 API on 127.0.0.1 for tests: s3rver in a temporary directory on a free port, plus a
 * TCP proxy that can cut connections to simulate a network that drops mid-upload.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer, request as httpRequest } from "node:http";
import { createRequire } from "node:module";
import { type AddressInfo, connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** The credentials s3rver accepts out of the box. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export interface RunningS3rver {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  port: number;
  /** The directory s3rver stores buckets in. */
  dir: string;
  /** The server process, e.g. to SIGSTOP it in fault tests. */
  pid: number;
  /** `METHOD /path?query` of every request received, in order (to see multipart at work). */
  requests: string[];
  /** The body size of each request in {@link requests}, same order (bytes written to S3). */
  requestBytes: number[];
  /** Stops the server; `keep` leaves its directory for a restart (see startS3rver's `dir`). */
  close(options?: { keep?: boolean }): Promise<void>;
}

/**
 * s3rver runs in a child process because its continuation tokens use DES, which Node 17+
 * refuses unless started with `--openssl-legacy-provider`; without it every listing longer
 * than 1,000 keys fails with HTTP 500. It exits when our end of its stdin closes.
 */
const CHILD = `
const S3rver = require(process.env.S3RVER_MODULE);
const path = require("node:path");
const fs = require("node:fs");
const crypto = require("node:crypto");
const FilesystemStore = require(path.join(path.dirname(process.env.S3RVER_MODULE), "stores", "filesystem.js"));
// s3rver 3.7's delimited listing skips every directory below a common prefix before it has seen
// a key in it, so "flows/" lists nothing when all its keys are deeper (flows/F/runs/…), while S3
// lists "F/". Add the missing common prefixes: the sub-directories of the prefix's directory.
{
  const listObjects = FilesystemStore.prototype.listObjects;
  FilesystemStore.prototype.listObjects = async function (bucket, options) {
    const result = await listObjects.call(this, bucket, options);
    const { delimiter = "", prefix = "" } = options;
    if (delimiter !== "/" || result.isTruncated || (prefix !== "" && !prefix.endsWith("/"))) return result;
    let entries = [];
    try {
      entries = fs.readdirSync(path.join(this.getBucketPath(bucket), prefix), { withFileTypes: true });
    } catch {}
    const prefixes = new Set(result.commonPrefixes);
    for (const e of entries) if (e.isDirectory() && !e.name.includes("._S3rver_")) prefixes.add(prefix + e.name + "/");
    return { ...result, commonPrefixes: [...prefixes].sort() };
  };
}
// s3rver writes a PUT's bytes in place, so a writer killed mid-body (a terminated Batch job)
// leaves a short object that later readers take for the whole one. S3 stores an object only
// once its body is complete: write to a temporary file and rename it into place when the
// request's body arrived whole.
{
  FilesystemStore.prototype.putObject = async function (object) {
    const objectPath = this.getResourcePath(object.bucket, object.key, "object");
    await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
    const tmp = objectPath + ".tmp-" + crypto.randomBytes(6).toString("hex");
    const md5 = crypto.createHash("md5");
    let size = 0;
    try {
      await new Promise((resolve, reject) => {
        const out = fs.createWriteStream(tmp);
        out.on("error", reject).on("finish", resolve);
        if (Buffer.isBuffer(object.content)) {
          md5.update(object.content);
          size = object.content.length;
          out.end(object.content);
          return;
        }
        const body = object.content;
        body.on("error", reject).on("aborted", () => reject(new Error("request aborted")));
        body.on("data", (chunk) => {
          md5.update(chunk);
          size += chunk.length;
          if (!out.write(chunk)) {
            body.pause();
            out.once("drain", () => body.resume());
          }
        });
        body.on("end", () => (body.complete === false ? reject(new Error("request body incomplete")) : out.end()));
      });
      await fs.promises.rename(tmp, objectPath);
    } catch (e) {
      await fs.promises.rm(tmp, { force: true });
      throw e;
    }
    const digest = md5.digest("hex");
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}
const { buckets, dir, port: wanted } = JSON.parse(process.env.S3RVER_CONFIG);
const server = new S3rver({ address: "127.0.0.1", port: wanted ?? 0, silent: process.env.S3RVER_LOG !== "1", directory: dir,
  configureBuckets: buckets.map((name) => ({ name })) });
server.run().then(({ port }) => {
  server.httpServer.on("request", (req) => {
    // Bytes of the body: the SDK's streaming uploads announce the decoded length apart.
    const bytes = Number(req.headers["x-amz-decoded-content-length"] ?? req.headers["content-length"] ?? 0);
    process.stdout.write(JSON.stringify({ request: req.method + " " + req.url, bytes }) + "\\n");
  });
  process.stdout.write(JSON.stringify({ port }) + "\\n");
});
process.stdin.on("end", () => process.exit(0)).resume();
`;

/** `port` and `dir` restart a stopped server where it was, with its data (a store that comes back). */
export async function startS3rver(options: { buckets: string[]; port?: number; dir?: string }): Promise<RunningS3rver> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "tsflow-s3rver-")));
  const child = spawn(process.execPath, ["--openssl-legacy-provider", "-e", CHILD], {
    env: { ...process.env, S3RVER_MODULE: createRequire(import.meta.url).resolve("s3rver"), S3RVER_CONFIG: JSON.stringify({ buckets: options.buckets, dir, port: options.port }) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const requests: string[] = [];
  const requestBytes: number[] = [];
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`s3rver exited with code ${code} before listening`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const message = JSON.parse(line) as { port?: number; request?: string; bytes?: number };
      if (message.request) {
        requests.push(message.request);
        requestBytes.push(message.bytes ?? 0);
      }
      if (message.port) resolve(message.port);
    });
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    dir,
    pid: child.pid!,
    requests,
    requestBytes,
    async close(closing) {
      child.stdin!.end();
      await exited;
      if (!closing?.keep) await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Proxy {
  endpoint: string;
  port: number;
  /** Connections cut so far. */
  dropped: number;
  close(): Promise<void>;
}

/**
 * Forwards 127.0.0.1:PORT to `targetPort`, but destroys a connection (both sides) as soon as
 * more than `dropAfterBytes` have gone upstream on it: a network failing mid-upload.
 */
export async function startDroppingProxy(targetPort: number, dropAfterBytes: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const proxy: Proxy = { endpoint: "", port: 0, dropped: 0, close: async () => {} };
  const server = createServer((client) => {
    const upstream = connect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    let sent = 0;
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Buffer) => {
      sent += chunk.byteLength;
      if (sent > dropAfterBytes) {
        proxy.dropped++;
        cut();
      } else upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    for (const s of [client, upstream]) {
      s.on("error", cut);
      s.on("close", () => {
        sockets.delete(s);
        cut();
      });
    }
  });
  const local = await listenLocal(server);
  proxy.port = local.port;
  proxy.endpoint = local.endpoint;
  proxy.close = async () => {
    for (const s of sockets) s.destroy();
    await local.close();
  };
  return proxy;
}

/** A server of a test listening on 127.0.0.1 at a free port. */
export interface LocalServer {
  port: number;
  endpoint: string;
  /** Cuts every open connection, then stops listening. */
  close(): Promise<void>;
}

/** Starts `server` on 127.0.0.1 at a free port; `close` cuts open connections first. */
export async function listenLocal(server: NetServer): Promise<LocalServer> {
  const open = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    open.add(s);
    s.on("close", () => open.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    async close() {
      for (const s of open) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A port nothing listens on: bound, then released. */
export async function closedPort(): Promise<number> {
  const local = await listenLocal(createServer());
  await local.close();
  return local.port;
}

export interface HoldingProxy {
  endpoint: string;
  /** Resolves when the first request matching the rule has arrived (and is being held). */
  reached: Promise<void>;
  /** Lets the held request (and every later match) through. */
  release(): void;
  close(): Promise<void>;
}

/**
 * An HTTP proxy to s3rver on 127.0.0.1 that holds requests matching `hold(method, path)` until
 * `release()`: a deterministic window in the middle of a real client's sequence of writes (say,
 * between a task's blob uploads and its result.json), wherever that client runs.
 */
export async function startHoldingProxy(targetPort: number, hold: (method: string, path: string) => boolean): Promise<HoldingProxy> {
  let released = false;
  let onRelease: () => void = () => {};
  const gate = new Promise<void>((resolve) => (onRelease = resolve));
  let onReached: () => void = () => {};
  const reached = new Promise<void>((resolve) => (onReached = resolve));
  const server = createHttpServer(async (req, res) => {
    if (!released && hold(req.method ?? "", req.url ?? "")) {
      onReached();
      await gate;
    }
    const upstream = httpRequest({ host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  const local = await listenLocal(server);
  return {
    endpoint: local.endpoint,
    reached,
    release() {
      released = true;
      onRelease();
    },
    async close() {
      released = true;
      onRelease();
      await local.close();
    },
  };
}
