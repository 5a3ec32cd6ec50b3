import { randomBytes, randomUUID, X509Certificate } from "node:crypto";
import type { LookupFunction } from "node:net";
import * as acme from "acme-client";
import { InvalidRequestError, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import type { SecretBox } from "../services/secret-box.js";
import type { AcmeAccounts } from "./account.js";
import * as repo from "../repositories/certificates.repository.js";
import { precheckChallengePath } from "./precheck.js";
import type { DnsChallengeHook } from "./dns-hook.js";
import { afterFailure, afterSuccess, DEFAULT_BACKOFF, invalidHostname, normalizeHostnames, type BackoffSettings, type CertificateStatus } from "./renewal-policy.js";

export interface IssuerOptions {
  /** The port the CA validates HTTP-01 on: 80 in production; the test responder's port in tests. */
  challengePort: number;
  /** Backoff after failures: floor (never more than one attempt per interval) and ceiling. */
  backoff: BackoffSettings;
  /** How long an order lock holds if its replica dies mid-order; longer than any order takes. */
  lockLeaseMs: number;
  precheckTimeoutMs: number;
  /** Name resolution for the pre-check (tests resolve every name to 127.0.0.1, as pebble's DNS does). */
  lookup?: LookupFunction;
  clock: () => Date;
  /** This replica, in the lock (who is ordering). */
  owner: string;
  /**
   * DNS-01, for wildcard names (a CA validates `*.` names only over DNS): the hook that publishes
   * the TXT record and how long to wait for it to reach the authoritative servers before the CA
   * is asked to look. Absent: wildcard names fail without an order.
   */
  dns?: { hook: DnsChallengeHook; propagationMs: number };
}

export const DEFAULT_ISSUER_OPTIONS: Omit<IssuerOptions, "clock" | "owner"> = Object.freeze({ challengePort: 80, backoff: DEFAULT_BACKOFF, lockLeaseMs: 10 * 60_000, precheckTimeoutMs: 10_000 });

/** What users see of a certificate (never its key). */
export interface CertificateView {
  hostnames: string[];
  status: CertificateStatus;
  serial: string | null;
  notBefore: Date | null;
  notAfter: Date | null;
  lastError: string | null;
  attempts: number;
  nextAttemptAt: Date;
}

/**
 * - issued: a new certificate is stored.
 * - busy: another call (this or another replica) is ordering for these names; nothing done.
 * - not-due: the certificate is valid and not due, or the failure backoff has not passed.
 * - unreachable: the pre-check failed; no order was placed.
 * - failed: the order (or the account) failed at the CA.
 */
export type IssueOutcome = "issued" | "busy" | "not-due" | "unreachable" | "failed";

export function toView(row: repo.CertificateRow): CertificateView {
  return { hostnames: row.hostnames, status: row.status, serial: row.serial, notBefore: row.not_before, notAfter: row.not_after, lastError: row.last_error, attempts: row.attempts, nextAttemptAt: row.next_attempt_at };
}

/** The private key of a stored certificate, unsealed (for the agents that serve it). */
export function unsealKey(box: SecretBox, row: repo.CertificateRow): string | undefined {
  return row.private_key_encrypted ? box.decrypt(row.private_key_encrypted) : undefined;
}

/**
 * Orders certificates over stateless HTTP-01: every ingress answers `<token>.<thumbprint>` for
 * any token, so the issuer has nothing to publish per challenge.
 */
export class CertificateIssuer {
  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    private readonly accounts: AcmeAccounts,
    private readonly log: Logger,
    private readonly opts: IssuerOptions,
  ) {}

  /**
   * Makes sure `hostnames` have a valid certificate: orders one when the set has none or it is
   * due (renewal point or end of backoff). Safe to call concurrently from any number of
   * replicas: one order per set of names at a time (the others get "busy"). Never throws for
   * an ACME or network failure: that is recorded on the row (status, last error, backoff).
   */
  async issue(hostnames: readonly string[]): Promise<{ outcome: IssueOutcome; certificate: CertificateView }> {
    const names = normalizeHostnames(hostnames);
    if (names.length === 0) throw new InvalidRequestError("a certificate needs at least one host name");
    const bad = invalidHostname(names);
    if (bad !== undefined) throw new InvalidRequestError(`not a host name a certificate can be issued for: ${bad}`);
    const row = await repo.ensureCertificate(this.db, names, this.opts.clock());
    if (row.next_attempt_at.getTime() > this.opts.clock().getTime()) return { outcome: "not-due", certificate: toView(row) };
    if (!(await repo.tryLockOrder(this.db, row.id, this.opts.owner, this.opts.clock(), this.opts.lockLeaseMs))) return { outcome: "busy", certificate: toView(row) };
    try {
      // Read again under the lock: another replica may have finished an order since.
      const locked = (await repo.findCertificate(this.db, row.hostnames_key))!;
      if (locked.next_attempt_at.getTime() > this.opts.clock().getTime()) return { outcome: "not-due", certificate: toView(locked) };
      const outcome = await this.order(locked, names);
      return { outcome, certificate: toView((await repo.findCertificate(this.db, row.hostnames_key))!) };
    } finally {
      await repo.unlockOrder(this.db, row.id, this.opts.owner);
    }
  }

  /** The stored certificate of a set of names, or undefined. */
  async find(hostnames: readonly string[]): Promise<repo.CertificateRow | undefined> {
    return repo.findCertificate(this.db, normalizeHostnames(hostnames).join(","));
  }

  private async order(row: repo.CertificateRow, names: string[]): Promise<IssueOutcome> {
    const log = this.log.child({ hostnames: names });
    const started = Date.now();
    let account;
    try {
      account = await this.accounts.get();
    } catch (err) {
      await this.fail(row, `the ACME account could not be registered: ${describeAcmeError(err, this.accounts.directoryUrl)}`, log);
      return "failed";
    }
    const wildcards = names.filter((n) => n.startsWith("*."));
    if (wildcards.length > 0 && !this.opts.dns) {
      await this.fail(row, `${wildcards.join(", ")}: a wildcard certificate is validated over DNS (DNS-01): set SLIPWAY_ACME_DNS_HOOK, or upload one`, log);
      return "unreachable";
    }
    const probe = `slipway-probe-${randomBytes(12).toString("hex")}`;
    // A wildcard name has no challenge path to ask: its TXT record is published by the DNS hook.
    for (const name of names.filter((n) => !n.startsWith("*."))) {
      const reason = await precheckChallengePath(name, { port: this.opts.challengePort, probe, thumbprint: account.thumbprint, timeoutMs: this.opts.precheckTimeoutMs, ...(this.opts.lookup ? { lookup: this.opts.lookup } : {}) });
      if (reason !== undefined) {
        await this.fail(row, reason, log);
        return "unreachable";
      }
    }
    try {
      // A new key per order: a renewal never reuses the key of the certificate it replaces.
      const [key, csr] = await acme.crypto.createCsr({ commonName: names[0]!, altNames: names }, await acme.crypto.createPrivateEcdsaKey("P-256"));
      const dns = this.opts.dns;
      const chain = await account.client.auto({
        csr,
        termsOfServiceAgreed: true,
        // HTTP-01 where the CA offers it; a wildcard's authorization offers DNS-01 only.
        challengePriority: ["http-01", "dns-01"],
        // Stateless HTTP-01: the ingresses already answer every token; and the pre-check above
        // replaced acme-client's own verification (which waits up to 75 s on a failure). DNS-01:
        // the hook publishes the record and the propagation wait stands for the verification
        // (acme-client's own asks this machine's resolver, which need not see the zone).
        skipChallengeVerification: true,
        challengeCreateFn: async (authz, challenge, keyAuthorization) => {
          if (challenge.type !== "dns-01" || !dns) return;
          const record = `_acme-challenge.${authz.identifier.value}`;
          await dns.hook.present(record, keyAuthorization);
          log.info({ record, waitMs: dns.propagationMs }, "DNS-01 record published; waiting for it to propagate");
          if (dns.propagationMs > 0) await new Promise((r) => setTimeout(r, dns.propagationMs));
        },
        challengeRemoveFn: async (authz, challenge, keyAuthorization) => {
          if (challenge.type !== "dns-01" || !dns) return;
          await dns.hook.cleanup(`_acme-challenge.${authz.identifier.value}`, keyAuthorization).catch((err: unknown) => log.warn({ err: (err as Error).message }, "DNS-01 record not withdrawn"));
        },
      });
      const leaf = new X509Certificate(acme.crypto.splitPemChain(chain)[0]!);
      const notBefore = new Date(leaf.validFrom);
      const notAfter = new Date(leaf.validTo);
      const next = afterSuccess(notBefore, notAfter);
      await repo.recordIssued(this.db, row.id, { privateKeyEncrypted: this.box.encrypt(key.toString("utf8")), chain, serial: leaf.serialNumber, notBefore, notAfter, nextAttemptAt: next.nextAttemptAt }, this.opts.clock());
      log.info({ serial: leaf.serialNumber, notAfter, renewAt: next.nextAttemptAt, ms: Date.now() - started }, "certificate issued");
      return "issued";
    } catch (err) {
      await this.fail(row, `the certificate authority did not issue the certificate: ${describeAcmeError(err, account.directoryUrl)}`, log);
      return "failed";
    }
  }

  private async fail(row: repo.CertificateRow, reason: string, log: Logger): Promise<void> {
    const now = this.opts.clock();
    const next = afterFailure({ attempts: row.attempts, notAfter: row.not_after }, now, reason, this.opts.backoff);
    await repo.recordFailure(this.db, row.id, next, now);
    log.warn({ attempts: next.attempts, nextAttemptAt: next.nextAttemptAt, reason }, "certificate not issued");
  }
}

/**
 * An acme-client or network error in users' words (no stack, no key material). acme-client
 * 5.4.0 turns a request that never got a response (after its retries) into a TypeError
 * ("Cannot read properties of undefined (reading 'config')"): reported as the CA unreachable.
 */
export function describeAcmeError(err: unknown, directoryUrl?: string): string {
  const e = err as { code?: string; message?: string; config?: { url?: string } };
  if (err instanceof TypeError) {
    let host = "";
    try {
      host = directoryUrl ? ` at ${new URL(directoryUrl).host}` : "";
    } catch {
      host = "";
    }
    return `it could not be reached${host} (no response after retries); the next attempt follows the backoff`;
  }
  const network = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED"]);
  if (e?.code && network.has(e.code)) {
    let host = "";
    try {
      host = e.config?.url ? ` at ${new URL(e.config.url).host}` : "";
    } catch {
      host = "";
    }
    return `it could not be reached${host} (${e.code}); the next attempt follows the backoff`;
  }
  if (e?.code && /CERT|SELF_SIGNED|UNABLE_TO/.test(e.code)) return `its TLS certificate is not trusted (${e.code})`;
  return (e?.message ?? String(err)).slice(0, 500);
}

/** A replica id for the lock. */
export function replicaId(): string {
  return `cp-${randomUUID()}`;
}
