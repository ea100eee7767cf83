/**
 * tsflow's workers start with a reduced copy of NODE_EXTRA_CA_CERTS (plugins/host/extra-ca.mjs):
 * the file without the certificates Node bundles anyway. With real certificates (a CA made by
 * the openssl CLI, some of Node's own roots), a real HTTPS server and the real CLI.
 */
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ORIGINAL_VAR, reduceExtraCaCerts, restoreExtraCaCerts, workerCaEnv } from "../../plugins/host/extra-ca.mjs";
import type { TraceLine } from "../../runner/_trace.ts";
import { CLI, exec, fixture, tempStore } from "../_helpers.ts";

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const dir = mkdtempSync(join(tmpdir(), "tsflow-extra-ca-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A CA and a certificate for localhost/127.0.0.1 signed by it, made by the openssl CLI. */
function makeCa() {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tsflow test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  ssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  writeFileSync(join(dir, "server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext");
  const read = (name: string) => readFileSync(join(dir, name), "utf8");
  return { ca: read("ca.pem"), caKey: read("ca.key"), key: read("server.key"), cert: read("server.pem") };
}

/** `tsflow run` of the fixture flow, with `env` over this process's (`undefined` unsets). */
const runFixture = (env: Record<string, string | undefined>) => exec([process.execPath, CLI, "run", fixture("extra-ca.ts"), "--datastore", tempStore()], { env });
const der = (pem: string) => new X509Certificate(pem).raw.toString("base64");
const blocks = (text: string) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];

describe.skipIf(!hasOpenssl)("a reduced NODE_EXTRA_CA_CERTS for workers", () => {
  let pki: ReturnType<typeof makeCa>;
  let n = 0;
  /** A fresh private cache directory (XDG_CACHE_HOME) and a CA file of some bundled roots plus the test CA. */
  let cache: string;
  let bundle: string;
  const saved = { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, NODE_OPTIONS: process.env.NODE_OPTIONS, TMPDIR: process.env.TMPDIR };
  beforeAll(() => {
    pki = makeCa();
  });
  beforeEach(() => {
    cache = join(dir, `cache-${++n}`);
    mkdirSync(cache, { mode: 0o700 });
    process.env.XDG_CACHE_HOME = cache;
    bundle = join(dir, `bundle-${n}.pem`);
    writeFileSync(bundle, `${rootCertificates.slice(0, 5).join("\n")}\n${pki.ca}${rootCertificates.slice(40, 43).join("\n")}\n`);
    return () => {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    };
  });
  const env = (file: string) => ({ NODE_EXTRA_CA_CERTS: file });

  it("keeps exactly the certificates Node does not bundle, in a private file the workers' environment names", async () => {
    expect(workerCaEnv(env(bundle))).toEqual({}); // none made yet
    const reduced = await reduceExtraCaCerts(env(bundle));
    expect(reduced).toBeDefined();
    expect(reduced!.startsWith(join(cache, "tsflow", "ca"))).toBe(true);
    expect(blocks(readFileSync(reduced!, "utf8")).map(der)).toEqual([der(pki.ca)]);
    expect(statSync(reduced!).mode & 0o777).toBe(0o600);
    expect(workerCaEnv(env(bundle))).toEqual({ NODE_EXTRA_CA_CERTS: reduced, [ORIGINAL_VAR]: bundle });
    // A worker puts the user's path back.
    const workerEnv: NodeJS.ProcessEnv = { ...env(bundle), ...workerCaEnv(env(bundle)) };
    expect(restoreExtraCaCerts(workerEnv)).toBe(reduced);
    expect(workerEnv).toEqual({ NODE_EXTRA_CA_CERTS: bundle });
  });

  it("reduces a file with CRLF line ends and text between the certificates", async () => {
    const file = join(dir, `crlf-${n}.pem`);
    writeFileSync(file, `# a comment\r\n${rootCertificates[3]}\n# Issuer: tsflow test CA\n${pki.ca}`.replace(/\n/g, "\r\n"));
    const reduced = await reduceExtraCaCerts(env(file));
    expect(reduced).toBeDefined();
    expect(blocks(readFileSync(reduced!, "utf8")).map(der)).toEqual([der(pki.ca)]);
  });

  it("makes a new copy when the original changes, and keeps none for an old one it replaces beyond a few", async () => {
    const first = await reduceExtraCaCerts(env(bundle));
    writeFileSync(bundle, `${pki.ca}${rootCertificates[7]}\n${pki.cert}`);
    expect(workerCaEnv(env(bundle))).toEqual({}); // the copy of the old content is not used
    const second = await reduceExtraCaCerts(env(bundle));
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    expect(blocks(readFileSync(second!, "utf8")).map(der)).toEqual([der(pki.ca), der(pki.cert)]);
    for (let i = 0; i < 6; i++) {
      const other = join(dir, `other-${n}-${i}.pem`);
      writeFileSync(other, pki.ca);
      expect(await reduceExtraCaCerts(env(other))).toBeDefined();
    }
    expect(readdirSync(join(cache, "tsflow", "ca")).length).toBe(5);
  });

  it("does not reduce a file with another kind of PEM block, a broken certificate, or none", async () => {
    const cases = {
      key: `${rootCertificates[0]}\n${pki.ca}${pki.caKey}`,
      trusted: `${rootCertificates[0]}\n${pki.ca.replaceAll("CERTIFICATE", "TRUSTED CERTIFICATE")}`,
      broken: `${rootCertificates[0]}\n${pki.ca.replace(/\n[A-Za-z0-9+/]{8}/, "\nAAAAAAAA")}`,
      truncated: `${rootCertificates[0]}\n${pki.ca.slice(0, 200)}`,
      empty: "",
    };
    for (const [name, text] of Object.entries(cases)) {
      const file = join(dir, `bad-${n}-${name}.pem`);
      writeFileSync(file, text);
      expect(await reduceExtraCaCerts(env(file)), name).toBeUndefined();
      expect(workerCaEnv(env(file)), name).toEqual({});
    }
    expect(existsSync(join(cache, "tsflow", "ca")) ? readdirSync(join(cache, "tsflow", "ca")) : []).toEqual([]);
  });

  it("does not reduce a file it cannot read, nor under flags that change Node's root store", async () => {
    for (const file of [join(dir, "missing.pem"), dir]) expect(await reduceExtraCaCerts(env(file))).toBeUndefined();
    if (process.getuid?.() !== 0) {
      const locked = join(dir, `locked-${n}.pem`);
      writeFileSync(locked, pki.ca, { mode: 0o000 });
      chmodSync(locked, 0o000);
      expect(await reduceExtraCaCerts(env(locked))).toBeUndefined();
    }
    for (const flag of ["--use-openssl-ca", "--use-bundled-ca", "--openssl-legacy-provider"]) {
      expect(await reduceExtraCaCerts({ ...env(bundle), NODE_OPTIONS: `--max-old-space-size=512 ${flag}` }), flag).toBeUndefined();
    }
    expect(await reduceExtraCaCerts({ ...env(bundle), TSFLOW_EXTRA_CA_CACHE: "0" })).toBeUndefined();
  });

  it("uses no cache directory other users may write", async () => {
    // Both candidates (XDG_CACHE_HOME's and the temporary directory's) made by "someone else" open to all.
    const open = join(dir, `open-${n}`);
    mkdirSync(join(open, "xdg", "tsflow"), { recursive: true });
    mkdirSync(join(open, "tmp", `tsflow-${process.getuid?.() ?? "user"}`), { recursive: true });
    chmodSync(join(open, "xdg", "tsflow"), 0o777);
    chmodSync(join(open, "tmp", `tsflow-${process.getuid?.() ?? "user"}`), 0o777);
    process.env.XDG_CACHE_HOME = join(open, "xdg");
    process.env.TMPDIR = join(open, "tmp");
    expect(await reduceExtraCaCerts(env(bundle))).toBeUndefined();
    expect(workerCaEnv(env(bundle))).toEqual({});
    expect(readdirSync(join(open, "xdg", "tsflow"))).toEqual([]);
  });

  describe("tsflow run", () => {
    let server: Server;
    let url: string;
    beforeAll(async () => {
      server = createServer({ key: pki.key, cert: pki.cert }, (_req, res) => res.end("trusted"));
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    const run = async (extra: Record<string, string | undefined>) => {
      const trace = join(dir, `trace-${n}-${Math.random().toString(36).slice(2)}.jsonl`);
      const result = await runFixture({ XDG_CACHE_HOME: cache, TSFLOW_TRACE_STARTUP: trace, EXTRA_CA_TEST_URL: url, ...extra });
      expect(result.code, result.stderr).toBe(0);
      const seen = JSON.parse(/extra-ca (\{.*\})/.exec(result.stdout)![1]!) as { ca: string | null; carried: string | null; body: string | null };
      const lines = readFileSync(trace, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as TraceLine);
      const usedReduced = lines.filter((l) => l.role === "worker" && l.phase.startsWith("NODE_EXTRA_CA_CERTS was the reduced copy")).map((l) => l.phase);
      return { seen, usedReduced };
    };

    it("trusts the same CAs: the first run makes the copy, the next starts its worker with it, and steps see the user's path", async () => {
      const first = await run({ NODE_EXTRA_CA_CERTS: bundle });
      expect(first.seen).toEqual({ ca: bundle, carried: null, body: "trusted" });
      expect(first.usedReduced).toEqual([]);
      const made = readdirSync(join(cache, "tsflow", "ca")).filter((f) => f.endsWith(".pem"));
      expect(made.length).toBe(1);
      const second = await run({ NODE_EXTRA_CA_CERTS: bundle });
      expect(second.seen).toEqual({ ca: bundle, carried: null, body: "trusted" });
      expect(second.usedReduced).toEqual([`NODE_EXTRA_CA_CERTS was the reduced copy ${join(cache, "tsflow", "ca", made[0]!)}`]);
    });

    it("with NODE_EXTRA_CA_CERTS unset runs as before (and the test CA is then not trusted)", async () => {
      const trace = join(dir, `trace-unset-${n}.jsonl`);
      const result = await runFixture({ XDG_CACHE_HOME: cache, TSFLOW_TRACE_STARTUP: trace, EXTRA_CA_TEST_URL: undefined, NODE_EXTRA_CA_CERTS: undefined });
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(/extra-ca (\{.*\})/.exec(result.stdout)![1]!)).toEqual({ ca: null, carried: null, body: null });
      expect(readFileSync(trace, "utf8")).not.toContain("reduced copy");
      expect(existsSync(join(cache, "tsflow", "ca")) ? readdirSync(join(cache, "tsflow", "ca")) : []).toEqual([]);
      const failed = await runFixture({ XDG_CACHE_HOME: cache, EXTRA_CA_TEST_URL: url, NODE_EXTRA_CA_CERTS: undefined });
      expect(failed.code).not.toBe(0);
      expect(failed.stdout + failed.stderr).toMatch(/certificate/i);
    });
  });
});
