import { randomUUID } from "node:crypto";
import type { Db } from "../db/database.js";
import { json } from "../db/database.js";
import type { CertificatesTable } from "../db/schema.js";
import { sql, type Selectable } from "kysely";
import { servedOnce } from "../tls/uploaded.js";
type CertificateStatus = Selectable<CertificatesTable>["status"];

/** The ACME account and the certificates (migration 0019), for apps/control-plane/src/tls. */

export type CertificateRow = Selectable<CertificatesTable>;

export interface AccountRow {
  id: string;
  directory_url: string;
  key_encrypted: string;
  contact: string | null;
  account_url: string | null;
  thumbprint: string;
}

export function findAccount(db: Db, directoryUrl: string): Promise<AccountRow | undefined> {
  return db.selectFrom("acme_accounts").select(["id", "directory_url", "key_encrypted", "contact", "account_url", "thumbprint"]).where("directory_url", "=", directoryUrl).executeTakeFirst();
}

/** Inserts the account unless one exists for the directory (another replica won the race): returns the stored one. */
export async function insertAccountIfAbsent(db: Db, row: Omit<AccountRow, "id" | "account_url">): Promise<AccountRow> {
  await db.insertInto("acme_accounts").values({ id: randomUUID(), ...row }).onConflict((oc) => oc.column("directory_url").doNothing()).execute();
  const stored = await findAccount(db, row.directory_url);
  if (!stored) throw new Error(`the ACME account for ${row.directory_url} vanished right after it was stored`);
  return stored;
}

export async function setAccountUrl(db: Db, id: string, accountUrl: string): Promise<void> {
  await db.updateTable("acme_accounts").set({ account_url: accountUrl }).where("id", "=", id).execute();
}

export function findCertificate(db: Db, hostnamesKey: string): Promise<CertificateRow | undefined> {
  return db.selectFrom("certificates").selectAll().where("hostnames_key", "=", hostnamesKey).executeTakeFirst();
}

/** The row of a set of host names, created "pending" and due at `now` when absent. Idempotent. */
export async function ensureCertificate(db: Db, hostnames: string[], now: Date): Promise<CertificateRow> {
  const key = hostnames.join(",");
  await db
    .insertInto("certificates")
    .values({ id: randomUUID(), hostnames_key: key, hostnames: json(hostnames), next_attempt_at: now, created_at: now, updated_at: now })
    .onConflict((oc) => oc.column("hostnames_key").doNothing())
    .execute();
  const row = await findCertificate(db, key);
  if (!row) throw new Error(`the certificate row for ${key} vanished right after it was stored`);
  return row;
}

/**
 * Takes the order lock of a row: one conditional UPDATE, so of any number of callers on any
 * number of replicas exactly one gets it while it is free or expired. True when taken.
 */
export async function tryLockOrder(db: Db, id: string, owner: string, now: Date, leaseMs: number): Promise<boolean> {
  const res = await db
    .updateTable("certificates")
    .set({ ordering_until: new Date(now.getTime() + leaseMs), ordering_by: owner })
    .where("id", "=", id)
    .where((eb) => eb.or([eb("ordering_until", "is", null), eb("ordering_until", "<=", now)]))
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Releases the lock, only if still ours (an expired lease may have been taken over). */
export async function unlockOrder(db: Db, id: string, owner: string): Promise<void> {
  await db.updateTable("certificates").set({ ordering_until: null, ordering_by: null }).where("id", "=", id).where("ordering_by", "=", owner).execute();
}

export interface IssuedFields {
  privateKeyEncrypted: string;
  chain: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  nextAttemptAt: Date;
}

export async function recordIssued(db: Db, id: string, f: IssuedFields, now: Date): Promise<void> {
  await db
    .updateTable("certificates")
    .set({ status: "valid", private_key_encrypted: f.privateKeyEncrypted, certificate_chain: f.chain, serial: f.serial, not_before: f.notBefore, not_after: f.notAfter, last_error: null, attempts: 0, next_attempt_at: f.nextAttemptAt, updated_at: now })
    .where("id", "=", id)
    .execute();
}

export async function recordFailure(db: Db, id: string, f: { status: CertificateStatus; attempts: number; lastError: string; nextAttemptAt: Date }, now: Date): Promise<void> {
  await db.updateTable("certificates").set({ status: f.status, attempts: f.attempts, last_error: f.lastError, next_attempt_at: f.nextAttemptAt, updated_at: now }).where("id", "=", id).execute();
}

/** Rows whose next attempt is due at `now`, earliest first, that no replica is ordering. */
export function listDue(db: Db, now: Date, limit: number): Promise<CertificateRow[]> {
  return db
    .selectFrom("certificates")
    .selectAll()
    .where("source", "=", "acme")
    .where("next_attempt_at", "<=", now)
    .where((eb) => eb.or([eb("ordering_until", "is", null), eb("ordering_until", "<=", now)]))
    .orderBy("next_attempt_at")
    .limit(limit)
    .execute();
}

/** Every custom domain (the `domains` table; never the generated default host names), oldest first. */
export async function listCustomDomains(db: Db): Promise<string[]> {
  const rows = await db.selectFrom("domains").select("hostname").orderBy("created_at").orderBy("hostname").execute();
  return rows.map((r) => r.hostname);
}

/** The certificate rows whose key is one of `keys` (one host name per row for custom domains). */
export function listCertificatesByKeys(db: Db, keys: readonly string[]): Promise<CertificateRow[]> {
  if (keys.length === 0) return Promise.resolve([]);
  return db.selectFrom("certificates").selectAll().where("hostnames_key", "in", [...keys]).execute();
}

/**
 * Every stored certificate (chain present): what /metrics reports the expiry of. A name stored
 * twice (an uploaded certificate beside the ACME one, or two uploads that overlap) is reported
 * once, for the certificate served (see servedOnce), so no series repeats.
 */
export async function listIssuedCertificates(db: Db, now = new Date()): Promise<Array<Pick<CertificateRow, "hostnames" | "not_after" | "serial">>> {
  const rows = await db.selectFrom("certificates").select(["hostnames", "not_after", "serial", "source"]).where("certificate_chain", "is not", null).where("not_after", "is not", null).orderBy("hostnames_key").execute();
  return servedOnce(rows, now);
}


/** Creates the missing rows of single-name certificates (pending, due at `now`), one insert for all. */
export async function ensureSingleNameCertificates(db: Db, names: readonly string[], now: Date): Promise<void> {
  if (names.length === 0) return;
  await db
    .insertInto("certificates")
    .values(names.map((n) => ({ id: randomUUID(), hostnames_key: n, hostnames: json([n]), next_attempt_at: now, created_at: now, updated_at: now })))
    .onConflict((oc) => oc.column("hostnames_key").doNothing())
    .execute();
}

/** Like listDue, among the rows whose key is one of `keys` only. */
export function listDueAmong(db: Db, keys: readonly string[], now: Date, limit: number): Promise<CertificateRow[]> {
  if (keys.length === 0) return Promise.resolve([]);
  return db
    .selectFrom("certificates")
    .selectAll()
    .where("hostnames_key", "in", [...keys])
    .where("source", "=", "acme")
    .where("next_attempt_at", "<=", now)
    .where((eb) => eb.or([eb("ordering_until", "is", null), eb("ordering_until", "<=", now)]))
    .orderBy("next_attempt_at")
    .limit(limit)
    .execute();
}

/** The key of an uploaded certificate's row: apart from an ACME row of the same names (migration 0021). */
export function uploadedKey(hostnames: readonly string[]): string {
  return `uploaded:${hostnames.join(",")}`;
}

export interface UploadedFields {
  hostnames: string[];
  privateKeyEncrypted: string;
  chain: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  uploadedBy: string;
}

/**
 * Stores an uploaded certificate, replacing the one uploaded before for the same set of names
 * (one transaction under an advisory lock on the key: two uploads at once leave one row, the later
 * one, which reports the first as replaced). Resolves with the row and the one it replaced, if any.
 */
/**
 * Stores an upload in the caller's transaction (`trx`), replacing the one for the same names. Two
 * uploads of the same names at once: the second waits at the lock until the first's transaction
 * ends, so it sees (and reports) the first as replaced, and what the caller writes after this
 * (the activity) is in the order the uploads were stored.
 */
export async function upsertUploaded(trx: Db, f: UploadedFields, now: Date): Promise<{ row: CertificateRow; replaced?: CertificateRow }> {
  const key = uploadedKey(f.hostnames);
  await sql`select pg_advisory_xact_lock(hashtext(${key}))`.execute(trx);
  const before = await trx.selectFrom("certificates").selectAll().where("hostnames_key", "=", key).executeTakeFirst();
  const fields = { status: "valid" as const, private_key_encrypted: f.privateKeyEncrypted, certificate_chain: f.chain, serial: f.serial, not_before: f.notBefore, not_after: f.notAfter, last_error: null, attempts: 0, next_attempt_at: f.notAfter, uploaded_by: f.uploadedBy, updated_at: now };
  await trx
    .insertInto("certificates")
    .values({ id: randomUUID(), hostnames_key: key, hostnames: json(f.hostnames), source: "uploaded", created_at: now, ...fields })
    .onConflict((oc) => oc.column("hostnames_key").doUpdateSet(fields))
    .execute();
  const row = await trx.selectFrom("certificates").selectAll().where("hostnames_key", "=", key).executeTakeFirstOrThrow();
  return before ? { row, replaced: before } : { row };
}

/** Every uploaded certificate (a handful per installation): the choice per host name reads them all. */
export function listUploaded(db: Db): Promise<CertificateRow[]> {
  return db.selectFrom("certificates").selectAll().where("source", "=", "uploaded").execute();
}

/** Every certificate, uploaded ones first, then by host names (GET /v1/certificates). */
export function listAllCertificates(db: Db): Promise<CertificateRow[]> {
  return db.selectFrom("certificates").selectAll().orderBy("source", "desc").orderBy("hostnames_key").execute();
}

export function findCertificateById(db: Db, id: string): Promise<CertificateRow | undefined> {
  return db.selectFrom("certificates").selectAll().where("id", "=", id).executeTakeFirst();
}

/** Deletes an uploaded certificate; false when there was none of that id (or it is an ACME one). */
export async function deleteUploaded(db: Db, id: string): Promise<boolean> {
  const res = await db.deleteFrom("certificates").where("id", "=", id).where("source", "=", "uploaded").executeTakeFirst();
  return Number(res.numDeletedRows) === 1;
}
