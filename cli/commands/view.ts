/**
 * `tsflow view`: the read-only web viewer (viewer/app.ts) on Node's HTTP server, or a static
 * export of one run. cli/main.ts loads this file only for `view`, so `tsflow run` never loads
 * Hono or the viewer.
 */
import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { defineCommand } from "citty";
import { TsflowError } from "../../core/errors.ts";
import nodeHost from "../../plugins/host/node.ts";
import { openDatastore } from "../../runner/stores.ts";

export default defineCommand({
  meta: { name: "view", description: "Browse runs, DAGs, timelines, logs and artifacts in a local web app (read-only)" },
  args: {
    pathspec: { type: "positional", description: "With --export: the run to export, Flow/runId", required: false },
    port: { type: "string", description: "Port to listen on (default 8324; 0 picks a free one)" },
    host: { type: "string", description: "Address to bind (default 127.0.0.1: only this machine can connect)" },
    datastore: { type: "string", description: "Where runs are stored: a path or s3://bucket/prefix (default: .tsflow found upwards)" },
    open: { type: "boolean", description: "Open the viewer in a browser" },
    export: { type: "string", description: "Write a static copy of the run given as Flow/runId into this directory" },
  },
  async run({ args }) {
    const store = await openDatastore(args.datastore);
    const host = nodeHost();
    if (args.export) {
      const [flow, runId, ...rest] = String(args.pathspec ?? "").split("/");
      if (!flow || !runId || rest.length) throw new TsflowError("BadOption", `give the run to export as Flow/runId, e.g. tsflow view --export out PetsFlow/1795921999343-005m (got '${args.pathspec ?? ""}')`);
      const { exportRun } = await import("../../viewer/export.ts");
      const dir = resolve(args.export);
      const t0 = Date.now();
      const res = await exportRun(store, host, flow, runId, async (path, data) => {
        const file = join(dir, path);
        await mkdir(dirname(file), { recursive: true });
        if (data instanceof Uint8Array) await writeFile(file, data);
        else await pipeline(Readable.from(data), createWriteStream(file));
      });
      process.stdout.write(`✔ Exported ${flow}/${runId} to ${dir} (${res.files} files, ${(res.bytes / 1e6).toFixed(1)} MB, ${Date.now() - t0} ms): open ${join(dir, "index.html")}\n`);
      return 0;
    }
    const port = args.port === undefined ? 8324 : Number(args.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TsflowError("BadOption", `--port must be a port number, got '${args.port}'`);
    const hostname = args.host || "127.0.0.1";
    const [{ createViewerApp }, { serve }] = await Promise.all([import("../../viewer/app.ts"), import("@hono/node-server")]);
    const loopback = ["127.0.0.1", "localhost", "::1"].includes(hostname);
    // The allowed Host headers depend on the port, known only once listening (--port 0).
    const allowedHosts: string[] = [];
    const app = createViewerApp({ store, host, allowedHosts: loopback ? allowedHosts : undefined });
    const server = await new Promise<ReturnType<typeof serve>>((ok, fail) => {
      const s = serve({ fetch: app.fetch, hostname, port }, (info) => {
        allowedHosts.push(`127.0.0.1:${info.port}`, `localhost:${info.port}`, `[::1]:${info.port}`);
        ok(s);
      });
      s.once("error", (e: NodeJS.ErrnoException) => fail(new TsflowError("BadOption", `cannot listen on ${hostname}:${port}: ${e.code === "EADDRINUSE" ? "the port is in use (try --port 0)" : e.message}`)));
    });
    const addr = server.address();
    const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${typeof addr === "object" && addr ? addr.port : port}/`;
    process.stdout.write(`tsflow viewer on ${url} (datastore ${store.url}; Ctrl-C to stop)\n`);
    if (!loopback) process.stderr.write(`⚠ bound to ${hostname}: anyone who can reach this address can read every run and artifact\n`);
    if (args.open) {
      const { spawn } = await import("node:child_process");
      const cmd = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
      spawn(cmd, [url], { stdio: "ignore", detached: true }).on("error", () => process.stderr.write(`could not open a browser; visit ${url}\n`)).unref();
    }
    await new Promise<void>((done) => {
      const stop = () => server.close(() => done());
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    return 0;
  },
});
