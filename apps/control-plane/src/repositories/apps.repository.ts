import { sql, type Selectable } from "kysely";
import { NotFoundError } from "@slipway/core";
import type { Db } from "../db/database.js";
import { json } from "../db/database.js";
import type { AppsTable, EnvironmentsTable } from "../db/schema.js";
import { insertOrConflict, rethrowUnique } from "./unique-violation.js";

export type AppRow = Selectable<AppsTable>;
export type EnvironmentRow = Selectable<EnvironmentsTable>;

export async function insertApp(db: Db, row: { id: string; name: string; repository: string; settings: unknown }): Promise<void> {
  const now = new Date();
  await insertOrConflict(db
    .insertInto("apps")
    .values({ id: row.id, name: row.name, repository: row.repository, settings: json(row.settings), settings_revision: 1, created_at: now, updated_at: now })
    .execute());
}

export function findAppByName(db: Db, name: string): Promise<AppRow | undefined> {
  return db.selectFrom("apps").selectAll().where("name", "=", name).executeTakeFirst();
}
export async function getAppByName(db: Db, name: string): Promise<AppRow> {
  const app = await findAppByName(db, name);
  if (!app) throw new NotFoundError(`app '${name}' does not exist`);
  return app;
}
export function findAppById(db: Db, id: string): Promise<AppRow | undefined> {
  return db.selectFrom("apps").selectAll().where("id", "=", id).executeTakeFirst();
}
export function listApps(db: Db): Promise<AppRow[]> {
  return db.selectFrom("apps").selectAll().orderBy("name").execute();
}
export async function updateAppSettings(db: Db, id: string, settings: unknown): Promise<void> {
  await db
    .updateTable("apps")
    .set((eb) => ({ settings: json(settings), settings_revision: eb("settings_revision", "+", 1), updated_at: new Date() }))
    .where("id", "=", id)
    .execute();
}
export async function deleteApp(db: Db, id: string): Promise<void> {
  await db.deleteFrom("apps").where("id", "=", id).execute();
}

/**
 * Inserts an environment with its default host label and media prefix. A label another
 * environment holds is refused by the unique constraint (UniqueViolationError
 * "environments_host_label_unique"), so concurrent creators cannot both get it.
 */
export async function insertEnvironment(db: Db, row: { id: string; appId: string; name: string; branch: string; replicas: number; sleepAfterSeconds: number | null; hostLabel: string; mediaPrefix: string }): Promise<void> {
  const now = new Date();
  await insertOrConflict(db
    .insertInto("environments")
    .values({
      id: row.id,
      app_id: row.appId,
      name: row.name,
      branch: row.branch,
      state: "not_deployed",
      replicas: row.replicas,
      sleep_after_seconds: row.sleepAfterSeconds,
      host_id: null,
      config_revision: 1,
      deployed_config_revision: null,
      deployed_settings_revision: null,
      deployed_commit: null,
      current_image: null,
      last_success_at: null,
      host_label: row.hostLabel,
      media_prefix: row.mediaPrefix,
      created_at: now,
      updated_at: now,
    })
    .execute());
}

/** test, live, then the others in creation order (rows made in one transaction share a timestamp). */
export function listEnvironments(db: Db, appId: string): Promise<EnvironmentRow[]> {
  return db
    .selectFrom("environments")
    .selectAll()
    .where("app_id", "=", appId)
    .orderBy(sql`CASE name WHEN 'test' THEN 0 WHEN 'live' THEN 1 ELSE 2 END`)
    .orderBy("created_at")
    .orderBy("name")
    .execute();
}
export function findEnvironment(db: Db, appId: string, name: string): Promise<EnvironmentRow | undefined> {
  return db.selectFrom("environments").selectAll().where("app_id", "=", appId).where("name", "=", name).executeTakeFirst();
}
export async function getEnvironment(db: Db, app: AppRow, name: string): Promise<EnvironmentRow> {
  const env = await findEnvironment(db, app.id, name);
  if (!env) throw new NotFoundError(`environment '${name}' of app '${app.name}' does not exist`);
  return env;
}
export function findEnvironmentById(db: Db, id: string): Promise<EnvironmentRow | undefined> {
  return db.selectFrom("environments").selectAll().where("id", "=", id).executeTakeFirst();
}
/** The environment's row, locked for the rest of `trx` (undefined when it is gone). */
export function lockEnvironmentRow(trx: Db, id: string): Promise<EnvironmentRow | undefined> {
  return trx.selectFrom("environments").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
}

/** Applies user-visible changes that a deployment must apply, bumping the config revision. */
export async function updateEnvironmentConfig(db: Db, id: string, patch: Partial<Pick<EnvironmentRow, "branch" | "replicas" | "sleep_after_seconds">> & { host_labels?: string; limits?: string | null }): Promise<void> {
  await db
    .updateTable("environments")
    .set((eb) => ({ ...patch, config_revision: eb("config_revision", "+", 1), updated_at: new Date() }))
    .where("id", "=", id)
    .execute();
}



/** The app and environment whose default host label this is, if any. */
export function findEnvironmentByHostLabel(db: Db, hostLabel: string): Promise<{ app: string; environment: string } | undefined> {
  return db
    .selectFrom("environments")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .select(["apps.name as app", "environments.name as environment"])
    .where("environments.host_label", "=", hostLabel)
    .executeTakeFirst();
}

/**
 * Records the environment's database, role and (sealed) password at its first provisioning,
 * unless they are recorded already; false when another caller was first.
 */
export async function recordDatabaseIdentity(db: Db, id: string, identity: { sealedPassword: string; database: string; role: string }): Promise<boolean> {
  const r = await db
    .updateTable("environments")
    .set({ db_password_encrypted: identity.sealedPassword, database_name: identity.database, database_role: identity.role })
    .where("id", "=", id)
    .where("db_password_encrypted", "is", null)
    .executeTakeFirst()
    .catch(rethrowUnique);
  return Number(r.numUpdatedRows) > 0;
}

/**
 * Records an environment's storage identity (bucket and keys) before the provider creates it:
 * the first caller wins (answers true), so concurrent provisionings agree on one identity.
 */
export async function recordStorageIdentity(db: Db, id: string, identity: { bucket: string; accessKeyId: string; sealedSecret: string }): Promise<boolean> {
  const r = await db
    .updateTable("environments")
    .set({ media_bucket: identity.bucket, storage_access_key: identity.accessKeyId, storage_secret_encrypted: identity.sealedSecret })
    .where("id", "=", id)
    .where("storage_access_key", "is", null)
    .executeTakeFirst()
    .catch(rethrowUnique);
  return Number(r.numUpdatedRows) > 0;
}

/** Records a killed container of the environment (shown as its last incident). */
export async function setLastIncident(db: Db, id: string, incident: { at: string; reason: string; container: string; count: number }): Promise<void> {
  await db.updateTable("environments").set({ last_incident: json(incident) }).where("id", "=", id).execute();
}

/** Environments with incidents, for Prometheus: app, environment and how many. */
export async function incidentCounts(db: Db): Promise<Array<{ app: string; environment: string; count: number }>> {
  const rows = await db
    .selectFrom("environments")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .select(["apps.name as app", "environments.name as environment", "environments.last_incident"])
    .where("environments.last_incident", "is not", null)
    .execute();
  return rows.map((r) => ({ app: r.app, environment: r.environment, count: Number(r.last_incident?.count ?? 0) }));
}

/** The provider created the environment's storage identity and bucket. */
export async function markStorageReady(db: Db, id: string): Promise<void> {
  await db.updateTable("environments").set({ storage_ready: true }).where("id", "=", id).execute();
}

/**
 * Records the names of a database provisioned before they were recorded (migration 0010).
 * A name another environment recorded is refused by the unique constraints
 * (UniqueViolationError "environments_database_name_unique" or "…_role_unique").
 */
export async function recordLegacyDatabaseNames(db: Db, id: string, names: { database: string; role: string }): Promise<void> {
  await db.updateTable("environments").set({ database_name: names.database, database_role: names.role }).where("id", "=", id).where("database_name", "is", null).execute().catch(rethrowUnique);
}

/** The environment that recorded this database or role name, if any. */
export function findEnvironmentByDatabase(db: Db, names: { database: string; role: string }): Promise<{ id: string; app: string; environment: string } | undefined> {
  return db
    .selectFrom("environments")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .select(["environments.id", "apps.name as app", "environments.name as environment"])
    .where((eb) => eb.or([eb("environments.database_name", "=", names.database), eb("environments.database_role", "=", names.role)]))
    .executeTakeFirst();
}

/** Environments provisioned before their database names were recorded (migration 0010), with their app's name. */
export function listUnrecordedDatabases(db: Db): Promise<Array<{ id: string; app: string; environment: string }>> {
  return db
    .selectFrom("environments")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .select(["environments.id", "apps.name as app", "environments.name as environment"])
    .where("environments.db_password_encrypted", "is not", null)
    .where("environments.database_name", "is", null)
    .execute();
}
export async function setBackupSchedule(db: Db, id: string, schedule: unknown): Promise<void> {
  await db.updateTable("environments").set({ backup_schedule: JSON.stringify(schedule) }).where("id", "=", id).execute();
}
export async function setHostLabels(db: Db, id: string, labels: Record<string, string>): Promise<void> {
  await db.updateTable("environments").set({ host_labels: json(labels) }).where("id", "=", id).execute();
}
/** Basic auth applies at once through the ingress (not an unapplied change): no config revision. */
export async function setBasicAuth(db: Db, id: string, auth: { username: string; digest: string } | null): Promise<void> {
  await db.updateTable("environments").set({ basic_auth_username: auth?.username ?? null, basic_auth_digest: auth?.digest ?? null, updated_at: new Date() }).where("id", "=", id).execute();
}
/** Sleep applies at once through the ingress (not an unapplied change): no config revision. */
/** HTTP → HTTPS redirect and HSTS max-age (0 = none) of an environment. */
export async function setHttpsPolicy(db: Db, id: string, policy: { redirect: boolean; hstsMaxAgeSeconds: number }): Promise<void> {
  await db.updateTable("environments").set({ https_redirect: policy.redirect, hsts_max_age_seconds: policy.hstsMaxAgeSeconds, updated_at: new Date() }).where("id", "=", id).execute();
}
export async function setSleepAfter(db: Db, id: string, seconds: number | null): Promise<void> {
  await db.updateTable("environments").set({ sleep_after_seconds: seconds, updated_at: new Date() }).where("id", "=", id).execute();
}
export async function setSecretKey(db: Db, id: string, sealed: string): Promise<void> {
  await db.updateTable("environments").set({ secret_key_encrypted: sealed }).where("id", "=", id).execute();
}
export async function deleteEnvironment(db: Db, id: string): Promise<void> {
  await db.deleteFrom("environments").where("id", "=", id).execute();
}

export async function setAutoDeploy(db: Db, environmentId: string, autoDeploy: boolean): Promise<void> {
  await db.updateTable("environments").set({ auto_deploy: autoDeploy, updated_at: new Date() }).where("id", "=", environmentId).execute();
}

export async function setPollInterval(db: Db, appId: string, seconds: number | null): Promise<void> {
  await db.updateTable("apps").set({ poll_interval_seconds: seconds, updated_at: new Date() }).where("id", "=", appId).execute();
}

/** Stores the secret unless the app has one; answers the one stored. */
export async function setWebhookSecretIfMissing(db: Db, appId: string, sealed: string): Promise<string> {
  await db.updateTable("apps").set({ webhook_secret_encrypted: sealed }).where("id", "=", appId).where("webhook_secret_encrypted", "is", null).execute();
  const row = await db.selectFrom("apps").select("webhook_secret_encrypted").where("id", "=", appId).executeTakeFirstOrThrow();
  return row.webhook_secret_encrypted!;
}

export async function setWebhookSecret(db: Db, appId: string, sealed: string): Promise<void> {
  await db.updateTable("apps").set({ webhook_secret_encrypted: sealed, updated_at: new Date() }).where("id", "=", appId).execute();
}

/** Records a webhook delivery; false when the app received it before (a redelivery). */
export async function recordWebhookDelivery(db: Db, appId: string, deliveryId: string, provider: string): Promise<boolean> {
  const r = await db.insertInto("webhook_deliveries").values({ app_id: appId, delivery_id: deliveryId, provider }).onConflict((oc) => oc.columns(["app_id", "delivery_id"]).doNothing()).executeTakeFirst();
  return Number(r?.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function forgetWebhookDelivery(db: Db, appId: string, deliveryId: string): Promise<void> {
  await db.deleteFrom("webhook_deliveries").where("app_id", "=", appId).where("delivery_id", "=", deliveryId).execute();
}

/** Deliveries older than `before` are forgotten (a redelivery that late is a new push). */
export async function pruneWebhookDeliveries(db: Db, before: Date): Promise<void> {
  await db.deleteFrom("webhook_deliveries").where("received_at", "<", before).execute();
}
