import { sql } from "kysely";
import type { Db } from "../db/database.js";
import { json } from "../db/database.js";

export interface ActivityEntry {
  actor: string;
  app?: string;
  environment?: string;
  action: string;
  details?: Record<string, unknown>;
}

export async function recordActivity(db: Db, e: ActivityEntry): Promise<void> {
  await db
    .insertInto("activity")
    .values({ at: new Date(), actor: e.actor, app: e.app ?? null, environment: e.environment ?? null, action: e.action, details: json(e.details ?? {}) })
    .execute();
}

/** Newest first; `before` (an entry's id) pages to older entries: only ids below it. */
export async function listActivity(db: Db, filter: { app?: string; environment?: string; before?: number; limit: number }) {
  let q = db.selectFrom("activity").selectAll().orderBy("id", "desc").limit(filter.limit);
  if (filter.before !== undefined) q = q.where("id", "<", filter.before);
  if (filter.app) q = q.where("app", "=", filter.app);
  if (filter.environment) q = q.where("environment", "=", filter.environment);
  return q.execute();
}

/** When the host's latest drain began (its `host.draining` entry); undefined when it never drained. */
export async function latestDrainStart(db: Db, hostId: string): Promise<Date | undefined> {
  const row = await db
    .selectFrom("activity")
    .select("at")
    .where("action", "=", "host.draining")
    .where(sql<string>`details->>'hostId'`, "=", hostId)
    .orderBy("id", "desc")
    .limit(1)
    .executeTakeFirst();
  return row?.at;
}
