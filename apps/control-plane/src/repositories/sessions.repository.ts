import type { Selectable } from "kysely";
import type { Db } from "../db/database.js";
import type { ApiTokensTable, SessionsTable } from "../db/schema.js";

export type SessionRow = Selectable<SessionsTable>;

/** A session with the token it is bound to (the token's role, apps and expiry apply). */
export interface SessionWithToken {
  session: SessionRow;
  token: Pick<Selectable<ApiTokensTable>, "id" | "name" | "role" | "apps" | "expires_at" | "last_used_at">;
}

export async function insertSession(db: Db, row: { id: string; secretHash: string; tokenId: string; now: Date; expiresAt: Date }): Promise<void> {
  await db.insertInto("sessions").values({ id: row.id, secret_hash: row.secretHash, token_id: row.tokenId, created_at: row.now, last_used_at: row.now, expires_at: row.expiresAt }).execute();
}

/**
 * The session with this secret hash and its token, when the token is not revoked (a revoked
 * token's sessions are refused even before they are deleted). Expiry is the caller's to check.
 */
export async function findSessionByHash(db: Db, hash: string): Promise<SessionWithToken | undefined> {
  const r = await db
    .selectFrom("sessions as s")
    .innerJoin("api_tokens as t", "t.id", "s.token_id")
    .select([
      "s.id as s_id", "s.secret_hash as s_secret_hash", "s.token_id as s_token_id", "s.created_at as s_created_at", "s.last_used_at as s_last_used_at", "s.expires_at as s_expires_at",
      "t.name as t_name", "t.role as t_role", "t.apps as t_apps", "t.expires_at as t_expires_at", "t.last_used_at as t_last_used_at",
    ])
    .where("s.secret_hash", "=", hash)
    .where("t.revoked_at", "is", null)
    .executeTakeFirst();
  if (!r) return undefined;
  return {
    session: { id: r.s_id, secret_hash: r.s_secret_hash, token_id: r.s_token_id, created_at: r.s_created_at, last_used_at: r.s_last_used_at, expires_at: r.s_expires_at },
    token: { id: r.s_token_id, name: r.t_name, role: r.t_role, apps: r.t_apps, expires_at: r.t_expires_at, last_used_at: r.t_last_used_at },
  };
}

/** Moves a session's expiry (and last use) forward; only forward, so two requests at once cannot shorten it. */
export async function extendSession(db: Db, id: string, now: Date, expiresAt: Date): Promise<void> {
  await db.updateTable("sessions").set({ last_used_at: now, expires_at: expiresAt }).where("id", "=", id).where("expires_at", "<", expiresAt).execute();
}

/** Removes one session; returns whether it existed. Idempotent. */
export async function deleteSession(db: Db, id: string): Promise<boolean> {
  const r = await db.deleteFrom("sessions").where("id", "=", id).executeTakeFirst();
  return Number(r.numDeletedRows) === 1;
}

/** Removes every session of these tokens (they were revoked); returns how many. */
export async function deleteSessionsOfTokens(db: Db, tokenIds: string[]): Promise<number> {
  if (tokenIds.length === 0) return 0;
  const r = await db.deleteFrom("sessions").where("token_id", "in", tokenIds).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** Removes sessions that can no longer be used: expired, or bound to a token revoked or expired at `now`. */
export async function pruneSessions(db: Db, now: Date): Promise<number> {
  const r = await db
    .deleteFrom("sessions")
    .where((eb) =>
      eb.or([
        eb("expires_at", "<=", now),
        eb("token_id", "in", eb.selectFrom("api_tokens").select("id").where((t) => t.or([t("revoked_at", "is not", null), t("expires_at", "<=", now)]))),
      ]),
    )
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
