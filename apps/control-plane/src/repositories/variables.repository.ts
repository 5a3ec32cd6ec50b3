import { sql } from "kysely";
import type { Db } from "../db/database.js";
import { insertOrConflict } from "./unique-violation.js";

/** Stored (encrypted) variables of an environment, by key. */
export async function listVariables(db: Db, environmentId: string): Promise<Record<string, string>> {
  const rows = await db.selectFrom("environment_variables").select(["key", "value_encrypted"]).where("environment_id", "=", environmentId).orderBy("key").execute();
  return Object.fromEntries(rows.map((r) => [r.key, r.value_encrypted]));
}

/** Replaces the whole map (encrypted values). */
export async function replaceVariables(db: Db, environmentId: string, sealed: Record<string, string>): Promise<void> {
  await db.deleteFrom("environment_variables").where("environment_id", "=", environmentId).execute();
  const rows = Object.entries(sealed).map(([key, value_encrypted]) => ({ environment_id: environmentId, key, value_encrypted, updated_at: new Date() }));
  if (rows.length) await db.insertInto("environment_variables").values(rows).execute();
}

export async function listDomains(db: Db, environmentId: string): Promise<string[]> {
  const rows = await db.selectFrom("domains").select("hostname").where("environment_id", "=", environmentId).orderBy("created_at").orderBy("hostname").execute();
  return rows.map((r) => r.hostname);
}
/** An environment's custom domains (oldest first) and its variables (encrypted values) in one statement: a deployment request reads both. */
export async function listDomainsAndVariables(db: Db, environmentId: string): Promise<{ domains: string[]; variables: Record<string, string> }> {
  const r = await sql<{ domain: string | null; key: string | null; value: string | null }>`
    SELECT hostname AS domain, NULL AS key, NULL AS value, 0 AS part, created_at AS at FROM domains WHERE environment_id = ${environmentId}
    UNION ALL
    SELECT NULL, key, value_encrypted, 1, NULL FROM environment_variables WHERE environment_id = ${environmentId}
    ORDER BY part, at, domain, key`.execute(db);
  const domains: string[] = [];
  const variables: Record<string, string> = {};
  for (const row of r.rows) {
    if (row.domain !== null) domains.push(row.domain);
    else variables[row.key!] = row.value!;
  }
  return { domains, variables };
}
export function findDomain(db: Db, hostname: string) {
  return db.selectFrom("domains").selectAll().where("hostname", "=", hostname).executeTakeFirst();
}
/** The app and environment a custom domain belongs to, if any. */
export function findDomainOwner(db: Db, hostname: string): Promise<{ environmentId: string; app: string; environment: string } | undefined> {
  return db
    .selectFrom("domains")
    .innerJoin("environments", "environments.id", "domains.environment_id")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .select(["environments.id as environmentId", "apps.name as app", "environments.name as environment"])
    .where("domains.hostname", "=", hostname)
    .executeTakeFirst();
}
export async function insertDomain(db: Db, environmentId: string, hostname: string): Promise<void> {
  await insertOrConflict(db.insertInto("domains").values({ hostname, environment_id: environmentId, created_at: new Date() }).execute());
}
export async function deleteDomain(db: Db, hostname: string): Promise<void> {
  await db.deleteFrom("domains").where("hostname", "=", hostname).execute();
}
