import type { LookupFunction } from "node:net";
import dns from "node:dns";
import { ConflictError, NotFoundError, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import type { SecretBox } from "../services/secret-box.js";
import type { Principal } from "../services/auth.service.js";
import * as repo from "../repositories/certificates.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { checkUpload, chooseCertificates, nameCovers, servable, type Candidate } from "./uploaded.js";
import { AcmeAccounts } from "./account.js";
import type { AcmeSettings } from "./acme-settings.js";
import { CertificateIssuer, DEFAULT_ISSUER_OPTIONS, replicaId, unsealKey, type CertificateView, type IssueOutcome } from "./issuer.js";
import { DEFAULT_BACKOFF, normalizeHostnames } from "./renewal-policy.js";
import { RenewalScheduler } from "./renewal.scheduler.js";
import { ExecDnsHook } from "./dns-hook.js";

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
  /** DNS-01 (wildcard names): the operator's hook command and the wait for the record to propagate. */
  dnsHook?: string;
  dnsPropagationMs?: number;
  /** A wildcard to hold an ACME certificate for, e.g. `*.apps.example.com` for every environment's default host name (needs dnsHook). */
  wildcard?: string;
}

/** A custom domain's certificate as the API shows it. */
export interface DomainCertificate {
  state: "none" | "pending" | "valid" | "failed";
  serial: string | null;
  notAfter: string | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  /** Who keeps the certificate: the ACME scheduler or an admin who uploaded it; absent with state none. */
  source?: "acme" | "uploaded";
}

/** A stored certificate as GET /v1/certificates shows it (never its key). */
export interface CertificateListItem {
  id: string;
  hostnames: string[];
  source: "acme" | "uploaded";
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  /** pending, valid, failed; "expired" for a stored certificate past its end. */
  status: "pending" | "valid" | "failed" | "expired";
  lastError: string | null;
  uploadedBy: string | null;
  updatedAt: string;
}

/** The answer to an upload: the certificate stored, and what it replaced. */
export interface UploadResult {
  certificate: CertificateListItem;
  replaced: boolean;
  /** The serial of the certificate it replaced (same set of names), or null. */
  replacedSerial: string | null;
  /** Routes jobs queued so every host serving a covered name gets it (null when delivery is not wired or failed). */
  jobsQueued: number | null;
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
    private readonly opts: {
      acme?: AcmeConfig;
      clock?: () => Date;
      onResult?: (r: CertificateResult) => Promise<void>;
      /**
       * After an upload or a removal: queues what makes every host serving a name the
       * certificate covers (wildcards understood) fetch its certificates again
       * (EnvironmentService.deliverCertificate). Resolves with the jobs queued.
       */
      deliver?: (hostnames: readonly string[]) => Promise<number | void>;
    },
  ) {
    const acme = opts.acme;
    if (!acme) return;
    const clock = this.clock;
    this.accounts = new AcmeAccounts(db, box, { directoryUrl: acme.directoryUrl, ...(acme.email ? { email: acme.email } : {}) }, log);
    const issuer = new CertificateIssuer(db, box, this.accounts, log, {
      ...DEFAULT_ISSUER_OPTIONS,
      challengePort: acme.challengePort,
      backoff: { minMs: acme.retryMinMs, maxMs: Math.max(acme.retryMinMs, DEFAULT_BACKOFF.maxMs) },
      ...(acme.challengeAddress ? { lookup: fixedAddress(acme.challengeAddress) } : {}),
      ...(acme.dnsHook ? { dns: { hook: new ExecDnsHook(acme.dnsHook), propagationMs: acme.dnsPropagationMs ?? 0 } } : {}),
      clock,
      owner: replicaId(),
    });
    this.scheduler = new RenewalScheduler(db, issuer, log, { clock, names: () => this.domainsToOrder(), ...(opts.onResult ? { onResult: opts.onResult } : {}) });
  }

  private get clock(): () => Date {
    return this.opts.clock ?? (() => new Date());
  }

  /**
   * The custom domains the scheduler holds an ACME certificate for: those a valid uploaded
   * certificate covers are left out (nothing is ordered or renewed for them; once the upload
   * expires or is removed, ACME takes over again).
   */
  async domainsToOrder(): Promise<string[]> {
    const [domains, uploaded] = await Promise.all([repo.listCustomDomains(this.db), repo.listUploaded(this.db)]);
    // The default domain's wildcard (DNS-01), when configured, is held like a custom domain.
    const names = this.opts.acme?.wildcard ? [...domains, this.opts.acme.wildcard] : domains;
    const covered = chooseCertificates(names, uploaded.map(candidate), this.clock());
    return names.filter((n) => !covered.has(normalizeHostnames([n])[0]!));
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
   * For GetJobSpec: the valid certificates covering any of `hostnames` (keys unsealed), one per
   * name (a valid uploaded certificate wins over ACME ones: see chooseCertificates),
   * and the account's thumbprint ("" with ACME off). Never calls the CA.
   *
   * A certificate is sent once per name it serves, keyed by that name (a wildcard serves each
   * covered name under that name's own key): a per-name key is the key of the name's own ACME
   * certificate, so an upload replaces it on the host (and the ACME one replaces the upload again
   * once it is removed), and no two certificates with overlapping SNI filters reach one
   * environment, so what HAProxy picks is what was chosen here. The price: a wildcard is
   * installed once per name it serves on a host.
   */
  async tlsFor(hostnames: readonly string[]): Promise<{ certificates: ServedCertificate[]; acmeThumbprint: string }> {
    const chosen = await this.choose(hostnames);
    const certificates: ServedCertificate[] = [];
    const keys = new Map<string, string | undefined>();
    for (const [name, row] of chosen) {
      if (!keys.has(row.id)) keys.set(row.id, unsealKey(this.box, row));
      const keyPem = keys.get(row.id);
      if (keyPem && row.certificate_chain) certificates.push({ hostnames: [name], certPem: row.certificate_chain, keyPem });
    }
    return { certificates, acmeThumbprint: this.accounts ? await this.accounts.storedThumbprint() : "" };
  }

  /**
   * The certificate state of each of `hostnames` (custom domains), for the API: the certificate
   * served for it (uploaded or ACME), else its ACME row (pending, failed), else an uploaded
   * certificate covering it that is no longer valid (failed, saying so), else none.
   */
  async statusOf(hostnames: readonly string[]): Promise<Map<string, DomainCertificate>> {
    const names = normalizeHostnames(hostnames);
    const [acmeRows, uploaded] = await Promise.all([repo.listCertificatesByKeys(this.db, withWildcards(names)), repo.listUploaded(this.db)]);
    const chosen = chooseCertificates(names, [...acmeRows, ...uploaded].map(candidate), this.clock());
    const byKey = new Map(acmeRows.map((r) => [r.hostnames_key, r]));
    const out = new Map<string, DomainCertificate>();
    for (const h of hostnames) {
      const n = normalizeHostnames([h])[0]!;
      const served = chosen.get(n)?.row;
      if (served?.source === "uploaded") out.set(h, { ...domainCertificate(served), nextAttemptAt: null });
      else if (served || byKey.has(n)) out.set(h, domainCertificate(served ?? byKey.get(n)));
      else {
        const lapsed = uploaded.filter((u) => u.hostnames.some((c) => nameCovers(c, n)));
        const last = lapsed.sort((a, b) => (b.not_after?.getTime() ?? 0) - (a.not_after?.getTime() ?? 0))[0];
        out.set(h, last ? { state: "failed", serial: last.serial, notAfter: last.not_after?.toISOString() ?? null, lastError: `the uploaded certificate expired on ${last.not_after?.toISOString() ?? "an unknown date"}: upload a new one`, nextAttemptAt: null, source: "uploaded" } : domainCertificate(undefined));
      }
    }
    return out;
  }

  /** Each name's certificate to serve (valid ones only), by normalized name. */
  private async choose(hostnames: readonly string[]): Promise<Map<string, repo.CertificateRow>> {
    const names = normalizeHostnames(hostnames);
    const [acmeRows, uploaded] = await Promise.all([repo.listCertificatesByKeys(this.db, withWildcards(names)), repo.listUploaded(this.db)]);
    const chosen = chooseCertificates(names, [...acmeRows, ...uploaded].map(candidate), this.clock());
    return new Map([...chosen].map(([n, c]) => [n, c.row]));
  }

  /**
   * Stores a certificate an admin uploads (checked by checkUpload: 400 with `details` naming the
   * field, nothing stored), replacing the one uploaded before for the same set of names; records
   * the activity and delivers it to every host serving a name it covers.
   */
  async upload(by: Principal, input: { certificate: string; privateKey: string }): Promise<UploadResult> {
    const checked = checkUpload(input.certificate, input.privateKey, this.clock());
    const now = this.clock();
    // The certificate and its activity in one transaction, under the lock of its names: stored together, in the order of the uploads.
    const { row, replaced } = await this.db.transaction().execute(async (trx) => {
      const stored = await repo.upsertUploaded(trx, { hostnames: checked.hostnames, privateKeyEncrypted: this.box.encrypt(checked.keyPem), chain: checked.chainPem, serial: checked.serial, notBefore: checked.notBefore, notAfter: checked.notAfter, uploadedBy: by.name }, now);
      await recordActivity(trx, { actor: by.name, action: "certificate.uploaded", details: { id: stored.row.id, hostnames: checked.hostnames, serial: checked.serial, notAfter: checked.notAfter.toISOString(), keyType: checked.keyType, ...(stored.replaced ? { replacedSerial: stored.replaced.serial } : {}) } });
      return stored;
    });
    this.log.info({ id: row.id, hostnames: checked.hostnames, serial: checked.serial, notAfter: checked.notAfter, replacedSerial: replaced?.serial, by: by.name }, replaced ? "uploaded certificate replaced" : "certificate uploaded");
    const jobsQueued = await this.deliver(checked.hostnames);
    return { certificate: listItem(row, now), replaced: replaced !== undefined, replacedSerial: replaced?.serial ?? null, jobsQueued };
  }

  /** Every stored certificate, uploaded and ACME (never a key). */
  async list(): Promise<CertificateListItem[]> {
    const now = this.clock();
    return (await repo.listAllCertificates(this.db)).map((r) => listItem(r, now));
  }

  /**
   * Removes an uploaded certificate (404 unknown id; 409 for an ACME one, which the scheduler
   * keeps); the names it covered go back to their ACME certificate, where there is one.
   */
  async remove(by: Principal, id: string): Promise<CertificateListItem> {
    const row = await repo.findCertificateById(this.db, id);
    if (!row) throw new NotFoundError(`certificate '${id}' does not exist`);
    if (row.source !== "uploaded") throw new ConflictError(`certificate '${id}' (${row.hostnames.join(", ")}) was issued by ACME for a custom domain: it goes when the domain is removed, not by hand`);
    if (!(await repo.deleteUploaded(this.db, id))) throw new NotFoundError(`certificate '${id}' does not exist`);
    await recordActivity(this.db, { actor: by.name, action: "certificate.removed", details: { id, hostnames: row.hostnames, serial: row.serial } });
    this.log.info({ id, hostnames: row.hostnames, serial: row.serial, by: by.name }, "uploaded certificate removed");
    await this.deliver(row.hostnames);
    return listItem(row, this.clock());
  }

  /** Delivery is best effort: the certificate is stored either way, and every later job carries it. */
  private async deliver(hostnames: readonly string[]): Promise<number | null> {
    if (!this.opts.deliver) return null;
    try {
      const n = await this.opts.deliver(hostnames);
      return typeof n === "number" ? n : null;
    } catch (err) {
      this.log.error({ err, hostnames }, "the certificate is stored but its delivery to the hosts could not be queued: the next deployment or routes job carries it");
      return null;
    }
  }
}

type RowCandidate = Candidate & { row: repo.CertificateRow };

function candidate(row: repo.CertificateRow): RowCandidate {
  return { id: row.id, source: row.source, hostnames: row.hostnames, status: row.status, hasChain: row.certificate_chain !== null && row.private_key_encrypted !== null, notAfter: row.not_after, row };
}

function listItem(row: repo.CertificateRow, now: Date): CertificateListItem {
  const expired = row.not_after !== null && row.certificate_chain !== null && !servable(candidate(row), now) && row.status === "valid";
  return {
    id: row.id,
    hostnames: row.hostnames,
    source: row.source,
    serial: row.serial,
    notBefore: row.not_before?.toISOString() ?? null,
    notAfter: row.not_after?.toISOString() ?? null,
    status: expired ? "expired" : row.status,
    lastError: row.last_error,
    uploadedBy: row.uploaded_by,
    updatedAt: row.updated_at.toISOString(),
  };
}

/** A row (or its absence) in the API's words. */
export function domainCertificate(row: Pick<repo.CertificateRow, "status" | "serial" | "not_after" | "last_error" | "next_attempt_at"> & Partial<Pick<repo.CertificateRow, "source">> | undefined): DomainCertificate {
  if (!row) return { state: "none", serial: null, notAfter: null, lastError: null, nextAttemptAt: null };
  return { state: row.status, serial: row.serial, notAfter: row.not_after?.toISOString() ?? null, lastError: row.last_error, nextAttemptAt: row.next_attempt_at.toISOString(), ...(row.source ? { source: row.source } : {}) };
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

/** The names and, for each, the key of the ACME wildcard that would cover it (`*.` and its parent domain). */
function withWildcards(names: readonly string[]): string[] {
  const out = new Set(names);
  for (const n of names) {
    const dot = n.indexOf(".");
    if (!n.startsWith("*.") && dot > 0 && n.indexOf(".", dot + 1) > 0) out.add(`*.${n.slice(dot + 1)}`);
  }
  return [...out];
}
