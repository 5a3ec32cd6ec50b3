import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runConnectionLoad } from "./tls-handshake-load.js";

// The benchmark's full-handshake client against local Node servers (loopback only, stopped in afterAll):
// the server itself says whether a handshake was resumed, since a client that resumed would make the
// benchmark's figure a resumed-handshake one again.
const NAME = "bench.example.test";

describe("runConnectionLoad (real sockets)", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-tls-load-"));
  let cert = "";
  let otherCa = "";
  let tlsServer: https.Server;
  let plainServer: http.Server;
  const handshakes = { full: 0, resumed: 0 };
  const port = (s: http.Server) => (s.address() as AddressInfo).port;

  const selfSigned = (name: string, cn: string) => {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", `/CN=${cn}`, "-addext", `subjectAltName=DNS:${cn}`, "-keyout", path.join(dir, `${name}.key`), "-out", path.join(dir, `${name}.crt`)], { stdio: "ignore" });
    return { key: readFileSync(path.join(dir, `${name}.key`), "utf8"), cert: readFileSync(path.join(dir, `${name}.crt`), "utf8") };
  };
  const app: http.RequestListener = (req, res) => {
    res.writeHead(req.url === "/fail" ? 500 : 200, { "Content-Type": "text/plain" });
    res.end("hello");
  };

  beforeAll(async () => {
    const served = selfSigned("served", NAME);
    cert = served.cert;
    otherCa = selfSigned("other", NAME).cert;
    tlsServer = https.createServer({ key: served.key, cert: served.cert }, app);
    tlsServer.on("secureConnection", (s) => (s.isSessionReused() ? handshakes.resumed++ : handshakes.full++));
    plainServer = http.createServer(app);
    await Promise.all([tlsServer, plainServer].map((s) => new Promise<void>((r) => s.listen(0, "127.0.0.1", r))));
  });

  afterAll(async () => {
    await Promise.all([tlsServer, plainServer].map((s) => new Promise((r) => (s ? s.close(r) : r(undefined)))));
    rmSync(dir, { recursive: true, force: true });
  });

  it("does a full TLS handshake for every connection, verifying the certificate for the name", async () => {
    handshakes.full = handshakes.resumed = 0;
    const r = await runConnectionLoad({ port: port(tlsServer), host: NAME, tls: { ca: cert }, concurrency: 4, durationMs: 400 });
    expect(r.failed, r.firstError).toBe(0);
    expect(r.ok).toBeGreaterThan(10);
    expect(handshakes).toEqual({ full: r.ok, resumed: 0 });
    expect(r.resumed).toBe(0);
    expect(r.serials).toEqual([new X509Certificate(cert).serialNumber]);
    expect(r.negotiated).toMatch(/^TLSv1\.3 /);
    expect(r.rate).toBeCloseTo(r.ok / r.seconds);
    expect(r.clientCpuMs).toBeGreaterThan(0);
  });

  it("fails every connection when the certificate does not verify", async () => {
    const r = await runConnectionLoad({ port: port(tlsServer), host: NAME, tls: { ca: otherCa }, concurrency: 2, durationMs: 200 });
    expect(r.ok).toBe(0);
    expect(r.failed).toBeGreaterThan(0);
    expect(r.firstError).toMatch(/certificate|self.signed/i);
  });

  it("over plain TCP, counts complete answers and tells other statuses apart", async () => {
    const ok = await runConnectionLoad({ port: port(plainServer), host: NAME, concurrency: 4, durationMs: 300 });
    expect(ok.failed, ok.firstError).toBe(0);
    expect(ok.ok).toBeGreaterThan(10);
    expect(ok.serials).toEqual([]);
    const failing = await runConnectionLoad({ port: port(plainServer), host: NAME, path: "/fail", concurrency: 2, durationMs: 200 });
    expect(failing.ok).toBe(0);
    expect(failing.non2xx3xx).toBeGreaterThan(0);
  });
});
