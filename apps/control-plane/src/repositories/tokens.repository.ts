import type { Db } from "../db/database.js";
import { json } from "../db/database.js";
import type { ApiTokensTable, JoinTokensTable } from "../db/schema.js";
import type { Selectable } from "kysely";

export type ApiTokenRow = Selectable<ApiTokensTable>;
export type JoinTokenRow = Selectable<JoinTokensTable>;

export type ApiTokenRole = ApiTokenRow["role"];

export async function insertApiToken(
  db: Db,
  row: { id: string; name: string; role: ApiTokenRole; apps: string[]; tokenHash: string; expiresAt?: Date | null; bootstrap?: boolean; createdAt?: Date },
): Promise<void> {
  await db
    .insertInto("api_tokens")
    .values({
      id: row.id,
      name: row.name,
      role: row.role,
      apps: json(row.apps),
      token_hash: row.tokenHash,
      created_at: row.createdAt ?? new Date(),
      revoked_at: null,
      expires_at: row.expiresAt ?? null,
      bootstrap: row.bootstrap ?? false,
    })
    .execute();
}

/** The unrevoked token with this hash (expired ones too: the caller says why it is refused). */
export function findApiTokenByHash(db: Db, hash: string): Promise<ApiTokenRow | undefined> {
  return db.selectFrom("api_tokens").selectAll().where("token_hash", "=", hash).where("revoked_at", "is", null).executeTakeFirst();
}

/** The token with this hash, revoked or not. */
export function findAnyApiTokenByHash(db: Db, hash: string): Promise<ApiTokenRow | undefined> {
  return db.selectFrom("api_tokens").selectAll().where("token_hash", "=", hash).executeTakeFirst();
}

export function findApiToken(db: Db, id: string): Promise<ApiTokenRow | undefined> {
  return db.selectFrom("api_tokens").selectAll().where("id", "=", id).executeTakeFirst();
}

/** Every token, revoked ones too, oldest first. */
export function listApiTokens(db: Db): Promise<ApiTokenRow[]> {
  return db.selectFrom("api_tokens").selectAll().orderBy("created_at").orderBy("id").execute();
}

/** Admin tokens that still work at `now` (neither revoked nor expired). */
export async function countUsableAdminTokens(db: Db, now: Date): Promise<number> {
  const r = await db
    .selectFrom("api_tokens")
    .select((eb) => eb.fn.countAll().as("n"))
    .where("role", "=", "admin")
    .where("revoked_at", "is", null)
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/**
 * Ids of the admin tokens that still work at `now`, locked until the transaction ends, so that
 * two revocations at once cannot both see the other's token as the remaining one.
 */
export async function lockUsableAdminTokens(trx: Db, now: Date): Promise<string[]> {
  const rows = await trx
    .selectFrom("api_tokens")
    .select("id")
    .where("role", "=", "admin")
    .where("revoked_at", "is", null)
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
    .forUpdate()
    .execute();
  return rows.map((r) => r.id);
}

/** Revokes the token if it is not revoked yet; returns whether it was. Idempotent. */
export async function revokeApiToken(db: Db, id: string, now: Date): Promise<boolean> {
  const r = await db.updateTable("api_tokens").set({ revoked_at: now }).where("id", "=", id).where("revoked_at", "is", null).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function markBootstrapToken(db: Db, id: string): Promise<void> {
  await db.updateTable("api_tokens").set({ bootstrap: true }).where("id", "=", id).execute();
}

/** Revokes every unrevoked bootstrap token but `keepId`; returns the ones it revoked. */
export function revokeOtherBootstrapTokens(db: Db, keepId: string, now: Date): Promise<Array<Pick<ApiTokenRow, "id" | "name">>> {
  return db.updateTable("api_tokens").set({ revoked_at: now }).where("bootstrap", "=", true).where("revoked_at", "is", null).where("id", "!=", keepId).returning(["id", "name"]).execute();
}

/** Records a use, at most once per `everyMs` per token (a write per request would cost more than it tells). */
export async function touchApiToken(db: Db, id: string, now: Date, everyMs: number): Promise<void> {
  await db
    .updateTable("api_tokens")
    .set({ last_used_at: now })
    .where("id", "=", id)
    .where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", new Date(now.getTime() - everyMs))]))
    .execute();
}

export async function insertJoinToken(db: Db, row: { id: string; tokenHash: string; expiresAt: Date }): Promise<void> {
  await db.insertInto("join_tokens").values({ id: row.id, token_hash: row.tokenHash, expires_at: row.expiresAt, used_at: null, created_at: new Date() }).execute();
}

/** Marks an unexpired, unused join token used; returns false when there is none. Atomic. */
export async function consumeJoinToken(db: Db, hash: string, now: Date): Promise<boolean> {
  const r = await db
    .updateTable("join_tokens")
    .set({ used_at: now })
    .where("token_hash", "=", hash)
    .where("used_at", "is", null)
    .where("expires_at", ">", now)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}
