// Integration test of environment jobs applying certificates to the real /usr/sbin/haproxy
// (HTTPS port on): routes installs, replaces and removes what is served for each name, remove
// takes them off. The environments live in a real registry; containers are not involved in
// these actions, so the engine is the in-memory fake. Tests run in order and share one proxy.
import fs from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EnvironmentSpec, TlsCertificate } from "@slipway/proto";
import { createLogger, environmentSlug } from "@slipway/core";
import { EnvironmentRegistry } from "../envs/environment-registry.js";
import { Environments } from "../envs/environments.js";
import { HaproxyIngress } from "../ingress/haproxy.ingress.js";
import type { JobReporter } from "../report/job-reporter.js";
import { reservePort } from "../testing/ports.js";
import { certDir, httpGet, served, testCertificate } from "../testing/certs.js";
import { FakeContainerRuntime, FakeJobReporter } from "../testing/fakes.js";
import { runEnvironmentJob } from "./environment.runner.js";

const A = "shop.https.test";
const B = "www.shop.https.test";
const ID = "8e3b4c5d-6e7f-4a81-9b2c-3d4e5f6a7b8c";
const THUMB = "Tq5aPqZ1x7lIF0VYlkqcLwBsyZ8eW3pDf6Y2jQ9r0sA";




/** A GET over HTTP or HTTPS (SNI = host, certificate not checked) with a Host header: status, Location and Strict-Transport-Security. */
function headersOf(tls: boolean, port: number, host: string, urlPath: string): Promise<{ status: number; location?: string; hsts?: string }> {
  return new Promise((resolve, reject) => {
    const opts = { host: "127.0.0.1", port, path: urlPath, agent: false as const, headers: { host }, servername: host.split(":")[0], rejectUnauthorized: false };
    const req = (tls ? https : http).get(opts, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, hsts: res.headers["strict-transport-security"] as string | undefined }));
    });
    req.setTimeout(5000, () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
  });
}

describe("environment jobs install certificates on a real haproxy", () => {
  let dir: string;
  let httpPort: number;
  let httpsPort: number;
  let ingress: HaproxyIngress;
  let envs: Environments;
  let upstream: http.Server;
  let certA: TlsCertificate;
  let certA2: TlsCertificate;
  let certB: TlsCertificate;
  const slug = environmentSlug(ID);

  async function job(action: string, extra: Partial<EnvironmentSpec> = {}): Promise<{ result: string; lines: string[] }> {
    const report = new FakeJobReporter();
    const spec: EnvironmentSpec = { action, app: "shop", environment: "prod", environmentId: ID, hostnames: [A, B], sleepAfterSeconds: 0, forwardTo: "", certificates: [], acmeThumbprint: "", ...extra };
    const result = await runEnvironmentJob({ spec, envs, report: report as unknown as JobReporter, log: createLogger("test", "silent") });
    return { result, lines: report.lines() };
  }

  beforeAll(async () => {
    dir = certDir();
    [certA, certA2, certB] = await Promise.all([testCertificate(dir, [A], "0C01"), testCertificate(dir, [A], "0C02"), testCertificate(dir, [B], "0D01")]);
    upstream = http.createServer((req, res) => res.end(`hello from ${req.headers.host}`));
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    httpPort = await reservePort();
    httpsPort = await reservePort();
    ingress = new HaproxyIngress({ dir: path.join(dir, "haproxy"), httpPort, httpsPort, logger: pino({ level: "silent" }) });
    await ingress.start();
    const registry = new EnvironmentRegistry(dir);
    envs = new Environments({ hostId: "host-1", registry, runtime: new FakeContainerRuntime(), ingress, log: createLogger("test", "silent") });
    await registry.put({
      app: "shop", environment: "prod", environmentId: ID, slug, image: "shop:1", webPort: 5000, probe: { path: "/", acceptedStatuses: "200-399", startupTimeoutMs: 10_000, probeTimeoutMs: 1_000, maxRetries: 50 },
      containerIds: [], deploymentId: "dep-1", hostnames: [A], basicAuth: null, sleepAfterSeconds: 0, state: "running",
    });
    await ingress.ensureBackend({ name: slug, hostnames: [A], maxServers: 2 });
    await ingress.switchTraffic(slug, [{ id: "c1", host: "127.0.0.1", port: (upstream.address() as AddressInfo).port }]);
  }, 90_000);

  afterAll(async () => {
    await ingress?.stop().catch(() => undefined);
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  }, 60_000);

  it("routes: the host names' certificates are served on the HTTPS port and challenges answered with the thumbprint", async () => {
    expect((await served(httpsPort, A)).cn).toBe("slipway-default");
    const r = await job("routes", { certificates: [certA, certB], acmeThumbprint: THUMB });
    expect(r.result).toBe("succeeded");
    expect(await served(httpsPort, A)).toEqual({ serial: "C01", cn: A });
    expect(await served(httpsPort, B)).toEqual({ serial: "D01", cn: B });
    expect(await httpGet(httpPort, B, "/.well-known/acme-challenge/tok123")).toEqual({ status: 200, body: `tok123.${THUMB}` });
    expect(r.lines).toEqual(expect.arrayContaining([expect.stringMatching(/^certificate for shop\.https\.test installed \(serial C01, valid until /)]));
  }, 60_000);

  it("routes again: the same serial is left alone, a renewed certificate replaces the served one", async () => {
    const same = await job("routes", { certificates: [certA, certB], acmeThumbprint: THUMB });
    expect(same.lines.filter((l) => l.startsWith("certificate for"))).toEqual([
      expect.stringMatching(/^certificate for shop\.https\.test already served \(serial C01/),
      expect.stringMatching(/^certificate for www\.shop\.https\.test already served \(serial D01/),
    ]);
    const renewed = await job("routes", { certificates: [certA2, certB], acmeThumbprint: THUMB });
    expect(renewed.result).toBe("succeeded");
    expect((await served(httpsPort, A)).serial).toBe("C02");
    expect(renewed.lines).toEqual(expect.arrayContaining([expect.stringMatching(/^certificate for shop\.https\.test replaced: serial C01 → serial C02/)]));
  }, 60_000);

  it("routes with the HTTPS redirect: 308 to https for a name whose certificate is served (HSTS on HTTPS), none for the others; off again at once, no reload", async () => {
    // A reload renames a new haproxy.cfg into place: the same file (inode) means none happened.
    const configInode = async () => (await fs.stat(path.join(dir, "haproxy", "haproxy.cfg"))).ino;
    const before = await configInode();
    const on = await job("routes", { certificates: [certA2, certB], httpsRedirect: true, hstsMaxAgeSeconds: 31536000 });
    expect(on.result).toBe("succeeded");
    expect(on.lines).toContain(`HTTP → HTTPS (308) for ${A}, ${B}; HSTS max-age 31536000 s`);
    const redirected = await headersOf(false, httpPort, `${A}:${httpPort}`, "/cart?item=7");
    expect(redirected).toMatchObject({ status: 308, location: `https://${A}/cart?item=7` });
    expect(redirected.hsts).toBeUndefined();
    // The challenge path is still answered over HTTP.
    expect((await httpGet(httpPort, A, "/.well-known/acme-challenge/tok9")).status).toBe(200);
    expect(await headersOf(true, httpsPort, A, "/")).toMatchObject({ status: 200, hsts: "max-age=31536000" });
    // A name without a certificate stays on HTTP.
    const C = "plain.https.test";
    const noCert = await job("routes", { hostnames: [A, B, C], certificates: [certA2, certB], httpsRedirect: true, hstsMaxAgeSeconds: 0 });
    expect(noCert.lines).toContain(`no HTTPS redirect yet for ${C}: no certificate served for it`);
    expect(await httpGet(httpPort, C, "/")).toEqual({ status: 200, body: `hello from ${C}` });
    expect((await headersOf(false, httpPort, A, "/")).status).toBe(308);
    expect((await headersOf(true, httpsPort, A, "/")).hsts).toBeUndefined();
    const off = await job("routes", { certificates: [certA2, certB] });
    expect(off.result).toBe("succeeded");
    expect(await httpGet(httpPort, A, "/")).toEqual({ status: 200, body: `hello from ${A}` });
    expect(await configInode()).toBe(before);
  }, 60_000);

  it("a certificate HAProxy cannot take is a log line; the routes job succeeds and the previous certificate stays served", async () => {
    const mismatched = { ...certA, keyPem: certB.keyPem };
    const r = await job("routes", { certificates: [mismatched, certB] });
    expect(r.result).toBe("succeeded");
    expect(r.lines).toContain("certificate for shop.https.test not installed: the private key does not belong to the certificate; the site stays on HTTP and the previous certificate, if any");
    expect((await served(httpsPort, A)).serial).toBe("C02");
  }, 60_000);

  it("routes without a host name removes its certificate; remove takes the rest off", async () => {
    const r = await job("routes", { hostnames: [A], certificates: [certA2] });
    expect(r.lines).toContain("certificate for www.shop.https.test removed: this environment no longer serves these host names");
    expect((await served(httpsPort, B)).cn).toBe("slipway-default");
    expect((await served(httpsPort, A)).serial).toBe("C02");
    const removed = await job("remove");
    expect(removed.result).toBe("succeeded");
    expect((await served(httpsPort, A)).cn).toBe("slipway-default");
    expect(await ingress.tls!.list()).toEqual([]);
  }, 60_000);

  it("handoff (the environment moved away): the host forwards and serves the names' certificates, a renewed one too; remove takes them off", async () => {
    const to = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const moved = await job("handoff", { hostnames: [A], forwardTo: to, certificates: [certA] });
    expect(moved.result).toBe("succeeded");
    expect(await served(httpsPort, A)).toEqual({ serial: "C01", cn: A });
    expect(await httpGet(httpPort, A, "/")).toEqual({ status: 200, body: `hello from ${A}` });
    // Renewed after the move: the control plane sends the handoff again with the new certificate.
    const again = await job("handoff", { hostnames: [A], forwardTo: to, certificates: [certA2] });
    expect(again.result).toBe("succeeded");
    expect((await served(httpsPort, A)).serial).toBe("C02");
    // The environment is removed: the forwarding host (no entry of it) takes off what it served for its names.
    const removed = await job("remove", { hostnames: [A] });
    expect(removed.result).toBe("succeeded");
    expect((await served(httpsPort, A)).cn).toBe("slipway-default");
    expect(await ingress.tls!.list()).toEqual([]);
  }, 60_000);
});
