import { execFile } from "node:child_process";
import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo, LookupFunction } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import * as acme from "acme-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import type { DatabaseHandle } from "../db/database.js";
import { SecretBox } from "../services/secret-box.js";
import { testDatabase, type DbKind } from "../testing/harness.js";
import { AcmeAccounts } from "./account.js";
import { CertificateIssuer, replicaId, unsealKey } from "./issuer.js";
import { startPebble, type Pebble } from "./pebble.testing.js";
import { RenewalScheduler } from "./renewal.scheduler.js";

/** Every name resolves to 127.0.0.1 for the pre-check, as pebble-challtestsrv answers pebble. */
const loopback = ((_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
  if (opts?.all) cb(null, [{ address: "127.0.0.1", family: 4 }]);
  else cb(null, "127.0.0.1", 4);
}) as unknown as LookupFunction;

/**
 * Stands in for the ingress's stateless HTTP-01 answer (what the agent's HAProxy does):
 * `<token>.<thumbprint>` for any token, on any host, except hosts told to answer 404.
 * Records every request (Host, token).
 */
function startResponder(): Promise<{ port: number; thumbprint: string; broken: Set<string>; seen: Array<{ host: string; token: string }>; close(): Promise<void> }> {
  const state = { thumbprint: "", broken: new Set<string>(), seen: [] as Array<{ host: string; token: string }> };
  const server = http.createServer((req, res) => {
    const host = (req.headers.host ?? "").replace(/:\d+$/, "");
    const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? "");
    if (m) state.seen.push({ host, token: m[1]! });
    if (!m || state.broken.has(host)) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" }).end(`${m[1]}.${state.thumbprint}`);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve(
        Object.assign(state, {
          port: (server.address() as AddressInfo).port,
          close: () => new Promise<void>((r) => server.close(() => r())),
        }),
      );
    });
  });
}

function opensslVerify(dir: string, rootPem: string, chain: string, hostname: string): Promise<string> {
  const [leaf, ...intermediates] = acme.crypto.splitPemChain(chain);
  writeFileSync(path.join(dir, "root.pem"), rootPem);
  writeFileSync(path.join(dir, "leaf.pem"), leaf!);
  writeFileSync(path.join(dir, "untrusted.pem"), intermediates.join("\n"));
  return new Promise((resolve, reject) =>
    execFile("openssl", ["verify", "-CAfile", "root.pem", "-untrusted", "untrusted.pem", "-verify_hostname", hostname, "leaf.pem"], { cwd: dir }, (err, stdout, stderr) => (err ? reject(new Error(`${stdout}${stderr}`)) : resolve(stdout.trim()))),
  );
}

const validations = (seen: Array<{ host: string; token: string }>, host: string) => new Set(seen.filter((s) => s.host === host && !s.token.startsWith("slipway-probe-")).map((s) => s.token));
const probes = (seen: Array<{ host: string; token: string }>, host: string) => seen.filter((s) => s.host === host && s.token.startsWith("slipway-probe-")).length;

describe.each<DbKind>(["pglite", "postgres"])("certificates issued in one place against a real pebble, on %s", (kind) => {
  const log = createLogger("test", "silent");
  const backoff = { minMs: 20_000, maxMs: 80_000 };
  let responder: Awaited<ReturnType<typeof startResponder>>;
  let pebble: Pebble | undefined;
  let database: DatabaseHandle | undefined;
  let box: SecretBox;
  let offsetMs = 0;
  const clock = () => new Date(Date.now() + offsetMs);
  let issuer: CertificateIssuer;
  let scheduler: RenewalScheduler;
  const work = mkdtempSync(path.join(tmpdir(), "slipway-certs-"));
  const figures: Record<string, unknown> = {};

  const newIssuer = (accounts: AcmeAccounts) => new CertificateIssuer(database!.db, box, accounts, log, { challengePort: responder.port, backoff, lockLeaseMs: 60_000, precheckTimeoutMs: 5000, lookup: loopback, clock, owner: replicaId() });

  beforeAll(async () => {
    responder = await startResponder();
    pebble = await startPebble({ httpPort: responder.port, certificateValiditySeconds: 90 });
    database = await testDatabase(kind);
    box = new SecretBox(randomBytes(32));
    const accounts = new AcmeAccounts(database.db, box, { directoryUrl: pebble.directoryUrl, email: "ops@example.com" }, log, 100);
    responder.thumbprint = await accounts.thumbprint();
    issuer = newIssuer(accounts);
    scheduler = new RenewalScheduler(database.db, issuer, log, { clock });
  });

  afterAll(async () => {
    await pebble?.stop();
    await responder?.close();
    await database?.close();
    rmSync(work, { recursive: true, force: true });
    console.log(`certificates on ${kind}: ${JSON.stringify(figures)}`);
  });

  it("registers one account, its key sealed, its thumbprint the one pebble validates against", async () => {
    const rows = await database!.db.selectFrom("acme_accounts").selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.key_encrypted).toMatch(/^v1:/);
    expect(rows[0]!.key_encrypted).not.toContain("PRIVATE KEY");
    expect(rows[0]!.account_url).toMatch(/^https:\/\/localhost:\d+\//);
    expect(rows[0]!.contact).toBe("ops@example.com");
    expect(rows[0]!.thumbprint).toBe(responder.thumbprint);
    expect(responder.thumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("issues a certificate that verifies against pebble's root, stored sealed", async () => {
    const started = Date.now();
    const res = await issuer.issue(["www.example.com", "Example.com"]);
    figures.issueMs = Date.now() - started;
    expect(res.outcome).toBe("issued");
    expect(res.certificate).toMatchObject({ hostnames: ["example.com", "www.example.com"], status: "valid", lastError: null, attempts: 0 });
    const row = (await issuer.find(["example.com", "www.example.com"]))!;
    expect(row.private_key_encrypted).toMatch(/^v1:/);
    expect(row.private_key_encrypted).not.toContain("PRIVATE KEY");
    const key = unsealKey(box, row)!;
    expect(key).toContain("PRIVATE KEY");
    const leaf = new X509Certificate(acme.crypto.splitPemChain(row.certificate_chain!)[0]!);
    expect(leaf.checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(leaf.serialNumber).toBe(row.serial);
    expect(leaf.subjectAltName).toContain("DNS:www.example.com");
    expect(row.not_after!.getTime() - row.not_before!.getTime()).toBeLessThanOrEqual(91_000);
    // Renewal point: a third of the lifetime left.
    expect(Math.abs(row.next_attempt_at.getTime() - (row.not_after!.getTime() - (row.not_after!.getTime() - row.not_before!.getTime()) / 3))).toBeLessThan(1000);
    expect(await opensslVerify(work, pebble!.rootPem, row.certificate_chain!, "www.example.com")).toBe("leaf.pem: OK");
    // Pre-checked, then validated by pebble (one challenge per name).
    expect(probes(responder.seen, "example.com")).toBe(1);
    expect(validations(responder.seen, "example.com").size).toBe(1);
    expect(validations(responder.seen, "www.example.com").size).toBe(1);
    // Not due: asking again orders nothing.
    expect((await issuer.issue(["example.com", "www.example.com"])).outcome).toBe("not-due");
    expect(validations(responder.seen, "example.com").size).toBe(1);
  });

  it("two replicas asked at once for the same names place one order", async () => {
    const other = newIssuer(new AcmeAccounts(database!.db, box, { directoryUrl: pebble!.directoryUrl, email: "ops@example.com" }, log, 100));
    const results = await Promise.all([issuer.issue(["api.example.com"]), other.issue(["api.example.com"]), issuer.issue(["api.example.com"])]);
    const outcomes = results.map((r) => r.outcome).sort();
    expect(outcomes.filter((o) => o === "issued")).toHaveLength(1);
    expect(outcomes.filter((o) => o !== "issued").every((o) => o === "busy" || o === "not-due")).toBe(true);
    figures.concurrentOrders = validations(responder.seen, "api.example.com").size;
    expect(validations(responder.seen, "api.example.com").size).toBe(1);
    expect(await database!.db.selectFrom("acme_accounts").select("id").execute()).toHaveLength(1);
  });

  it("a name that does not reach the ingress gets no order, and says why", async () => {
    responder.broken.add("broken.example.com");
    const res = await issuer.issue(["broken.example.com"]);
    expect(res.outcome).toBe("unreachable");
    expect(res.certificate.status).toBe("failed");
    expect(res.certificate.lastError).toMatch(/^broken\.example\.com does not answer the challenge path through Slipway's ingress on port \d+: check its DNS record points at a host of this installation \(got 404 from 127\.0\.0\.1\)$/);
    expect(res.certificate.attempts).toBe(1);
    // The responder saw the probe only: pebble never validated, so no order was placed.
    expect(probes(responder.seen, "broken.example.com")).toBe(1);
    expect(validations(responder.seen, "broken.example.com").size).toBe(0);
    // Within the backoff nothing is tried again, neither by a call nor by the scheduler.
    expect((await issuer.issue(["broken.example.com"])).outcome).toBe("not-due");
    expect((await scheduler.tick()).map((r) => r.hostnames)).not.toContainEqual(["broken.example.com"]);
    expect(probes(responder.seen, "broken.example.com")).toBe(1);
  });

  it("renews at a third of the lifetime left, with a new serial and a new key", async () => {
    const before = (await issuer.find(["example.com", "www.example.com"]))!;
    // Jump to the renewal point rather than wait the 60 s to it.
    offsetMs = before.next_attempt_at.getTime() - Date.now() + 1000;
    const started = Date.now();
    const results = await scheduler.tick();
    figures.renewalTickMs = Date.now() - started;
    expect(results).toContainEqual({ hostnames: ["example.com", "www.example.com"], outcome: "issued" });
    const after = (await issuer.find(["example.com", "www.example.com"]))!;
    expect(after.serial).not.toBe(before.serial);
    expect(unsealKey(box, after)).not.toBe(unsealKey(box, before));
    expect(await opensslVerify(work, pebble!.rootPem, after.certificate_chain!, "example.com")).toBe("leaf.pem: OK");
    // Back to real time: the new certificate's renewal point is ahead, so nothing is ordered.
    offsetMs = 0;
    expect(after.next_attempt_at.getTime()).toBeGreaterThan(clock().getTime() + 40_000);
    expect((await scheduler.tick()).filter((r) => r.outcome === "issued")).toEqual([]);
  });

  it("a CA that is down: failed with backoff, never more than one attempt per interval", async () => {
    await pebble!.kill();
    const res = await issuer.issue(["down.example.com"]);
    expect(res.outcome).toBe("failed");
    expect(res.certificate.status).toBe("failed");
    expect(res.certificate.lastError).toMatch(/^the certificate authority did not issue the certificate: it could not be reached at localhost:\d+ \(no response after retries\)/);
    const first = res.certificate.nextAttemptAt.getTime() - clock().getTime();
    expect(first).toBeGreaterThan(backoff.minMs - 5000);
    expect(first).toBeLessThanOrEqual(backoff.minMs);
    const probesBefore = probes(responder.seen, "down.example.com");
    // A tick within the interval does not try it.
    expect((await scheduler.tick()).map((r) => r.hostnames)).not.toContainEqual(["down.example.com"]);
    expect(probes(responder.seen, "down.example.com")).toBe(probesBefore);
    // After the interval it is tried once more, and the next wait doubles.
    offsetMs += backoff.minMs + 1000;
    const results = await scheduler.tick();
    expect(results).toContainEqual({ hostnames: ["down.example.com"], outcome: "failed" });
    const row = (await issuer.find(["down.example.com"]))!;
    expect(row.attempts).toBe(2);
    expect(row.next_attempt_at.getTime() - clock().getTime()).toBeGreaterThan(2 * backoff.minMs - 5000);
    expect(probes(responder.seen, "down.example.com")).toBe(probesBefore + 1);
  });
});
