import type { Selectable } from "kysely";
import type { Db } from "../db/database.js";
import type { BackupsTable, ContentCopiesTable } from "../db/schema.js";

export type BackupRow = Selectable<BackupsTable>;
export type ContentCopyRow = Selectable<ContentCopiesTable>;

export async function insertBackup(db: Db, r: { id: string; app: string; environment: string; environmentId: string; kind: BackupRow["kind"]; database: boolean; media: boolean; prefix: string; requestedBy: string }): Promise<void> {
  await db
    .insertInto("backups")
    .values({ id: r.id, app: r.app, environment: r.environment, environment_id: r.environmentId, kind: r.kind, state: "queued", database: r.database, media: r.media, prefix: r.prefix, job_id: null, requested_by: r.requestedBy, created_at: new Date(), finished_at: null })
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
  r: { id: string; app: string; source: string; target: string; sourceEnvironmentId: string; targetEnvironmentId: string; kind: "copy" | "restore"; database: boolean; media: boolean; safetyBackupId: string | null; requestedBy: string; deploymentId?: string },
): Promise<void> {
  await db
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
      job_id: null,
      deployment_id: r.deploymentId ?? null,
      requested_by: r.requestedBy,
      created_at: new Date(),
      finished_at: null,
    })
    .execute();
}
export function findContentCopy(db: Db, id: string): Promise<ContentCopyRow | undefined> {
  return db.selectFrom("content_copies").selectAll().where("id", "=", id).executeTakeFirst();
}
