import http from "node:http";
import https from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pebble } from "@slipway/control-plane/testing/pebble";
import { Platform } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";
import { waitFor } from "./support/processes.js";
import { httpsGet, sClient, startAcme } from "./support/https.js";

const DOMAIN = "shop.example.test";
const VALIDITY_SECONDS = 60;

/** A GET through the ingress with Host (and SNI, over HTTPS when `ca` is given): status, Location and Strict-Transport-Security. */
function headersVia(port: number, host: string, urlPath: string, ca?: string): Promise<{ status: number; location?: string; hsts?: string }> {
  return new Promise((resolve, reject) => {
    const opts = { host: "127.0.0.1", port, path: urlPath, headers: { host }, agent: false as const, timeout: 10_000 };
    const req = (ca ? https.get({ ...opts, servername: host, ca }, done) : http.get(opts, done));
    function done(res: http.IncomingMessage) {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, hsts: res.headers["strict-transport-security"] as string | undefined }));
    }
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}



/**
 * Issue 15, must show 1: a custom domain added to a deployed environment gets a certificate from
 * a real ACME server (pebble) through the control plane's scheduler, and the agent's ingress
 * serves it, verified by openssl against pebble's root, within 30 s of adding the domain.
 */
describe("automatic HTTPS: a custom domain is served over HTTPS with a certificate from the CA", () => {
  let pebble: Pebble;
  let platform: Platform;
  const repo = new TestRepo();
  let httpPort = 0;
  let httpsPort = 0;
  let rootFile = "";

  beforeAll(async () => {
    httpPort = await reservePort();
    httpsPort = await reservePort();
    // Short-lived certificates: renewal is due at a third of the lifetime left (40 s after issuance, 20 s before expiry).
    const acme = await startAcme({ httpPort, certificateValiditySeconds: VALIDITY_SECONDS });
    ({ pebble, rootFile } = acme);
    platform = new Platform({ database: "postgres", cpEnv: acme.cpEnv });
    await platform.start();
    await platform.addAgent({ SLIPWAY_INGRESS_HTTP_PORT: String(httpPort), SLIPWAY_INGRESS_HTTPS_PORT: String(httpsPort) });
    repo.commit(helloApp("hello over https"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "shop", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 10 } } });
    const d = await platform.api.deploy("shop", "test");
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
  }, 240_000);

  afterAll(async () => {
    await platform?.stop();
    await pebble?.stop();
    if (httpPort) releasePort(httpPort);
    if (httpsPort) releasePort(httpsPort);
  });

  it("adding the domain gives it a certificate served within 30 s, verified with openssl against pebble's root; the API, activity and /metrics say so", async () => {
    const api = platform.api;
    const added = Date.now();
    await api.call("POST", "/v1/apps/shop/environments/test/domains", { hostname: DOMAIN });
    let lastFailure = "";
    await waitFor(`${DOMAIN} to be served over HTTPS with a certificate that verifies`, async () => {
      lastFailure = await sClient(httpsPort, DOMAIN, rootFile);
      return lastFailure === "";
    }, { timeoutMs: 30_000, intervalMs: 250 }).catch((err: Error) => {
      throw new Error(`${err.message}; last openssl: ${lastFailure}; control plane: ${platform.tail("control-plane.log", 15)}; agent: ${platform.tail("agent-0.log", 15)}`);
    });
    const servedMs = Date.now() - added;

    const res = await httpsGet(httpsPort, DOMAIN, pebble.rootPem);
    expect(res.status).toBe(200);
    expect(res.body).toContain("hello over https");

    const { domains } = await api.call("GET", "/v1/apps/shop/environments/test/domains");
    // servedBy follows with the agent's next heartbeat (checked in https-hosts.e2e.test.ts).
    expect(domains).toEqual([{ hostname: DOMAIN, certificate: expect.objectContaining({ state: "valid", lastError: null }), servedBy: expect.any(Array) }]);
    expect(domains[0].certificate.serial.toUpperCase()).toBe(res.serial.toUpperCase());
    const activity = await api.call("GET", "/v1/activity?app=shop");
    expect(JSON.stringify(activity)).toContain("certificate.issued");
    const metrics = await (await fetch(`${api.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`slipway_certificate_expiry_timestamp_seconds\\{domain="${DOMAIN.replace(/\./g, "\\.")}"\\} \\d+`));
    console.log(`[https e2e] ${DOMAIN}: added → served over HTTPS (openssl verifies) in ${servedMs} ms`);
  }, 60_000);

  it("with the environment's HTTPS redirect on: HTTP → HTTPS (308) for the domain with a certificate, HSTS on its HTTPS responses; the default domain (no certificate) stays on HTTP", async () => {
    const api = platform.api;
    const env = await api.call("PATCH", "/v1/apps/shop/environments/test", { https: { redirect: true, hstsMaxAgeSeconds: 86_400 } });
    expect(env.https).toEqual({ redirect: true, hstsMaxAgeSeconds: 86_400 });
    const defaultDomain = (env.domains as string[]).find((d) => d !== DOMAIN)!;
    // Applied by a routes job: no deployment.
    const redirected = await waitFor("HTTP to be redirected", async () => {
      const r = await headersVia(httpPort, DOMAIN, "/basket?id=7");
      return r.status === 308 ? r : undefined;
    }, { timeoutMs: 20_000, intervalMs: 250 });
    expect(redirected.location).toBe(`https://${DOMAIN}/basket?id=7`);
    const secure = await headersVia(httpsPort, DOMAIN, "/", pebble.rootPem);
    expect(secure).toMatchObject({ status: 200, hsts: "max-age=86400" });
    expect(await headersVia(httpPort, defaultDomain, "/")).toMatchObject({ status: 200, location: undefined });
    await api.call("PATCH", "/v1/apps/shop/environments/test", { https: { redirect: false, hstsMaxAgeSeconds: 0 } });
    await waitFor("HTTP served again", async () => (await headersVia(httpPort, DOMAIN, "/")).status === 200, { timeoutMs: 20_000, intervalMs: 250 });
    expect((await headersVia(httpsPort, DOMAIN, "/", pebble.rootPem)).hsts).toBeUndefined();
  }, 60_000);

  it("renews at a third of the lifetime left and serves the new certificate without a failed request on keep-alive clients", async () => {
    const api = platform.api;
    const first = (await api.call("GET", "/v1/apps/shop/environments/test/domains")).domains[0].certificate;
    const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 4, ca: pebble.rootPem });
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const clients = Array.from({ length: 4 }, async () => {
      while (running) {
        await httpsGet(httpsPort, DOMAIN, pebble.rootPem, keepAlive).then(
          (r) => (r.status === 200 && r.body.includes("hello over https") ? ok++ : failures.push(`status ${r.status}`)),
          (err: Error) => failures.push(err.message),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    const renewed = await waitFor("a new serial served on a new connection", async () => {
      const r = await httpsGet(httpsPort, DOMAIN, pebble.rootPem);
      return r.serial.toUpperCase() !== String(first.serial).toUpperCase() ? r : undefined;
    }, { timeoutMs: VALIDITY_SECONDS * 1000, intervalMs: 500 });
    running = false;
    await Promise.all(clients);
    keepAlive.destroy();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(0);
    expect(await sClient(httpsPort, DOMAIN, rootFile)).toBe("");
    const now = (await api.call("GET", "/v1/apps/shop/environments/test/domains")).domains[0].certificate;
    expect(now).toMatchObject({ state: "valid", lastError: null });
    expect(now.serial.toUpperCase()).toBe(renewed.serial.toUpperCase());
    expect(JSON.stringify(await api.call("GET", "/v1/activity?app=shop"))).toContain("certificate.renewed");
    console.log(`[https e2e] renewed: ${ok} keep-alive requests, 0 failed, new serial served`);
  }, 90_000);
});
