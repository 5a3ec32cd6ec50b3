import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import { testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { SecretBox } from "../services/secret-box.js";
import { EnvironmentService } from "../services/environment.service.js";
import { Lifecycle } from "../services/lifecycle.service.js";
import { listActivity } from "../repositories/activity.repository.js";
import { CertificateService } from "./certificate.service.js";
import { startPebble, type Pebble } from "./pebble.testing.js";
import { randomBytes } from "node:crypto";

/** Stands in for the ingress's stateless HTTP-01 answer; hosts in `broken` answer 404. */
function startResponder(): Promise<{ port: number; thumbprint: string; broken: Set<string>; close(): Promise<void> }> {
  const state = { thumbprint: "", broken: new Set<string>() };
  const server = http.createServer((req, res) => {
    const host = (req.headers.host ?? "").replace(/:\d+$/, "");
    const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? "");
    if (!m || state.broken.has(host)) return void res.writeHead(404).end("not found\n");
    res.writeHead(200, { "content-type": "text/plain" }).end(`${m[1]}.${state.thumbprint}`);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(Object.assign(state, { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) }))));
}

describe("custom domains get certificates from the scheduler's tick (wiring, against a real pebble)", () => {
  const log = createLogger("test", "silent");
  let cp: TestControlPlane;
  let pebble: Pebble | undefined;
  let responder: Awaited<ReturnType<typeof startResponder>>;
  let certificates: CertificateService;
  let environments: EnvironmentService;
  const call = (method: string, url: string, payload?: unknown) => cp.app.inject({ method: method as "GET", url, headers: { authorization: `Bearer ${cp.adminToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });

  beforeAll(async () => {
    responder = await startResponder();
    pebble = await startPebble({ httpPort: responder.port });
    cp = await testControlPlane("pglite");
    const box = new SecretBox(randomBytes(32));
    certificates = new CertificateService(cp.database.db, box, log, {
      acme: { directoryUrl: pebble.directoryUrl, challengePort: responder.port, challengeAddress: "127.0.0.1", tickIntervalMs: 60_000, retryMinMs: 30_000 },
      onResult: (r) => environments.certificateAttempt(r),
    });
    environments = new EnvironmentService(cp.database.db, new Lifecycle(log), box, cp.services.apps, { baseDomain: "example.test", onJobQueued: () => undefined }, undefined, certificates);
    expect((await call("POST", "/v1/apps", { name: "shop", repository: "https://git.example.test/shop.git" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps/shop/environments/live/domains", { hostname: "shop.example.com" })).statusCode).toBe(201);
  }, 120_000);

  afterAll(async () => {
    certificates?.stop();
    await pebble?.stop();
    await responder?.close();
    await cp?.close();
  });

  it("hands out the thumbprint without a CA call, issues for custom domains only, and says so in the API, the activity and /metrics", async () => {
    const admin = await cp.services.auth.authenticate(`Bearer ${cp.adminToken}`);
    expect((await environments.listDomains(admin, "shop", "live")).domains).toEqual([{ hostname: "shop.example.com", certificate: { state: "none", serial: null, notAfter: null, lastError: null, nextAttemptAt: null }, servedBy: [] }]);
    const before = await certificates.tlsFor(["shop-live.example.test", "shop.example.com"]);
    expect(before.certificates).toEqual([]);
    expect(before.acmeThumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    responder.thumbprint = before.acmeThumbprint;

    const started = Date.now();
    const results = await certificates.scheduler!.tick();
    const ms = Date.now() - started;
    // The generated default host name is never ordered: only the domains table.
    expect(results).toEqual([{ hostnames: ["shop.example.com"], outcome: "issued" }]);
    const served = await certificates.tlsFor(["shop-live.example.test", "shop.example.com"]);
    expect(served.certificates).toHaveLength(1);
    const [cert] = served.certificates;
    expect(cert!.hostnames).toEqual(["shop.example.com"]);
    const leaf = new X509Certificate(cert!.certPem);
    expect(leaf.subjectAltName).toContain("DNS:shop.example.com");
    expect(createPublicKey(createPrivateKey(cert!.keyPem)).export({ format: "jwk" })).toEqual(leaf.publicKey.export({ format: "jwk" }));

    const listed = (await environments.listDomains(admin, "shop", "live")).domains[0]!;
    expect(listed.certificate).toMatchObject({ state: "valid", serial: leaf.serialNumber, notAfter: new Date(leaf.validTo).toISOString(), lastError: null });
    const activity = await listActivity(cp.database.db, { app: "shop", limit: 20 });
    expect(activity.find((a) => a.action === "certificate.issued")).toMatchObject({ actor: "platform", environment: "live", details: { hostname: "shop.example.com", serial: leaf.serialNumber } });
    const metrics = (await cp.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toContain(`slipway_certificate_expiry_timestamp_seconds{domain="shop.example.com"} ${Math.floor(new Date(leaf.validTo).getTime() / 1000)}`);
    // Nothing is due any more: a second tick orders nothing.
    expect(await certificates.scheduler!.tick()).toEqual([]);
    console.log(`[certificate wiring] first certificate issued by one tick in ${ms} ms`);
  }, 60_000);

  it("a domain that does not answer the challenge path: no order, the reason in the API and the activity, no retry within the backoff", async () => {
    const admin = await cp.services.auth.authenticate(`Bearer ${cp.adminToken}`);
    responder.broken.add("bad.example.com");
    expect((await call("POST", "/v1/apps/shop/environments/live/domains", { hostname: "bad.example.com" })).statusCode).toBe(201);
    expect(await certificates.scheduler!.tick()).toEqual([{ hostnames: ["bad.example.com"], outcome: "unreachable" }]);
    const bad = (await environments.listDomains(admin, "shop", "live")).domains.find((d) => d.hostname === "bad.example.com")!;
    expect(bad.certificate.state).toBe("failed");
    expect(bad.certificate.lastError).toMatch(/bad\.example\.com does not answer the challenge path through Slipway's ingress.*got 404/);
    expect(new Date(bad.certificate.nextAttemptAt!).getTime()).toBeGreaterThan(Date.now() + 20_000);
    const failed = (await listActivity(cp.database.db, { app: "shop", limit: 20 })).find((a) => a.action === "certificate.failed");
    expect(failed?.details).toMatchObject({ hostname: "bad.example.com", reason: bad.certificate.lastError });
    expect(await certificates.scheduler!.tick()).toEqual([]);
    expect((await certificates.tlsFor(["bad.example.com"])).certificates).toEqual([]);
  }, 60_000);
});
