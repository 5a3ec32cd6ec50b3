import type { LookupFunction } from "node:net";
import dns from "node:dns";
import type { Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import type { SecretBox } from "../services/secret-box.js";
import * as repo from "../repositories/certificates.repository.js";
import { AcmeAccounts } from "./account.js";
import type { AcmeSettings } from "./acme-settings.js";
import { CertificateIssuer, DEFAULT_ISSUER_OPTIONS, replicaId, unsealKey, type CertificateView, type IssueOutcome } from "./issuer.js";
import { DEFAULT_BACKOFF, normalizeHostnames } from "./renewal-policy.js";
import { RenewalScheduler } from "./renewal.scheduler.js";

/** What the control plane's configuration says about ACME (config.ts `acme`; absent = off). */
export interface AcmeConfig extends AcmeSettings {
  /** The port the pre-check asks the challenge path on (the CA always uses 80). */
  challengePort: number;
  /** Connect the pre-check to this address instead of resolving the name (tests; a split-horizon DNS). */
  challengeAddress?: string;
  /** How often the scheduler looks for domains to issue or renew. */
  tickIntervalMs: number;
  /** Backoff floor after a failure (never more than one attempt per this interval). */
  retryMinMs: number;
}

/** A custom domain's certificate as the API shows it. */
export interface DomainCertificate {
  state: "none" | "pending" | "valid" | "failed";
  serial: string | null;
  notAfter: string | null;
  lastError: string | null;
  nextAttemptAt: string | null;
}

/** One certificate as GetJobSpec sends it (the proto's TlsCertificate). */
export interface ServedCertificate {
  hostnames: string[];
  certPem: string;
  keyPem: string;
}

export type CertificateResult = { before: repo.CertificateRow; outcome: IssueOutcome; certificate: CertificateView };

/**
 * Automatic HTTPS in the control plane (issue 15): one certificate per custom domain, issued and
 * renewed by the scheduler's tick when ACME is configured; what agents get in GetJobSpec; what
 * the API says about each domain. With ACME off the stored certificates are still served (none
 * are issued) and the thumbprint is "" (agents answer no challenge).
 */
export class CertificateService {
  readonly accounts?: AcmeAccounts;
  readonly scheduler?: RenewalScheduler;

  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    private readonly log: Logger,
    private readonly opts: { acme?: AcmeConfig; clock?: () => Date; onResult?: (r: CertificateResult) => Promise<void> },
  ) {
    const acme = opts.acme;
    if (!acme) return;
    const clock = opts.clock ?? (() => new Date());
    this.accounts = new AcmeAccounts(db, box, { directoryUrl: acme.directoryUrl, ...(acme.email ? { email: acme.email } : {}) }, log);
    const issuer = new CertificateIssuer(db, box, this.accounts, log, {
      ...DEFAULT_ISSUER_OPTIONS,
      challengePort: acme.challengePort,
      backoff: { minMs: acme.retryMinMs, maxMs: Math.max(acme.retryMinMs, DEFAULT_BACKOFF.maxMs) },
      ...(acme.challengeAddress ? { lookup: fixedAddress(acme.challengeAddress) } : {}),
      clock,
      owner: replicaId(),
    });
    this.scheduler = new RenewalScheduler(db, issuer, log, { clock, names: () => repo.listCustomDomains(db), ...(opts.onResult ? { onResult: opts.onResult } : {}) });
  }

  get enabled(): boolean {
    return this.accounts !== undefined;
  }

  /** Starts the scheduler (ACME on only) with a first tick at once; stop() ends it. */
  start(): void {
    if (!this.scheduler || !this.opts.acme) return;
    // The key is stored (not registered) at once, so the first deploys already carry the thumbprint.
    void this.accounts!.storedThumbprint().catch((err: unknown) => this.log.warn({ err }, "the ACME account key could not be stored yet"));
    void this.scheduler.tick().catch((err: unknown) => this.log.error({ err }, "certificate pass failed"));
    this.scheduler.start(this.opts.acme.tickIntervalMs);
  }

  stop(): void {
    this.scheduler?.stop();
  }

  /**
   * For GetJobSpec: the valid certificates covering any of `hostnames` (keys unsealed) and the
   * account's thumbprint ("" with ACME off). Never calls the CA.
   */
  async tlsFor(hostnames: readonly string[]): Promise<{ certificates: ServedCertificate[]; acmeThumbprint: string }> {
    const now = (this.opts.clock ?? (() => new Date()))();
    const rows = await repo.listCertificatesByKeys(this.db, normalizeHostnames(hostnames));
    const certificates: ServedCertificate[] = [];
    for (const row of rows) {
      if (row.status !== "valid" || !row.certificate_chain || !row.not_after || row.not_after.getTime() <= now.getTime()) continue;
      const keyPem = unsealKey(this.box, row);
      if (keyPem) certificates.push({ hostnames: row.hostnames, certPem: row.certificate_chain, keyPem });
    }
    return { certificates, acmeThumbprint: this.accounts ? await this.accounts.storedThumbprint() : "" };
  }

  /** The certificate state of each of `hostnames` (custom domains), for the API. */
  async statusOf(hostnames: readonly string[]): Promise<Map<string, DomainCertificate>> {
    const rows = await repo.listCertificatesByKeys(this.db, normalizeHostnames(hostnames));
    const byKey = new Map(rows.map((r) => [r.hostnames_key, r]));
    const out = new Map<string, DomainCertificate>();
    for (const h of hostnames) out.set(h, domainCertificate(byKey.get(normalizeHostnames([h])[0]!)));
    return out;
  }
}

/** A row (or its absence) in the API's words. */
export function domainCertificate(row: Pick<repo.CertificateRow, "status" | "serial" | "not_after" | "last_error" | "next_attempt_at"> | undefined): DomainCertificate {
  if (!row) return { state: "none", serial: null, notAfter: null, lastError: null, nextAttemptAt: null };
  return { state: row.status, serial: row.serial, notAfter: row.not_after?.toISOString() ?? null, lastError: row.last_error, nextAttemptAt: row.next_attempt_at.toISOString() };
}

/** A lookup that answers `address` for every name (the pre-check's connection; Host and SNI keep the name). */
export function fixedAddress(address: string): LookupFunction {
  const family = address.includes(":") ? 6 : 4;
  return ((_hostname: string, options: dns.LookupOptions | ((...a: unknown[]) => void), callback?: (...a: unknown[]) => void) => {
    const cb = (typeof options === "function" ? options : callback)!;
    const all = typeof options === "object" && options?.all;
    process.nextTick(() => (all ? cb(null, [{ address, family }]) : cb(null, address, family)));
  }) as unknown as LookupFunction;
}
