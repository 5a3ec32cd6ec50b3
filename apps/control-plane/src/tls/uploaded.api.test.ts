import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import { buildApp } from "../app.js";
import { testControlPlane, type DbKind, type TestControlPlane } from "../testing/harness.js";
import { SecretBox } from "../services/secret-box.js";
import { listActivity } from "../repositories/activity.repository.js";
import { ensureCertificate, recordIssued } from "../repositories/certificates.repository.js";
import { CertificateService } from "./certificate.service.js";
import { createTestCa, type TestCa } from "./test-ca.testing.js";

/**
 * POST/GET/DELETE /v1/certificates through the real API (auth, validation, error bodies) over
 * PGlite and PostgreSQL, with certificates made by a throw-away CA; delivery is recorded, not queued.
 */
describe.each<DbKind>(["pglite", "postgres"])("certificates an admin uploads, through the API (%s)", (kind) => {
  const log = createLogger("test", "silent");
  let cp: TestControlPlane;
  let app: FastifyInstance;
  let ca: TestCa;
  let certificates: CertificateService;
  let clockAt: Date | undefined;
  let box: SecretBox;
  const delivered: string[][] = [];
  const tokens = { admin: "", deployer: "", viewer: "" };
  const call = (method: string, url: string, payload?: unknown, who: keyof typeof tokens = "admin") =>
    app.inject({ method: method as "GET", url, headers: { authorization: `Bearer ${tokens[who]}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
  const count = async () => (await cp.database.db.selectFrom("certificates").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n;

  beforeAll(async () => {
    ca = createTestCa();
    cp = await testControlPlane(kind);
    box = new SecretBox(randomBytes(32));
    certificates = new CertificateService(cp.database.db, box, log, {
      clock: () => clockAt ?? new Date(),
      deliver: async (names) => {
        delivered.push([...names]);
        return 1;
      },
    });
    const s = cp.services;
    app = await buildApp({ db: cp.database.db, log, auth: s.auth, apps: s.apps, deployments: s.deployments, environments: s.environments, data: s.data, hosts: s.hosts, joinTokenTtlMs: 60_000, readiness: [], certificates });
    tokens.admin = cp.adminToken;
    expect((await call("POST", "/v1/apps", { name: "shop", repository: "https://git.example.test/shop.git" })).statusCode).toBe(201);
    tokens.deployer = (await call("POST", "/v1/tokens", { name: "ci", role: "deployer", apps: ["shop"] })).json().token;
    tokens.viewer = (await call("POST", "/v1/tokens", { name: "dash", role: "viewer", apps: ["shop"] })).json().token;
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await cp?.close();
    ca?.remove();
  });

  it("refuses each bad upload with a 400 naming the field, and stores nothing", async () => {
    const good = ca.issue({ dns: ["*.example.test"] });
    const other = ca.issue({ dns: ["other.example.test"] });
    const noNames = ca.issue({ cn: "shop.example.test" });
    const leaf = new X509Certificate(good.certPem);
    const cases: Array<[string, unknown, string, RegExp, Date?]> = [
      ["no key", { certificate: good.chainPem }, "privateKey", /required/],
      ["an unknown field", { certificate: good.chainPem, privateKey: good.keyPem, chain: "x" }, "chain", /additional/],
      ["not PEM", { certificate: "hello", privateKey: good.keyPem }, "certificate", /not a PEM certificate/],
      ["a key that is not PEM", { certificate: good.chainPem, privateKey: "nope" }, "privateKey", /not a PEM private key/],
      ["the key of another certificate", { certificate: good.chainPem, privateKey: other.keyPem }, "privateKey", /does not match the certificate/],
      ["no DNS name", { certificate: noNames.chainPem, privateKey: noNames.keyPem }, "certificate", /no DNS name/],
      ["expired", { certificate: good.chainPem, privateKey: good.keyPem }, "certificate", /^expired on /, new Date(new Date(leaf.validTo).getTime() + 60_000)],
      ["not valid yet", { certificate: good.chainPem, privateKey: good.keyPem }, "certificate", /^not valid yet/, new Date(new Date(leaf.validFrom).getTime() - 3_600_000)],
    ];
    for (const [what, body, field, message, at] of cases) {
      clockAt = at;
      const res = await call("POST", "/v1/certificates", body);
      clockAt = undefined;
      expect(res.statusCode, `${what}: ${res.body}`).toBe(400);
      const { error } = res.json();
      expect(error.code, what).toBe("invalid_request");
      expect(error.details?.[field], `${what}: ${res.body}`).toMatch(message);
    }
    expect(Number(await count())).toBe(0);
    expect((await call("GET", "/v1/certificates")).json()).toEqual([]);
    expect(delivered).toEqual([]);
  });

  it("lets only an admin upload or remove (deployer and viewer 403 before the body is read); admin and deployer list, a viewer does not", async () => {
    const c = ca.issue({ dns: ["shop.example.test"] });
    for (const who of ["deployer", "viewer"] as const) {
      const res = await call("POST", "/v1/certificates", { certificate: c.chainPem, privateKey: c.keyPem }, who);
      expect(res.statusCode, res.body).toBe(403);
      expect(res.json().error.code).toBe("forbidden");
    }
    expect(Number(await count())).toBe(0);
    expect((await call("GET", "/v1/certificates", undefined, "deployer")).statusCode).toBe(200);
    expect((await call("GET", "/v1/certificates", undefined, "viewer")).statusCode).toBe(403);
    expect((await call("DELETE", `/v1/certificates/${"0".repeat(8)}-0000-4000-8000-${"0".repeat(12)}`, undefined, "deployer")).statusCode).toBe(403);
  });

  it("stores an upload (201), serves it for the names it covers, never shows a key; the same names again replace it (200); remove (404 again, 409 for ACME); activity and delivery each time", async () => {
    const first = ca.issue({ dns: ["*.example.test", "*.example.com"], key: "rsa" });
    const up = await call("POST", "/v1/certificates", { certificate: first.chainPem, privateKey: first.keyPem });
    expect(up.statusCode, up.body).toBe(201);
    const firstSerial = new X509Certificate(first.certPem).serialNumber;
    expect(up.json()).toMatchObject({ replaced: false, replacedSerial: null, jobsQueued: 1, certificate: { hostnames: ["*.example.com", "*.example.test"], source: "uploaded", serial: firstSerial, status: "valid", lastError: null, uploadedBy: "bootstrap-admin" } });
    const id = up.json().certificate.id as string;
    expect(delivered).toEqual([["*.example.com", "*.example.test"]]);

    // The default host name of an environment is covered by the wildcard: what an agent gets in GetJobSpec.
    const served = await certificates.tlsFor(["shop-test.example.test", "deep.shop.example.test"]);
    // Sent for the name it serves (a wildcard covers one label only), keyed by that name.
    expect(served.certificates).toHaveLength(1);
    expect(served.certificates[0]!.hostnames).toEqual(["shop-test.example.test"]);
    expect(new X509Certificate(served.certificates[0]!.certPem).serialNumber).toBe(firstSerial);
    expect(new X509Certificate(served.certificates[0]!.certPem).checkPrivateKey(createPrivateKey(served.certificates[0]!.keyPem))).toBe(true);

    // A custom domain the wildcard covers shows the uploaded certificate, and is not ordered by ACME.
    expect((await call("POST", "/v1/apps/shop/environments/live/domains", { hostname: "www.example.com" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps/shop/environments/live/domains", { hostname: "shop.example.org" })).statusCode).toBe(201);
    const domains = await certificates.statusOf(["www.example.com", "shop.example.org"]);
    expect(domains.get("www.example.com")).toMatchObject({ state: "valid", serial: firstSerial, source: "uploaded", lastError: null, nextAttemptAt: null });
    expect(domains.get("shop.example.org")).toMatchObject({ state: "none" });
    expect(await certificates.domainsToOrder()).toEqual(["shop.example.org"]);

    // The domain also holds a valid ACME certificate: the agent gets one certificate for the name, the upload.
    const acmeLeaf = ca.issue({ dns: ["www.example.com"] });
    const acmeX509 = new X509Certificate(acmeLeaf.certPem);
    const acmeRow = await ensureCertificate(cp.database.db, ["www.example.com"], new Date());
    await recordIssued(cp.database.db, acmeRow.id, { privateKeyEncrypted: box.encrypt(acmeLeaf.keyPem), chain: acmeLeaf.chainPem, serial: acmeX509.serialNumber, notBefore: new Date(acmeX509.validFrom), notAfter: new Date(acmeX509.validTo), nextAttemptAt: new Date(acmeX509.validTo) }, new Date());
    const forDomain = (await certificates.tlsFor(["www.example.com"])).certificates;
    expect(forDomain.map((c) => [c.hostnames, new X509Certificate(c.certPem).serialNumber])).toEqual([[["www.example.com"], firstSerial]]);
    expect((await certificates.statusOf(["www.example.com"])).get("www.example.com")).toMatchObject({ source: "uploaded", serial: firstSerial });

    const listed = await call("GET", "/v1/certificates", undefined, "deployer");
    // Uploaded ones first, then the ACME ones.
    expect(listed.json()).toEqual([expect.objectContaining({ id, source: "uploaded", serial: firstSerial }), expect.objectContaining({ hostnames: ["www.example.com"], source: "acme", serial: acmeX509.serialNumber, uploadedBy: null })]);
    const keyBody = first.keyPem.split("\n").slice(1, 3).join("");
    expect(listed.body).not.toContain("PRIVATE KEY");
    expect(listed.body).not.toContain(keyBody.slice(0, 40));
    expect(up.body).not.toContain("PRIVATE KEY");

    // A renewed certificate for the same names replaces it.
    const renewed = ca.issue({ dns: ["*.example.com", "*.example.test"], key: "ec" });
    const again = await call("POST", "/v1/certificates", { certificate: renewed.chainPem, privateKey: renewed.keyPem });
    expect(again.statusCode, again.body).toBe(200);
    const renewedSerial = new X509Certificate(renewed.certPem).serialNumber;
    expect(again.json()).toMatchObject({ replaced: true, replacedSerial: firstSerial, certificate: { id, serial: renewedSerial } });
    expect((await call("GET", "/v1/certificates")).json().map((c: { serial: string }) => c.serial)).toEqual([renewedSerial, acmeX509.serialNumber]);
    expect(new X509Certificate((await certificates.tlsFor(["shop-test.example.test"])).certificates[0]!.certPem).serialNumber).toBe(renewedSerial);

    // Two renewals uploaded at once: one row, the later one; exactly one of them reports the other as replaced.
    const [x, y] = [ca.issue({ dns: ["*.example.test", "*.example.com"] }), ca.issue({ dns: ["*.example.test", "*.example.com"] })];
    const both = await Promise.all([x, y].map((c) => call("POST", "/v1/certificates", { certificate: c.chainPem, privateKey: c.keyPem })));
    const serials = [x, y].map((c) => new X509Certificate(c.certPem).serialNumber);
    expect(both.map((r) => r.statusCode)).toEqual([200, 200]);
    const replacedSerials = both.map((r) => r.json().replacedSerial as string).sort();
    const stored = (await call("GET", "/v1/certificates")).json().filter((c: { source: string }) => c.source === "uploaded");
    expect(stored).toHaveLength(1);
    expect(serials).toContain(stored[0].serial);
    // The first replaced the renewal of before, the second replaced the first.
    expect(replacedSerials).toEqual([renewedSerial, serials.find((s) => s !== stored[0].serial)!].sort());
    const current = stored[0].serial as string;

    // An ACME row cannot be removed by hand; an unknown id is 404.
    const acme = await ensureCertificate(cp.database.db, ["shop.example.org"], new Date());
    const conflict = await call("DELETE", `/v1/certificates/${acme.id}`);
    expect(conflict.statusCode, conflict.body).toBe(409);
    expect(conflict.json().error.message).toMatch(/issued by ACME/);

    const removed = await call("DELETE", `/v1/certificates/${id}`);
    expect(removed.statusCode, removed.body).toBe(200);
    expect(removed.json()).toMatchObject({ id, serial: current });
    const gone = await call("DELETE", `/v1/certificates/${id}`);
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error.message).toMatch(/does not exist/);
    expect((await certificates.tlsFor(["shop-test.example.test"])).certificates).toEqual([]);
    // The name's ACME certificate serves it again, under the same key, so it replaces the upload on the host.
    expect((await certificates.tlsFor(["www.example.com"])).certificates.map((c) => [c.hostnames, new X509Certificate(c.certPem).serialNumber])).toEqual([[["www.example.com"], acmeX509.serialNumber]]);
    expect((await certificates.statusOf(["www.example.com"])).get("www.example.com")).toMatchObject({ state: "valid", source: "acme", serial: acmeX509.serialNumber });
    expect(await certificates.domainsToOrder()).toEqual(["www.example.com", "shop.example.org"]);
    expect(delivered).toEqual(Array.from({ length: 5 }, () => ["*.example.com", "*.example.test"]));

    const actions = (await listActivity(cp.database.db, { limit: 20 })).map((a) => [a.action, a.actor, (a.details as { serial?: string }).serial ?? null]);
    expect(actions.filter(([a]) => String(a).startsWith("certificate."))).toEqual([
      ["certificate.removed", "bootstrap-admin", current],
      ["certificate.uploaded", "bootstrap-admin", current],
      ["certificate.uploaded", "bootstrap-admin", serials.find((s) => s !== current)],
      ["certificate.uploaded", "bootstrap-admin", renewedSerial],
      ["certificate.uploaded", "bootstrap-admin", firstSerial],
    ]);
  });
});
