import type { Db } from "../db/database.js";
import { json } from "../db/database.js";
import type { ApiTokensTable, JoinTokensTable } from "../db/schema.js";
import type { Selectable } from "kysely";

export type ApiTokenRow = Selectable<ApiTokensTable>;
export type JoinTokenRow = Selectable<JoinTokensTable>;

export async function insertApiToken(db: Db, row: { id: string; name: string; role: "admin" | "deployer"; apps: string[]; tokenHash: string }): Promise<void> {
  await db
    .insertInto("api_tokens")
    .values({ id: row.id, name: row.name, role: row.role, apps: json(row.apps), token_hash: row.tokenHash, created_at: new Date(), revoked_at: null })
    .execute();
}

export function findApiTokenByHash(db: Db, hash: string): Promise<ApiTokenRow | undefined> {
  return db.selectFrom("api_tokens").selectAll().where("token_hash", "=", hash).where("revoked_at", "is", null).executeTakeFirst();
}

export async function countAdminTokens(db: Db): Promise<number> {
  const r = await db.selectFrom("api_tokens").select((eb) => eb.fn.countAll().as("n")).where("role", "=", "admin").where("revoked_at", "is", null).executeTakeFirstOrThrow();
  return Number(r.n);
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
