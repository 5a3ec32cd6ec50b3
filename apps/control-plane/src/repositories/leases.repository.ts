import { sql } from "kysely";
import { toNumber, type Db } from "../db/database.js";

/** A term of a lease as the database granted it. */
export interface LeaseTerm {
  /** Fencing token of this term: larger than every earlier holder's. */
  token: number;
  expiresAt: Date;
}

/** Who holds (or last held) a lease, as stored. */
export interface LeaseRow {
  name: string;
  holder: string;
  token: number;
  acquiredAt: Date;
  renewedAt: Date;
  expiresAt: Date;
  /** expires_at is in the future by the database's clock. */
  held: boolean;
}

// Every comparison and every new expiry uses the database's now(): one clock for all replicas.
const ttl = (ttlMs: number) => sql`now() + make_interval(secs => ${ttlMs / 1000}::float8)`;

/**
 * Takes the lease when it is free (no row, expired, or released) or already this holder's: a new
 * term with the next fencing token. Undefined when another holder's term is still running.
 * One statement, so two replicas racing for it cannot both win.
 */
export async function acquireLease(db: Db, name: string, holder: string, ttlMs: number): Promise<LeaseTerm | undefined> {
  const { rows } = await sql<{ token: string | number; expires_at: Date }>`
    insert into leases (name, holder, token, acquired_at, renewed_at, expires_at)
    values (${name}, ${holder}, 1, now(), now(), ${ttl(ttlMs)})
    on conflict (name) do update
      set holder = excluded.holder, token = leases.token + 1, acquired_at = now(), renewed_at = now(), expires_at = excluded.expires_at
      where leases.expires_at <= now() or leases.holder = excluded.holder
    returning token, expires_at`.execute(db);
  const r = rows[0];
  return r ? { token: toNumber(r.token), expiresAt: new Date(r.expires_at) } : undefined;
}

/**
 * Extends this holder's running term. Undefined when the term is over: expired (even when nobody
 * took it yet), released, or taken by another holder (a new token).
 */
export async function renewLease(db: Db, name: string, holder: string, token: number, ttlMs: number): Promise<Date | undefined> {
  const { rows } = await sql<{ expires_at: Date }>`
    update leases set renewed_at = now(), expires_at = ${ttl(ttlMs)}
    where name = ${name} and holder = ${holder} and token = ${token} and expires_at > now()
    returning expires_at`.execute(db);
  return rows[0] ? new Date(rows[0].expires_at) : undefined;
}

/** Ends this holder's term now so another replica can take it at its next try; nothing when it is not this term. */
export async function releaseLease(db: Db, name: string, holder: string, token: number): Promise<boolean> {
  const { rows } = await sql<{ name: string }>`
    update leases set expires_at = now()
    where name = ${name} and holder = ${holder} and token = ${token} and expires_at > now()
    returning name`.execute(db);
  return rows.length > 0;
}

/** The lease's row, whether or not it is held now. */
export async function findLease(db: Db, name: string): Promise<LeaseRow | undefined> {
  const { rows } = await sql<{ name: string; holder: string; token: string | number; acquired_at: Date; renewed_at: Date; expires_at: Date; held: boolean }>`
    select name, holder, token, acquired_at, renewed_at, expires_at, expires_at > now() as held from leases where name = ${name}`.execute(db);
  const r = rows[0];
  return r ? { name: r.name, holder: r.holder, token: toNumber(r.token), acquiredAt: new Date(r.acquired_at), renewedAt: new Date(r.renewed_at), expiresAt: new Date(r.expires_at), held: r.held } : undefined;
}

/** Ends the running term as if time had passed (tests: a lease whose holder stopped renewing, without waiting). */
export async function expireLease(db: Db, name: string): Promise<void> {
  await sql`update leases set expires_at = now() - interval '1 millisecond' where name = ${name}`.execute(db);
}
