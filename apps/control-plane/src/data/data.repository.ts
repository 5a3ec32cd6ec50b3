import { sql, type Selectable } from "kysely";
import type { Db } from "../db/database.js";
import type { BackupsTable, ContentCopiesTable } from "../db/schema.js";
import { insertOrConflict } from "../repositories/unique-violation.js";

export type BackupRow = Selectable<BackupsTable>;
export type ContentCopyRow = Selectable<ContentCopiesTable>;

export async function insertBackup(db: Db, r: { id: string; app: string; environment: string; environmentId: string; kind: BackupRow["kind"]; database: boolean; media: boolean; prefix: string; requestedBy: string; jobId?: string }): Promise<void> {
  await db
    .insertInto("backups")
    .values({ id: r.id, app: r.app, environment: r.environment, environment_id: r.environmentId, kind: r.kind, state: "queued", database: r.database, media: r.media, prefix: r.prefix, job_id: r.jobId ?? null, requested_by: r.requestedBy, created_at: new Date(), finished_at: null })
    .execute();
}
/**
 * A backup whose parts are already stored (an upload): recorded finished, with the database
 * archive's size and sha256 and/or the media's object count and bytes.
 */
export async function insertFinishedBackup(
  db: Db,
  r: { id: string; app: string; environment: string; environmentId: string; kind: BackupRow["kind"]; prefix: string; requestedBy: string; at: Date; database?: { bytes: number; sha256: string }; media?: { objects: number; bytes: number } },
): Promise<void> {
  await db
    .insertInto("backups")
    .values({
      id: r.id,
      app: r.app,
      environment: r.environment,
      environment_id: r.environmentId,
      kind: r.kind,
      state: "succeeded",
      database: r.database !== undefined,
      media: r.media !== undefined,
      database_bytes: r.database?.bytes ?? null,
      database_sha256: r.database?.sha256 ?? null,
      media_bytes: r.media?.bytes ?? null,
      media_objects: r.media?.objects ?? null,
      prefix: r.prefix,
      job_id: null,
      requested_by: r.requestedBy,
      created_at: r.at,
      finished_at: r.at,
    })
    .execute();
}
export function findBackup(db: Db, id: string): Promise<BackupRow | undefined> {
  return db.selectFrom("backups").selectAll().where("id", "=", id).executeTakeFirst();
}
/** Newest first. */
export function listBackups(db: Db, environmentId: string): Promise<BackupRow[]> {
  return db.selectFrom("backups").selectAll().where("environment_id", "=", environmentId).orderBy("created_at", "desc").execute();
}
export async function insertContentCopy(
  db: Db,
  r: { id: string; app: string; source: string; target: string; sourceEnvironmentId: string; targetEnvironmentId: string; kind: "copy" | "restore"; database: boolean; media: boolean; safetyBackupId: string | null; requestedBy: string; deploymentId?: string; jobId?: string },
): Promise<void> {
  await insertOrConflict(db
    .insertInto("content_copies")
    .values({
      id: r.id,
      app: r.app,
      source: r.source,
      target: r.target,
      source_environment_id: r.sourceEnvironmentId,
      target_environment_id: r.targetEnvironmentId,
      kind: r.kind,
      state: "queued",
      database: r.database,
      media: r.media,
      phase: null,
      safety_backup_id: r.safetyBackupId,
      job_id: r.jobId ?? null,
      deployment_id: r.deploymentId ?? null,
      requested_by: r.requestedBy,
      created_at: new Date(),
      finished_at: null,
    })
    .execute());
}
export function findContentCopy(db: Db, id: string): Promise<ContentCopyRow | undefined> {
  return db.selectFrom("content_copies").selectAll().where("id", "=", id).executeTakeFirst();
}

// ---- what agents report of data work (job-report.service.ts) ----

/** A data job (or a deployment's content step) began: its queued records run. */
export async function markDataRecordsRunning(db: Db, jobId: string): Promise<void> {
  await db.updateTable("backups").set({ state: "running" }).where("job_id", "=", jobId).where("state", "=", "queued").execute();
  await db.updateTable("content_copies").set({ state: "running" }).where("job_id", "=", jobId).where("state", "=", "queued").execute();
}

export async function recordCopyProgress(db: Db, jobId: string, p: { phase: string; bytes: number; objects: number }): Promise<void> {
  await db.updateTable("content_copies").set({ state: "running", phase: p.phase, bytes: p.bytes, objects: p.objects }).where("job_id", "=", jobId).execute();
}

/**
 * Facts of one part of a backup (database, media): sets only what this part
 * carries; the backup is complete (and restorable, even if the job fails
 * later) once every requested part reported.
 */
export async function recordBackupFacts(db: Db, jobId: string, at: Date, f: { backupId: string; database: boolean; databaseBytes: number; databaseSha256?: string; media: boolean; mediaBytes: number; mediaObjects: number }): Promise<void> {
  await db
    .updateTable("backups")
    .set({ ...(f.database ? { database_bytes: f.databaseBytes, database_sha256: f.databaseSha256 || null } : {}), ...(f.media ? { media_bytes: f.mediaBytes, media_objects: f.mediaObjects } : {}) })
    .where("id", "=", f.backupId)
    .where("job_id", "=", jobId)
    .execute();
  await sql`UPDATE backups SET state = 'succeeded', finished_at = ${at}
    WHERE id = ${f.backupId} AND job_id = ${jobId} AND state IN ('queued', 'running')
      AND (NOT database OR database_bytes IS NOT NULL) AND (NOT media OR media_objects IS NOT NULL)`.execute(db);
}

/** Ends a job's content copies (when still open) and its backups that did not complete. */
export async function finishDataRecords(db: Db, jobId: string, at: Date, copyState: string, error: string | null, backupState: "succeeded" | "failed"): Promise<void> {
  await db.updateTable("content_copies").set({ state: copyState, finished_at: at, error }).where("job_id", "=", jobId).where("state", "in", ["queued", "running"]).execute();
  await db.updateTable("backups").set({ state: backupState, finished_at: at, error }).where("job_id", "=", jobId).where("state", "in", ["queued", "running"]).execute();
}

export async function setBackupJob(db: Db, id: string, jobId: string): Promise<void> {
  await db.updateTable("backups").set({ job_id: jobId }).where("id", "=", id).execute();
}
export async function setContentCopyJob(db: Db, id: string, jobId: string): Promise<void> {
  await db.updateTable("content_copies").set({ job_id: jobId }).where("id", "=", id).execute();
}
export async function deleteBackup(db: Db, id: string): Promise<void> {
  await db.deleteFrom("backups").where("id", "=", id).execute();
}
export async function deleteBackupsOf(db: Db, environmentId: string): Promise<void> {
  await db.deleteFrom("backups").where("environment_id", "=", environmentId).execute();
}
/** Every environment with its backup schedule (null: the default one). */
export function backupSchedules(db: Db): Promise<Array<{ id: string; name: string; backup_schedule: unknown; app: string }>> {
  return db.selectFrom("environments").innerJoin("apps", "apps.id", "environments.app_id").select(["environments.id", "environments.name", "environments.backup_schedule", "apps.name as app"]).execute();
}

// ---- one operation per environment at a time (issue 11) ----

/** What is changing an environment's code or content right now. */
export interface ActiveOperation {
  kind: "deployment" | "backup" | "copy" | "restore";
  id: string;
  state: string;
}

/**
 * Locks the environment's row (SELECT … FOR UPDATE) until the transaction ends, so two
 * requests that both check activeOperation cannot both pass. False when it no longer exists.
 */
export async function lockEnvironment(trx: Db, environmentId: string): Promise<boolean> {
  return (await trx.selectFrom("environments").select("id").where("id", "=", environmentId).forUpdate().executeTakeFirst()) !== undefined;
}

/**
 * A content copy or restore, queued or running, that reads this environment's data: a copy
 * from it, or a restore of one of its backups (the backup goes when the environment does).
 */
export async function activeReader(trx: Db, environmentId: string): Promise<ActiveOperation | undefined> {
  const copy = await trx
    .selectFrom("content_copies")
    .select(["id", "state", "kind"])
    .where("source_environment_id", "=", environmentId)
    .where("state", "in", ["queued", "running"])
    .executeTakeFirst();
  return copy ? { kind: copy.kind === "restore" ? "restore" : "copy", id: copy.id, state: copy.state } : undefined;
}

/**
 * The deployment (not one waiting behind another) or data operation (a backup of it, a
 * content copy or restore into it) that is queued or running on the environment, if any.
 * A queued job counts: the agent may pick it up at any moment. Call it after lockEnvironment,
 * in the transaction that writes the new operation.
 */
export async function activeOperation(trx: Db, environmentId: string): Promise<ActiveOperation | undefined> {
  // One statement, not three: every deployment request asks it (the deployment first, then a copy
  // or restore into the environment, then a backup of it).
  const r = await sql<{ kind: string; id: string; state: string }>`
    (SELECT 1 AS rank, 'deployment' AS kind, id::text AS id, state FROM deployments
      WHERE environment_id = ${environmentId} AND waiting = false AND state IN ('queued', 'preparing', 'building', 'releasing', 'starting', 'probing', 'switching') LIMIT 1)
    UNION ALL
    (SELECT 2, kind, id::text, state FROM content_copies WHERE target_environment_id = ${environmentId} AND state IN ('queued', 'running') LIMIT 1)
    UNION ALL
    (SELECT 3, 'backup', id::text, state FROM backups WHERE environment_id = ${environmentId} AND state IN ('queued', 'running') LIMIT 1)
    ORDER BY rank LIMIT 1`.execute(trx);
  const op = r.rows[0];
  if (!op) return undefined;
  if (op.kind === "deployment" || op.kind === "backup") return { kind: op.kind, id: op.id, state: op.state };
  return { kind: op.kind === "restore" ? "restore" : "copy", id: op.id, state: op.state };
}
