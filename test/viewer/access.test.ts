/**
 * Who may read the viewer (issue #18 item 5, #19 item 11): beyond loopback an access token is
 * required on every route, checked before anything is read; the Host check stays on for every
 * bind address. Through `app.request()` and through the real `tsflow view`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { CLI, tempStore } from "../_helpers.ts";
import { F, R, spy, writeRun } from "./_run.ts";

const TOKEN = "a-long-enough-test-token-0123456789";
let root: string;

beforeAll(async () => {
  root = join(tempStore(), "store");
  await writeRun(fsDatastore({ root }), { pets: ["Rex"] });
});

const ROUTES = ["/", "/runs", `/runs/${F}/${R}`, `/runs/${F}/${R}/end/2`, `/artifacts/${F}/${R}/end/2/pets?format=raw`, `/artifacts/${F}/${R}/end/2/pets?format=json`, `/api/live/${F}/${R}`, `/api/live/${F}/${R}/end/2`, "/assets/app.js", "/no/such/route"];

describe("viewer access token", () => {
  it("answers 401 on every route without the token, reading nothing from the datastore", async () => {
    const seen: string[] = [];
    const app = createViewerApp({ store: spy(fsDatastore({ root }), seen), host: nodeHost(), token: TOKEN });
    for (const path of [...ROUTES, `/cards/${F}/${R}/end/2/default?attempt=0`, `/api/cards/${F}/${R}/end/2/default?attempt=0`]) {
      for (const headers of [{}, { cookie: "tsflow_view=wrong-token-wrong-token" }, { authorization: "Bearer nope" }] as Record<string, string>[]) {
        const res = await app.request(path, { headers });
        expect(res.status, path).toBe(401);
        expect(await res.text()).toMatch(/access token/);
      }
    }
    expect((await app.request(`/runs/${F}/${R}?token=wrong`)).status).toBe(401);
    expect(seen).toEqual([]);
  });

  it("takes the token once from the address, then from an HttpOnly SameSite cookie", async () => {
    const app = createViewerApp({ store: fsDatastore({ root }), host: nodeHost(), token: TOKEN });
    const first = await app.request(`/runs/${F}/${R}?step=end&token=${TOKEN}`);
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toBe(`/runs/${F}/${R}?step=end`);
    const cookie = first.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^tsflow_view=/);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    const jar = cookie.split(";")[0]!;
    for (const path of ROUTES.slice(0, -1)) expect((await app.request(path, { headers: { cookie: jar } })).status, path).toBe(200);
    expect((await app.request("/runs", { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });

  it("keeps loopback token-free unless a token is given", async () => {
    const app = createViewerApp({ store: fsDatastore({ root }), host: nodeHost(), allowedHosts: ["127.0.0.1:8324"] });
    expect((await app.request("/runs", { headers: { host: "127.0.0.1:8324" } })).status).toBe(200);
    expect((await app.request("/runs", { headers: { host: "rebound.example:8324" } })).status).toBe(403);
  });
});

describe("tsflow view beyond loopback", () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill();
    child = undefined;
  });

  /** Starts `tsflow view`, resolves with the address it printed and its stderr so far. */
  const startView = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ url: URL; stderr: string }>((resolve, reject) => {
      child = spawn(process.execPath, [CLI, "view", "--port", "0", "--datastore", root, ...args], { env: { ...process.env, NO_COLOR: "1", ...env } });
      let out = "";
      let err = "";
      child.stderr!.on("data", (c) => (err += c));
      child.stdout!.on("data", (c) => {
        out += c;
        const m = /viewer on (\S+)/.exec(out);
        if (m) setTimeout(() => resolve({ url: new URL(m[1]!), stderr: err }), 100);
      });
      child.on("exit", (code) => reject(new Error(`tsflow view exited with ${code}: ${err}`)));
    });

  /** A request to the viewer listening on 127.0.0.1 whatever its printed name, with a chosen Host header. */
  const get = async (port: string, path: string, host: string, headers: Record<string, string> = {}) => {
    const { request } = await import("node:http");
    return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: Number(port), path, headers: { host, ...headers } }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    });
  };

  it("generates and prints a token for 0.0.0.0, and refuses unknown Host names", async () => {
    const { url, stderr } = await startView(["--host", "0.0.0.0"]);
    const token = url.searchParams.get("token");
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(stderr).toMatch(/access token required/);
    const host = `127.0.0.1:${url.port}`;
    const none = await get(url.port, `/runs/${F}/${R}`, host);
    expect(none.status).toBe(401);
    expect(none.body).not.toContain("Rex");
    const first = await get(url.port, `/?token=${token}`, host);
    expect(first.status).toBe(303);
    const jar = String(first.headers["set-cookie"]).split(";")[0]!;
    const page = await get(url.port, `/artifacts/${F}/${R}/end/2/pets?format=json`, host, { cookie: jar });
    expect(page.status).toBe(200);
    expect(page.body).toContain("Rex");
    // DNS rebinding: the right cookie, but a page's own name in Host.
    expect((await get(url.port, "/runs", `evil.example:${url.port}`, { cookie: jar })).status).toBe(403);
  });

  it("checks the Host header for a non-default loopback address and takes --token / TSFLOW_VIEW_TOKEN", async () => {
    const { url } = await startView(["--host", "127.0.0.2"], { TSFLOW_VIEW_TOKEN: TOKEN });
    expect(url.searchParams.get("token")).toBeNull(); // a token the user chose is not printed
    const res = await new Promise<number>((resolve, reject) => {
      import("node:http").then(({ request }) => {
        const req = request({ host: "127.0.0.2", port: Number(url.port), path: "/runs", headers: { host: `evil.example:${url.port}`, authorization: `Bearer ${TOKEN}` } }, (r) => {
          r.resume();
          resolve(r.statusCode!);
        });
        req.on("error", reject);
        req.end();
      });
    });
    expect(res).toBe(403);
    const ok = await fetch(`http://127.0.0.2:${url.port}/runs`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect((await fetch(`http://127.0.0.2:${url.port}/runs`)).status).toBe(401);
  });

  it("refuses a short --token", async () => {
    const { cli } = await import("../_helpers.ts");
    const r = await cli(["view", "--port", "0", "--datastore", root, "--token", "short"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--token .* at least 16 characters/);
  });
});
