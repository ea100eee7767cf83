/**
 * `tsflow view`: the read-only web viewer (viewer/app.ts) on Node's HTTP server, or a static
 * export of one run. cli/main.ts loads this file only for `view`, so `tsflow run` never loads
 * Hono or the viewer.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { hostname as osHostname, networkInterfaces } from "node:os";
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
    host: { type: "string", description: "Address to bind (default 127.0.0.1: only this machine can connect; any other address requires an access token)" },
    token: { type: "string", description: "Access token visitors must give (default beyond loopback: a new random one, printed; env TSFLOW_VIEW_TOKEN)" },
    "allow-host": { type: "string", description: "Extra names the viewer may be reached by (the Host header), comma-separated, e.g. viewer.team.example" },
    datastore: { type: "string", description: "Where runs are stored: a path, s3://bucket/prefix or a datastore plugin file (./my-store.ts[:options]); default: .tsflow found upwards" },
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
      await prepareExportDir(dir);
      const t0 = Date.now();
      const res = await exportRun(store, host, flow, runId, async (path, data) => {
        const file = join(dir, path);
        await ensureDir(dir, dirname(file));
        // "wx": create only, so nothing is overwritten and no planted symlink is followed.
        if (data instanceof Uint8Array) await writeFile(file, data, { flag: "wx" });
        else await pipeline(Readable.from(data), createWriteStream(file, { flags: "wx" }));
      });
      process.stdout.write(`✔ Exported ${flow}/${runId} to ${dir} (${res.files} ${res.files === 1 ? "file" : "files"}, ${(res.bytes / 1e6).toFixed(1)} MB, ${Date.now() - t0} ms): open ${join(dir, "index.html")}\n`);
      return 0;
    }
    const port = args.port === undefined ? 8324 : Number(args.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TsflowError("BadOption", `--port must be a port number, got '${args.port}'`);
    const hostname = args.host || "127.0.0.1";
    const loopback = isLoopback(hostname);
    const given = args.token ?? process.env.TSFLOW_VIEW_TOKEN;
    if (given !== undefined && given.length < 16) throw new TsflowError("BadOption", `--token (or TSFLOW_VIEW_TOKEN) must be at least 16 characters, got ${given.length}`);
    // Beyond loopback, anyone on the network could read every run: a token is not optional.
    const token = given ?? (loopback ? undefined : randomBytes(24).toString("base64url"));
    const extra = String(args["allow-host"] ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean);
    const [{ createViewerApp }, { serve }] = await Promise.all([import("../../viewer/app.ts"), import("@hono/node-server")]);
    // The allowed Host headers depend on the port, known only once listening (--port 0).
    const allowedHosts: string[] = [];
    const app = createViewerApp({ store, host, allowedHosts, token });
    const server = await new Promise<ReturnType<typeof serve>>((ok, fail) => {
      const s = serve({ fetch: app.fetch, hostname, port }, (info) => {
        allowedHosts.push(...hostHeaders([...namesOf(hostname), ...extra], info.port));
        ok(s);
      });
      s.once("error", (e: NodeJS.ErrnoException) => fail(new TsflowError("BadOption", `cannot listen on ${hostname}:${port}: ${e.code === "EADDRINUSE" ? "the port is in use (try --port 0)" : e.message}`)));
    });
    const addr = server.address();
    const shown = hostname === "0.0.0.0" || hostname === "::" ? osHostname() : hostname;
    const url = `http://${shown.includes(":") ? `[${shown}]` : shown}:${typeof addr === "object" && addr ? addr.port : port}/`;
    const visit = token && !given ? `${url}?token=${encodeURIComponent(token)}` : url;
    process.stdout.write(`tsflow viewer on ${visit} (datastore ${store.url}; Ctrl-C to stop)\n`);
    if (token) process.stderr.write(given ? "access token required: visitors open the address with ?token=<your token> once\n" : "access token required: share the address above (it carries the token) only with people who may read every run\n");
    if (args.open) {
      const { spawn } = await import("node:child_process");
      const cmd = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
      spawn(cmd, [visit], { stdio: "ignore", detached: true }).on("error", () => process.stderr.write(`could not open a browser; visit ${visit}\n`)).unref();
    }
    await new Promise<void>((done) => {
      const stop = () => server.close(() => done());
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    return 0;
  },
});

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export function isLoopback(address: string): boolean {
  return address === "localhost" || address === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

/**
 * The names a browser may use to reach a viewer bound to `bind`: the address itself and, for a
 * wildcard bind, every interface address and this machine's name. A page whose DNS name was
 * re-pointed at one of these (DNS rebinding) sends its own name as Host and is refused.
 */
function namesOf(bind: string): string[] {
  const names = new Set<string>([bind.toLowerCase()]);
  if (bind === "127.0.0.1" || bind === "localhost" || bind === "::1") for (const n of ["127.0.0.1", "localhost", "::1"]) names.add(n);
  if (!isLoopback(bind)) names.add(osHostname().toLowerCase());
  if (bind === "0.0.0.0" || bind === "::") {
    names.add("localhost");
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(a.address.toLowerCase());
  }
  return [...names];
}

function hostHeaders(names: string[], port: number): string[] {
  return names.flatMap((n) => {
    const h = n.includes(":") ? `[${n}]` : n;
    return port === 80 ? [`${h}:80`, h] : [`${h}:${port}`];
  });
}

/** The export goes to a new or empty directory: an export never overwrites anything. */
async function prepareExportDir(dir: string): Promise<void> {
  const st = await lstat(dir).catch(() => null);
  if (st === null) return void (await mkdir(dir, { recursive: true }));
  if (!st.isDirectory()) throw new TsflowError("BadOption", `--export target '${dir}' is ${st.isSymbolicLink() ? "a symbolic link" : "a file"}, not a directory: give a new or empty directory`);
  if ((await readdir(dir)).length > 0) throw new TsflowError("BadOption", `--export target '${dir}' is not empty: give a new or empty directory (an export never overwrites files)`);
}

/** Creates `sub` below `dir`, refusing a symbolic link on the way (written there after our check). */
async function ensureDir(dir: string, sub: string): Promise<void> {
  if (sub === dir) return;
  await ensureDir(dir, dirname(sub));
  const st = await lstat(sub).catch(() => null);
  if (st === null) await mkdir(sub);
  else if (!st.isDirectory()) throw new TsflowError("BadOption", `cannot export into '${sub}': it is not a directory we created`);
}
