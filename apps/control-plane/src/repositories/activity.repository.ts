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

export async function listActivity(db: Db, filter: { app?: string; environment?: string; limit: number }) {
  let q = db.selectFrom("activity").selectAll().orderBy("id", "desc").limit(filter.limit);
  if (filter.app) q = q.where("app", "=", filter.app);
  if (filter.environment) q = q.where("environment", "=", filter.environment);
  return q.execute();
}
