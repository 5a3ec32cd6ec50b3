// Integration tests of HTTPS at the ingress against the real /usr/sbin/haproxy, with certificates
// made here by openssl (a test CA and leaves); no ACME server is needed for this part.
// Tests run in order and share one proxy.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import fs from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import os from "node:os";
import type { AddressInfo } from "node:net";
import path from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HaproxyIngress } from "./haproxy.ingress.js";
import { reservePort } from "../testing/ports.js";
import { httpGet, served } from "../testing/certs.js";
import { normalizeSerial } from "./tls-store.js";

const run = promisify(execFile);
const logger = pino({ level: process.env["LOG_LEVEL"] ?? "silent" });
const A = "a.example.test";
const B = "b.example.test";
const THUMBPRINT = "Tq5aPqZ1x7lIF0VYlkqcLwBsyZ8eW3pDf6Y2jQ9r0sA";


/** A test CA and leaf certificates signed by it, with openssl. */
class TestPki {
  private n = 0;
  constructor(readonly dir: string) {}
  get caFile(): string {
    return path.join(this.dir, "ca.crt");
  }

  async init(): Promise<void> {
    await run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30", "-subj", "/CN=Slipway test CA",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", path.join(this.dir, "ca.key"), "-out", this.caFile]);
  }

  /** A leaf for `sans` with the given serial (hex). */
  async leaf(sans: string[], serialHex: string): Promise<{ certPem: string; keyPem: string; serial: string }> {
    const base = path.join(this.dir, `leaf${++this.n}`);
    await run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", `/CN=${sans[0]}`, "-keyout", `${base}.key`, "-out", `${base}.csr`]);
    await fs.writeFile(`${base}.ext`, `subjectAltName=${sans.map((s) => `DNS:${s}`).join(",")}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    await run("openssl", ["x509", "-req", "-in", `${base}.csr`, "-CA", this.caFile, "-CAkey", path.join(this.dir, "ca.key"), "-set_serial", `0x${serialHex}`, "-days", "30", "-extfile", `${base}.ext`, "-out", `${base}.crt`]);
    return { certPem: await fs.readFile(`${base}.crt`, "utf8"), keyPem: await fs.readFile(`${base}.key`, "utf8"), serial: normalizeSerial(serialHex) };
  }
}


interface Reply {
  status: number;
  body: string;
  serial: string;
}

function httpsGet(port: number, host: string, ca: Buffer, opts: { agent?: https.Agent; path?: string; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: "127.0.0.1", port, servername: host, ca, path: opts.path ?? "/", agent: opts.agent ?? false, headers: { host } }, (res) => {
      const serial = normalizeSerial((res.socket as tls.TLSSocket).getPeerCertificate().serialNumber ?? "");
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, serial }));
      res.on("error", reject);
    });
    req.setTimeout(opts.timeoutMs ?? 5000, () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
  });
}


interface LoadResult {
  ok: number;
  failed: number;
  errors: Record<string, number>;
  /** Requests answered, by the serial of the certificate their connection got. */
  bySerial: Record<string, number>;
}

/** `keepAlive` clients on one keep-alive agent and `fresh` clients opening a connection per request, back to back. */
function startLoad(port: number, host: string, ca: Buffer, keepAlive: number, fresh: number) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: keepAlive });
  const result: LoadResult = { ok: 0, failed: 0, errors: {}, bySerial: {} };
  let stopped = false;
  const loop = async (useAgent: boolean) => {
    while (!stopped) {
      try {
        const r = await httpsGet(port, host, ca, useAgent ? { agent } : {});
        if (r.status === 200) {
          result.ok++;
          result.bySerial[r.serial] = (result.bySerial[r.serial] ?? 0) + 1;
        } else {
          result.failed++;
          result.errors[`HTTP ${r.status}`] = (result.errors[`HTTP ${r.status}`] ?? 0) + 1;
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        result.failed++;
        result.errors[code] = (result.errors[code] ?? 0) + 1;
      }
    }
  };
  const loops = [...Array.from({ length: keepAlive }, () => loop(true)), ...Array.from({ length: fresh }, () => loop(false))];
  return {
    result,
    stop: async (): Promise<LoadResult> => {
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
      return result;
    },
  };
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("HTTPS at the ingress against a real haproxy", () => {
  let dir: string;
  let pki: TestPki;
  let ca: Buffer;
  let httpPort: number;
  let httpsPort: number;
  let ingress: HaproxyIngress;
  const others: HaproxyIngress[] = [];
  let upstream: http.Server;
  /** Answers to `/slow` requests, held until the test sends them. */
  const slow: (() => void)[] = [];
  let certA: Awaited<ReturnType<TestPki["leaf"]>>;
  let certA2: Awaited<ReturnType<TestPki["leaf"]>>;
  let certB: Awaited<ReturnType<TestPki["leaf"]>>;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "slw-tls-"));
    await fs.mkdir(path.join(dir, "pki"));
    pki = new TestPki(path.join(dir, "pki"));
    await pki.init();
    ca = await fs.readFile(pki.caFile);
    [certA, certA2, certB] = await Promise.all([pki.leaf([A], "0A01"), pki.leaf([A], "0A02"), pki.leaf([B], "0B01")]);
    upstream = http.createServer((req, res) => {
      const answer = () => res.end(`hello from ${req.headers.host} proto=${req.headers["x-forwarded-proto"] ?? "http"}`);
      // `/slow` stands for a long request (a download, a websocket-like stream): answered when the test says.
      if (req.url === "/slow") slow.push(answer);
      else answer();
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    httpPort = await reservePort();
    httpsPort = await reservePort();
    ingress = new HaproxyIngress({ dir: path.join(dir, "haproxy"), httpPort, httpsPort, logger });
    await ingress.start();
    await ingress.ensureBackend({ name: "shop", hostnames: [A, B], maxServers: 2 });
    await ingress.switchTraffic("shop", [{ id: "c1", host: "127.0.0.1", port: (upstream.address() as AddressInfo).port }]);
  }, 90_000);

  afterAll(async () => {
    for (const i of [...others, ingress]) await i?.stop().catch(() => undefined);
    for (const answer of slow.splice(0)) answer();
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("serves the agent's self-signed default certificate before any is installed", async () => {
    expect((await served(httpsPort, A)).cn).toBe("slipway-default");
    expect((await served(httpsPort, "unknown.example.test")).cn).toBe("slipway-default");
    expect(await ingress.tls!.list()).toEqual([]);
  });

  it("installs a certificate through the runtime API: verified by openssl s_client, routed like HTTP", async () => {
    const installed = await ingress.tls!.install({ hostnames: [A], ...certA });
    expect(installed.serial).toBe(certA.serial);
    expect(installed.notAfter.getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    expect(statSync(installed.path).mode & 0o777).toBe(0o600);
    const sclient = await new Promise<string>((resolve, reject) => {
      const child = execFile("openssl", ["s_client", "-connect", `127.0.0.1:${httpsPort}`, "-servername", A, "-verify_return_error", "-verify_hostname", A, "-CAfile", pki.caFile],
        { timeout: 15_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      child.stdin?.end();
    });
    expect(sclient).toMatch(/Verify return code: 0 \(ok\)/);
    const reply = await httpsGet(httpsPort, A, ca);
    expect(reply).toMatchObject({ status: 200, body: `hello from ${A} proto=https`, serial: certA.serial });
    // HTTP/2 by ALPN, routed by :authority like Host.
    const h2 = await new Promise<{ status: number; body: string; alpn: string | false | null }>((resolve, reject) => {
      const session = http2.connect(`https://${A}:${httpsPort}`, { ca, host: "127.0.0.1", servername: A }, () => undefined);
      session.on("error", reject);
      const req = session.request({ ":path": "/", ":authority": A });
      let status = 0;
      let body = "";
      req.setEncoding("utf8");
      req.on("response", (h) => (status = Number(h[":status"])));
      req.on("data", (d: string) => (body += d));
      req.on("end", () => {
        const alpn = (session.socket as tls.TLSSocket).alpnProtocol;
        session.close();
        resolve({ status, body, alpn });
      });
      req.on("error", reject);
      req.end();
    });
    expect(h2).toEqual({ status: 200, body: `hello from ${A} proto=https`, alpn: "h2" });
    expect((await served(httpsPort, "unknown.example.test")).cn).toBe("slipway-default");
    expect((await ingress.tls!.list()).map((c) => [c.hostnames, c.serial])).toEqual([[[A], certA.serial]]);
  }, 60_000);

  it("serves a wildcard certificate for every name one label under it (an uploaded or DNS-01 one for default host names), not deeper", async () => {
    const wild = await pki.leaf(["*.w.example.test"], "0C01");
    const installed = await ingress.tls!.install({ hostnames: ["*.w.example.test"], ...wild });
    expect(path.basename(installed.path)).toBe("_wildcard.w.example.test.pem");
    // Verified against the test CA for the name (404: no environment routes it, the certificate is what counts).
    expect(await httpsGet(httpsPort, "shop-test.w.example.test", ca)).toMatchObject({ status: 404, serial: "C01" });
    await expect(httpsGet(httpsPort, "a.b.w.example.test", ca)).rejects.toThrow(/self-signed|unable to verify|altnames|Hostname/i);
    expect((await ingress.tls!.list()).find((c) => c.hostnames[0] === "*.w.example.test")?.serial).toBe("C01");
    // A wildcard name the certificate does not carry is refused.
    await expect(ingress.tls!.install({ hostnames: ["*.example.test"], ...wild })).rejects.toThrow(/do not cover '\*\.example\.test'/);
    expect(await ingress.tls!.remove(["*.w.example.test"])).toBe(true);
  }, 60_000);

  it("answers ACME HTTP-01 challenges statelessly for any host once the thumbprint is set", async () => {
    expect((await httpGet(httpPort, "other.example.test", "/.well-known/acme-challenge/tok_EN-1")).status).toBe(404);
    await ingress.setAcmeThumbprint(THUMBPRINT);
    for (const host of ["other.example.test", A]) {
      expect(await httpGet(httpPort, host, "/.well-known/acme-challenge/tok_EN-1")).toEqual({ status: 200, body: `tok_EN-1.${THUMBPRINT}` });
    }
    // Other paths still route.
    expect((await httpGet(httpPort, A, "/")).body).toBe(`hello from ${A} proto=http`);
    expect((await httpGet(httpPort, A, "/.well-known/acme-challenge/a/b")).status).toBe(200);
    expect((await httpGet(httpPort, A, "/.well-known/acme-challenge/a/b")).body).toBe(`hello from ${A} proto=http`);
    // The certificate installed at runtime survived the reload the new rule took.
    expect((await served(httpsPort, A, ca)).serial).toBe(certA.serial);
  }, 60_000);

  it("replaces the certificate under keep-alive load and a long request: 0 failures, new connections get the new serial", async () => {
    const load = startLoad(httpsPort, A, ca, 12, 2);
    let longDone = false;
    const long = httpsGet(httpsPort, A, ca, { path: "/slow", timeoutMs: 60_000 }).finally(() => (longDone = true));
    await until("the long request to reach the app", () => (slow.length === 1 ? true : undefined));
    await until("load to run", () => (load.result.ok >= 200 ? true : undefined));
    const before = load.result.ok;
    const installed = await ingress.tls!.install({ hostnames: [A], ...certA2 });
    expect(installed.serial).toBe(certA2.serial);
    // The long request was in flight across the commit.
    expect(longDone).toBe(false);
    expect((await served(httpsPort, A, ca)).serial).toBe(certA2.serial);
    await until("requests on the new certificate", () => ((load.result.bySerial[certA2.serial] ?? 0) >= 100 ? true : undefined));
    expect(longDone).toBe(false);
    slow.shift()!();
    const result = await load.stop();
    const longReply = await long;
    console.log(`certificate swap under load: ${result.ok} requests (${result.ok - before} after the swap started), ${result.failed} failed, by serial ${JSON.stringify(result.bySerial)}`);
    expect(result.errors).toEqual({});
    expect(result.failed).toBe(0);
    expect(longReply).toMatchObject({ status: 200, serial: certA.serial });
    expect((await ingress.tls!.list()).map((c) => c.serial)).toEqual([certA2.serial]);
  }, 90_000);

  it("refuses bad input before touching anything; the previous certificate stays served", async () => {
    await expect(ingress.tls!.install({ hostnames: [A], certPem: certA.certPem, keyPem: certB.keyPem })).rejects.toThrow(/does not belong/);
    await expect(ingress.tls!.install({ hostnames: [A], ...certB })).rejects.toThrow(/do not cover 'a.example.test'/);
    await expect(ingress.tls!.install({ hostnames: [A], certPem: "-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n", keyPem: certA.keyPem })).rejects.toThrow(/does not parse/);
    await expect(ingress.tls!.install({ hostnames: [A], certPem: "garbage", keyPem: "garbage" })).rejects.toThrow(/not PEM/);
    expect((await served(httpsPort, A, ca)).serial).toBe(certA2.serial);
    expect((await ingress.tls!.list()).map((c) => c.serial)).toEqual([certA2.serial]);
  }, 60_000);

  it("keeps serving every certificate across a reload, an agent restart (adoption) and a restart of HAProxy", async () => {
    await ingress.tls!.install({ hostnames: [B], ...certB });
    const check = async (what: string) => {
      expect((await served(httpsPort, A, ca)).serial, what).toBe(certA2.serial);
      expect((await served(httpsPort, B, ca)).serial, what).toBe(certB.serial);
      expect((await httpsGet(httpsPort, B, ca)).body, what).toBe(`hello from ${B} proto=https`);
    };
    await check("installed");
    const pid = ingress.pid;
    // A structural change takes the agent's reload path.
    await ingress.ensureBackend({ name: "shop", hostnames: [A, B], maxServers: 3 });
    await check("after a reload");
    await ingress.stop().catch(() => undefined);
    expect(pid).toBeDefined();
    // Stopped: the next adapter starts HAProxy afresh from the files on disk.
    const fresh = new HaproxyIngress({ dir: path.join(dir, "haproxy"), httpPort, httpsPort, logger });
    others.push(fresh);
    await fresh.start();
    await check("after a restart of HAProxy");
    expect((await httpGet(httpPort, "x.example.test", "/.well-known/acme-challenge/t1")).body).toBe(`t1.${THUMBPRINT}`);
    // An agent restart adopts the running HAProxy.
    const adopter = new HaproxyIngress({ dir: path.join(dir, "haproxy"), httpPort, httpsPort, logger });
    others.push(adopter);
    await adopter.start();
    expect(adopter.pid).toBe(fresh.pid);
    await check("after an agent restart");
    expect((await adopter.tls!.list()).map((c) => [c.hostnames, c.serial])).toEqual([[[A], certA2.serial], [[B], certB.serial]]);
    // Removal: the name falls back to the default certificate, on disk as well.
    expect(await adopter.tls!.remove([B])).toBe(true);
    expect((await served(httpsPort, B)).cn).toBe("slipway-default");
    expect((await served(httpsPort, A, ca)).serial).toBe(certA2.serial);
    expect((await fs.readFile(path.join(dir, "haproxy", "crt-list.txt"), "utf8")).includes(B)).toBe(false);
  }, 120_000);
});
