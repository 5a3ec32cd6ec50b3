import { execFile } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as acme from "acme-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import type { DatabaseHandle } from "../db/database.js";
import { SecretBox } from "../services/secret-box.js";
import { testDatabase } from "../testing/harness.js";
import { AcmeAccounts } from "./account.js";
import { ExecDnsHook } from "./dns-hook.js";
import { CertificateIssuer, replicaId, type IssuerOptions } from "./issuer.js";
import { startPebble, type Pebble } from "./pebble.testing.js";

/**
 * A DNS hook as an operator writes one: `hook present|cleanup <record> <value>` publishes the TXT
 * record in "their DNS", here pebble-challtestsrv (the DNS server pebble validates against),
 * through its management API; every call is appended to `calls.log`.
 */
function writeHook(dir: string, challengeServerUrl: string, opts: { fail?: boolean } = {}): string {
  const file = path.join(dir, opts.fail ? "failing-hook.mjs" : "hook.mjs");
  writeFileSync(
    file,
    `#!${process.execPath}
import { appendFileSync } from "node:fs";
const [action, record, value] = process.argv.slice(2);
appendFileSync(${JSON.stringify(path.join(dir, "calls.log"))}, [action, record, value].join(" ") + "\\n");
${opts.fail ? 'console.error("the DNS provider refused: zone not found"); process.exit(3);' : ""}
const path = action === "present" ? "/set-txt" : "/clear-txt";
const body = JSON.stringify(action === "present" ? { host: record + ".", value } : { host: record + "." });
const res = await fetch(${JSON.stringify(challengeServerUrl)} + path, { method: "POST", body });
if (!res.ok) { console.error("challtestsrv: " + res.status); process.exit(1); }
`,
  );
  chmodSync(file, 0o755);
  return file;
}

function opensslVerify(dir: string, rootPem: string, chain: string, hostname: string): Promise<string> {
  const [leaf, ...intermediates] = acme.crypto.splitPemChain(chain);
  writeFileSync(path.join(dir, "root.pem"), rootPem);
  writeFileSync(path.join(dir, "leaf.pem"), leaf!);
  writeFileSync(path.join(dir, "untrusted.pem"), intermediates.join("\n"));
  return new Promise((resolve) =>
    execFile("openssl", ["verify", "-CAfile", "root.pem", "-untrusted", "untrusted.pem", "-verify_hostname", hostname, "leaf.pem"], { cwd: dir }, (err, stdout, stderr) => resolve(err ? `${stdout}${stderr}`.trim() : stdout.trim())),
  );
}

// Issue 15: "DNS-01 as an option for a wildcard default domain", against a real pebble that
// validates the TXT record in its DNS server (pebble-challtestsrv). No HTTP-01 responder exists
// here: a wildcard is validated over DNS only.
describe("wildcard certificates over DNS-01 with an operator's hook, against a real pebble", () => {
  const log = createLogger("test", "silent");
  const work = mkdtempSync(path.join(tmpdir(), "slipway-dns01-"));
  let pebble: Pebble;
  let database: DatabaseHandle;
  let box: SecretBox;
  let accounts: AcmeAccounts;
  const issuerWith = (dns?: IssuerOptions["dns"]) =>
    new CertificateIssuer(database.db, box, accounts, log, { challengePort: 1, backoff: { minMs: 30_000, maxMs: 60_000 }, lockLeaseMs: 60_000, precheckTimeoutMs: 2000, clock: () => new Date(), owner: replicaId(), ...(dns ? { dns } : {}) });
  const calls = () => readFileSync(path.join(work, "calls.log"), "utf8").trim().split("\n");

  beforeAll(async () => {
    pebble = await startPebble({ httpPort: 1 });
    database = await testDatabase("pglite");
    box = new SecretBox(randomBytes(32));
    accounts = new AcmeAccounts(database.db, box, { directoryUrl: pebble.directoryUrl, email: "ops@example.com" }, log, 100);
  }, 60_000);

  afterAll(async () => {
    await pebble?.stop();
    await database?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("issues *.<domain>: the hook publishes the TXT record, pebble validates it, the hook withdraws it; the certificate covers every name one label down", async () => {
    const issuer = issuerWith({ hook: new ExecDnsHook(writeHook(work, pebble.challengeServerUrl)), propagationMs: 0 });
    const res = await issuer.issue(["*.apps.example.test"]);
    expect(res.certificate.lastError).toBeNull();
    expect(res.outcome).toBe("issued");
    const row = (await issuer.find(["*.apps.example.test"]))!;
    const leaf = new X509Certificate(acme.crypto.splitPemChain(row.certificate_chain!)[0]!);
    expect(leaf.subjectAltName).toBe("DNS:*.apps.example.test");
    expect(await opensslVerify(work, pebble.rootPem, row.certificate_chain!, "shop-test.apps.example.test")).toBe("leaf.pem: OK");
    expect(await opensslVerify(work, pebble.rootPem, row.certificate_chain!, "a.shop-test.apps.example.test")).toMatch(/hostname mismatch/);
    const [present, cleanup] = calls();
    expect(present).toMatch(/^present _acme-challenge\.apps\.example\.test [A-Za-z0-9_-]{43}$/);
    expect(cleanup).toBe(present!.replace(/^present/, "cleanup"));
  }, 60_000);

  it("without a DNS hook a wildcard gets no order, and says how to get one", async () => {
    const res = await issuerWith().issue(["*.other.example.test"]);
    expect(res.outcome).toBe("unreachable");
    expect(res.certificate).toMatchObject({ status: "failed", attempts: 1 });
    expect(res.certificate.lastError).toBe("*.other.example.test: a wildcard certificate is validated over DNS (DNS-01): set SLIPWAY_ACME_DNS_HOOK, or upload one");
  });

  it("a hook that fails fails the order with its output, and backs off", async () => {
    const before = calls().length;
    const res = await issuerWith({ hook: new ExecDnsHook(writeHook(work, pebble.challengeServerUrl, { fail: true })), propagationMs: 0 }).issue(["*.broken.example.test"]);
    expect(res.outcome).toBe("failed");
    expect(res.certificate.lastError).toMatch(/the DNS hook '.*failing-hook\.mjs present _acme-challenge\.broken\.example\.test' failed \(exit code 3\): the DNS provider refused: zone not found/);
    expect(res.certificate.nextAttemptAt.getTime()).toBeGreaterThan(Date.now() + 20_000);
    expect(calls().slice(before).map((l) => l.split(" ")[0])).toEqual(["present", "cleanup"]);
  }, 60_000);
});
