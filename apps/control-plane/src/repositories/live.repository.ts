import { sql, type Selectable } from "kysely";
import { jsonArrayFrom } from "kysely/helpers/postgres";
import type { Db } from "../db/database.js";
import type { ActivityTable } from "../db/schema.js";
import type { DeploymentRow } from "./deployments.repository.js";

// The queries of the live streams (routes/live.routes.ts): each is the one query a stream makes
// per poll, so each reads only what changed since the stream's cursor, by an index.

/**
 * A deployment and its log lines after `afterSeq` (at most `limit`, by seq), in one statement:
 * one snapshot, so a deployment read as ended comes with every line committed before it ended.
 * Lines by the primary key (deployment_id, seq). `atMs`: the agent's time of the line.
 */
export async function deploymentWithLogAfter(db: Db, id: string, afterSeq: number, limit: number): Promise<(DeploymentRow & { lines: Array<{ seq: number; atMs: number; text: string }> }) | undefined> {
  return db
    .selectFrom("deployments")
    .selectAll("deployments")
    .select((eb) =>
      jsonArrayFrom(
        eb
          .selectFrom("deployment_logs")
          .select(["seq", "text", sql<number>`(extract(epoch from at) * 1000)::float8`.as("atMs")])
          .where("deployment_id", "=", id)
          .where("seq", ">", afterSeq)
          .orderBy("seq")
          .limit(limit),
      ).as("lines"),
    )
    .where("id", "=", id)
    .executeTakeFirst();
}

export type ActivityRow = Selectable<ActivityTable>;

/**
 * Activity entries after `afterId`, oldest first, every one of them (the caller needs the ids it
 * does not show to see gaps), each with `visible`: whether it passes the filter, decided here as
 * GET /v1/activity decides it. By the primary key, from the cursor on.
 */
export function activityAfter(db: Db, afterId: number, filter: { app?: string; environment?: string }, limit: number): Promise<Array<ActivityRow & { visible: boolean | null }>> {
  return db
    .selectFrom("activity")
    .selectAll()
    .select((eb) => eb.and([...(filter.app ? [eb("app", "=", filter.app)] : []), ...(filter.environment ? [eb("environment", "=", filter.environment)] : [])]).$castTo<boolean | null>().as("visible"))
    .where("id", ">", afterId)
    .orderBy("id")
    .limit(limit)
    .execute();
}

/** The newest activity id (0 when there is none). */
export async function latestActivityId(db: Db): Promise<number> {
  const row = await db.selectFrom("activity").select((eb) => eb.fn.max("id").as("id")).executeTakeFirst();
  return Number(row?.id ?? 0);
}

/**
 * What an environment view is computed from, per environment of the app, as cheap values to
 * compare between polls: a hash of the environment's row, the app's settings revision, the
 * latest finished deployment, the host's state and heartbeat. The mirror's state is in memory
 * and the time is the caller's. Empty when the app does not exist. Same order as the list.
 */
export function environmentInputs(db: Db, appName: string) {
  return db
    .selectFrom("apps")
    .innerJoin("environments", "environments.app_id", "apps.id")
    .leftJoin("hosts", "hosts.id", "environments.host_id")
    .select(["apps.id as appId", "apps.settings_revision as settingsRevision", "environments.id as id", "environments.name as name", "hosts.admin_state as hostState", "hosts.last_heartbeat_at as hostHeartbeatAt"])
    .select(sql<string>`md5(environments::text)`.as("rowHash"))
    .select((eb) =>
      eb
        .selectFrom("deployments")
        .select(sql<string>`deployments.id || ' ' || deployments.state`.as("d"))
        .whereRef("deployments.environment_id", "=", "environments.id")
        .where("deployments.state", "in", ["succeeded", "failed", "cancelled"])
        .orderBy("deployments.finished_at", "desc")
        .limit(1)
        .as("lastFinished"),
    )
    .where("apps.name", "=", appName)
    .orderBy(sql`CASE environments.name WHEN 'test' THEN 0 WHEN 'live' THEN 1 ELSE 2 END`)
    .orderBy("environments.created_at")
    .orderBy("environments.name")
    .execute();
}
