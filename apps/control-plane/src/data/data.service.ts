import { randomBytes, randomUUID } from "node:crypto";
import {
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  PreconditionFailedError,
  UnavailableError,
  backupLocation,
  backupsToKeep,
  defaultBackupSchedule,
  type Logger,
} from "@slipway/core";
import type { DataSpec } from "@slipway/proto";
import type { Db } from "../db/database.js";
import type { BackupSchedule } from "../db/schema.js";
import * as apps from "../repositories/apps.repository.js";
import * as data from "./data.repository.js";
import type { ActiveOperation } from "./data.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { requireAdmin, requireApp, type Principal } from "../services/auth.service.js";
import type { SecretBox } from "../services/secret-box.js";
import type { PlacementService } from "../services/placement.service.js";
import { DatabaseProvisioner, databaseUrl, type EnvironmentDatabase } from "./provisioner.js";
import { storageDsn, type ObjectStore, type S3Place } from "./object-store.js";
import { environmentBucket, newStorageCredentials, type S3Credentials, type StorageProvider } from "./storage-provider.js";
import { UniqueViolationError } from "../repositories/unique-violation.js";
import type { Lifecycle } from "../services/lifecycle.service.js";
import { DEFAULT_UPLOAD_MAX_BYTES, openDatabaseArchive, uploadDatabaseArchive, type DatabaseArchive, type TransferDeps } from "./backup-transfer.js";
import { openMediaArchive, uploadMediaArchive, type MediaArchive } from "./media-transfer.js";

/** The stored spec of a data job: ids only, no secrets (GetJobSpec resolves them). */
export interface DataJobSpec {
  action: "backup" | "restore" | "copy";
  app: string;
  environment: string;
  targetEnvironmentId: string;
  sourceEnvironmentId?: string;
  database: boolean;
  media: boolean;
  backupId?: string;
  safetyBackupId?: string;
}

export interface BackupView {
  id: string;
  app: string;
  environment: string;
  kind: string;
  state: string;
  database: boolean;
  media: boolean;
  databaseBytes: number | null;
  /** sha256 of the database archive; a restore checks the archive against it first. */
  databaseSha256: string | null;
  mediaBytes: number | null;
  mediaObjects: number | null;
  sizeBytes: number | null;
  error: unknown;
  createdAt: string;
  finishedAt: string | null;
}

export interface ContentCopyView {
  id: string;
  app: string;
  kind: string;
  from: string;
  to: string;
  state: string;
  database: boolean;
  media: boolean;
  progress: { phase: string | null; bytes: number; objects: number };
  safetyBackupId: string | null;
  error: unknown;
  createdAt: string;
  finishedAt: string | null;
}

export class DataService {
  constructor(
    private readonly db: Db,
    private readonly lifecycle: Lifecycle,
    private readonly box: SecretBox,
    private readonly provisioner: DatabaseProvisioner,
    private readonly store: ObjectStore,
    private readonly storage: StorageProvider,
    private readonly placement: PlacementService,
    private readonly opts: { adminUrl: string; hostForContainers: string; onJobQueued: () => void; log: Logger; uploadMaxBytes?: number },
  ) {}

  /**
   * The environment's data services, created when missing (idempotent): its database and role,
   * and (under an isolating storage provider) its storage identity and media bucket. Called
   * before anything that hands them out: a deployment, a backup, a copy, a restore.
   */
  async ensureData(app: apps.AppRow, env: apps.EnvironmentRow): Promise<void> {
    await this.ensureDatabase(app, env);
    await this.ensureMedia(app, env);
  }

  /**
   * Whether `ensureData(app, env)` would change nothing (no query, no provisioning): the
   * environment's database has its recorded names and was provisioned by this process, and its
   * media storage is ready (or shared). A deployment request then skips its checks before provisioning.
   */
  dataReady(env: apps.EnvironmentRow): boolean {
    const names = env.db_password_encrypted ? recordedNames(env) : undefined;
    if (!names || !this.provisioner.ensured(names, this.box.decrypt(env.db_password_encrypted!))) return false;
    return !this.storage.isolates || env.storage_ready === true;
  }

  /**
   * Creates the environment's database and role when missing (idempotent). At the first
   * provisioning the names (from the environment's id) and the encrypted password are
   * recorded on the environment; from then on only the recorded names are used, so no
   * other environment's name can ever be derived here.
   */
  private async ensureDatabase(app: apps.AppRow, env: apps.EnvironmentRow): Promise<void> {
    let row = env;
    if (!row.db_password_encrypted) {
      const names = this.provisioner.names(env.id);
      const sealedPassword = this.box.encrypt(randomBytes(24).toString("base64url"));
      // Two callers at once: the first one recorded wins.
      row = (await apps.recordDatabaseIdentity(this.db, env.id, { sealedPassword, database: names.database, role: names.role }))
        ? { ...row, db_password_encrypted: sealedPassword, database_name: names.database, database_role: names.role }
        : await this.reload(env.id);
    }
    if (!recordedNames(row)) row = await this.recordLegacyNames(app, row);
    await this.provisioner.ensure(recordedNames(row)!, this.box.decrypt(row.db_password_encrypted!));
  }

  /**
   * An environment provisioned before names were recorded (migration 0010) has its database
   * under the name derived from app and environment names: record that, unless another
   * environment recorded it first (two environments that collided before the fix); then
   * this one gets no database until an operator sorts it out, and the 409 says whose it is.
   */
  private async recordLegacyNames(app: apps.AppRow, env: apps.EnvironmentRow): Promise<apps.EnvironmentRow> {
    const names = this.provisioner.legacyNames(app.name, env.name);
    try {
      await apps.recordLegacyDatabaseNames(this.db, env.id, names);
    } catch (err) {
      if (!(err instanceof UniqueViolationError)) throw err;
      const owner = await apps.findEnvironmentByDatabase(this.db, names);
      throw new ConflictError(`database ${names.database} of ${app.name}/${env.name} (named before migration 0010) is already used by ${owner ? `${owner.app}/${owner.environment}` : "another environment"}`);
    }
    this.opts.log.info({ app: app.name, env: env.name, database: names.database }, "recorded the database name of an environment provisioned before names were recorded");
    const row = await this.reload(env.id);
    if (!recordedNames(row)) throw new ConflictError(`the database of ${app.name}/${env.name} could not be recorded`);
    return row;
  }

  private async reload(id: string): Promise<apps.EnvironmentRow> {
    const row = await apps.findEnvironmentById(this.db, id);
    if (!row) throw new NotFoundError("the environment no longer exists");
    return row;
  }

  /**
   * Creates the environment's storage identity and bucket under an isolating provider, once
   * (idempotent): the keys are recorded first (sealed; the first caller wins), then the
   * provider is asked, then the environment is marked ready. A provider that fails leaves the
   * keys recorded and the environment not ready: the next call asks again with the same keys.
   */
  private async ensureMedia(app: apps.AppRow, env: apps.EnvironmentRow): Promise<void> {
    if (!this.storage.isolates || env.storage_ready) return;
    let row = env;
    if (!row.storage_access_key) {
      const keys = newStorageCredentials();
      const identity = { bucket: environmentBucket(env.id), accessKeyId: keys.accessKeyId, sealedSecret: this.box.encrypt(keys.secretAccessKey) };
      row = (await apps.recordStorageIdentity(this.db, env.id, identity))
        ? { ...row, media_bucket: identity.bucket, storage_access_key: identity.accessKeyId, storage_secret_encrypted: identity.sealedSecret }
        : await this.reload(env.id);
      if (row.storage_ready) return;
    }
    try {
      await this.storage.provision({
        environmentId: env.id,
        bucket: row.media_bucket!,
        credentials: { accessKeyId: row.storage_access_key!, secretAccessKey: this.box.decrypt(row.storage_secret_encrypted!) },
      });
    } catch (err) {
      this.opts.log.warn({ app: app.name, env: env.name, err: (err as Error).message }, "could not create the environment's media storage");
      throw new UnavailableError(`the media storage of ${app.name}/${env.name} could not be created (${(err as Error).message}); nothing else was changed, try again`);
    }
    await apps.markStorageReady(this.db, env.id);
  }

  /**
   * The keys and bucket an environment's containers get for their media: its own under an
   * isolating provider (none until provisioned: the platform's keys never reach a container
   * there), the platform's under the shared one.
   */
  private containerMedia(env: apps.EnvironmentRow): { keys: S3Credentials; bucket: string } | undefined {
    if (this.storage.isolates) {
      if (!env.storage_ready || !env.media_bucket || !env.storage_access_key || !env.storage_secret_encrypted) return undefined;
      return { bucket: env.media_bucket, keys: { accessKeyId: env.storage_access_key, secretAccessKey: this.box.decrypt(env.storage_secret_encrypted) } };
    }
    return { bucket: env.media_bucket ?? this.store.cfg.media.bucket, keys: this.store.cfg.media };
  }

  /** DATABASE_URL (once provisioned) and DEFAULT_STORAGE_DSN as the app's containers see them. */
  containerVariables(app: apps.AppRow, env: apps.EnvironmentRow): Record<string, string> {
    const out: Record<string, string> = {};
    const media = this.containerMedia(env);
    if (media) out.DEFAULT_STORAGE_DSN = storageDsn(this.store.cfg.media, media.keys, media.bucket, env.media_prefix);
    else this.opts.log.warn({ app: app.name, env: env.name }, "the environment's media storage is not provisioned yet: its containers get no DEFAULT_STORAGE_DSN");
    const names = recordedNames(env);
    if (env.db_password_encrypted && names) {
      out.DATABASE_URL = databaseUrl(this.opts.adminUrl, names, this.box.decrypt(env.db_password_encrypted), this.opts.hostForContainers);
    }
    return out;
  }

  async createBackup(by: Principal, appName: string, envName: string, input: { database: boolean; media: boolean }, kind: "manual" | "scheduled" = "manual"): Promise<BackupView> {
    requireApp(by, appName);
    if (!input.database && !input.media) throw new InvalidRequestError("a backup needs database, media or both", { details: { database: "false", media: "false" } });
    const app = await apps.getAppByName(this.db, appName);
    const env = await apps.getEnvironment(this.db, app, envName);
    await this.ensureData(app, env);
    const id = randomUUID();
    await this.db.transaction().execute(async (trx) => {
      await refuseWhileActive(trx, env.id, `${appName}/${envName}`);
      await data.insertBackup(trx, { id, app: appName, environment: envName, environmentId: env.id, kind, database: input.database, media: input.media, prefix: backupLocation(env.id, id), requestedBy: by.name });
      const spec: DataJobSpec = { action: "backup", app: appName, environment: envName, targetEnvironmentId: env.id, database: input.database, media: input.media, backupId: id };
      const jobId = await this.enqueue(trx, env, spec);
      await data.setBackupJob(trx, id, jobId);
      await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: "backup.requested", details: { backup: id, kind, database: input.database, media: input.media } });
    });
    this.opts.onJobQueued();
    return toBackupView((await data.findBackup(this.db, id))!);
  }

  async listBackups(by: Principal, appName: string, envName: string): Promise<BackupView[]> {
    requireApp(by, appName);
    const app = await apps.getAppByName(this.db, appName);
    const env = await apps.getEnvironment(this.db, app, envName);
    return (await data.listBackups(this.db, env.id)).map(toBackupView);
  }

  /**
   * "Deploy the content of environment X to this one" on its own: a backup of
   * the target first, then its database and/or media replaced by the source's.
   */
  async contentCopy(by: Principal, appName: string, target: string, input: { from: string; database: boolean; media: boolean; confirm?: boolean }): Promise<ContentCopyView> {
    requireApp(by, appName);
    if (input.from === target) throw new InvalidRequestError(`cannot copy ${appName}/${target} into itself`, { details: { from: "same as the target" } });
    if (!input.database && !input.media) throw new InvalidRequestError("a content copy needs database, media or both");
    const app = await apps.getAppByName(this.db, appName);
    const targetEnv = await apps.getEnvironment(this.db, app, target);
    const sourceEnv = await apps.getEnvironment(this.db, app, input.from);
    if (input.confirm !== true) {
      throw new PreconditionFailedError(`this replaces the ${[input.database && "database", input.media && "media"].filter(Boolean).join(" and ")} of ${appName}/${target}: send "confirm": true`);
    }
    await this.ensureData(app, targetEnv);
    await this.ensureData(app, sourceEnv);
    const id = randomUUID();
    const safetyId = randomUUID();
    await this.db
      .transaction()
      .execute(async (trx) => {
        await refuseWhileActive(trx, targetEnv.id, `${appName}/${target}`);
        await data.insertBackup(trx, { id: safetyId, app: appName, environment: target, environmentId: targetEnv.id, kind: "safety", database: input.database, media: input.media, prefix: backupLocation(targetEnv.id, safetyId), requestedBy: by.name });
        await data.insertContentCopy(trx, { id, app: appName, source: input.from, target, sourceEnvironmentId: sourceEnv.id, targetEnvironmentId: targetEnv.id, kind: "copy", database: input.database, media: input.media, safetyBackupId: safetyId, requestedBy: by.name });
        const spec: DataJobSpec = { action: "copy", app: appName, environment: target, targetEnvironmentId: targetEnv.id, sourceEnvironmentId: sourceEnv.id, database: input.database, media: input.media, safetyBackupId: safetyId };
        const jobId = await this.enqueue(trx, targetEnv, spec);
        await data.setContentCopyJob(trx, id, jobId);
        await data.setBackupJob(trx, safetyId, jobId);
        await recordActivity(trx, { actor: by.name, app: appName, environment: target, action: "content.copy_requested", details: { copy: id, from: input.from, database: input.database, media: input.media, safetyBackup: safetyId } });
      })
      .catch(conflictOnActive(appName, target));
    this.opts.onJobQueued();
    return this.getContentCopy(by, id);
  }

  async getBackup(by: Principal, backupId: string): Promise<BackupView> {
    const backup = await data.findBackup(this.db, backupId);
    if (!backup) throw new NotFoundError(`backup '${backupId}' does not exist`);
    requireApp(by, backup.app);
    return toBackupView(backup);
  }

  /** A finished backup's database archive, to stream to the client (backup-transfer.ts). */
  openBackupDatabase(by: Principal, backupId: string): Promise<DatabaseArchive> {
    return openDatabaseArchive(this.transferDeps(), by, backupId);
  }

  /** A client's database archive stored as a finished backup of kind "upload" (backup-transfer.ts). */
  async uploadBackup(by: Principal, appName: string, envName: string, body: AsyncIterable<Buffer> | undefined, declaredBytes?: number): Promise<BackupView> {
    return toBackupView(await uploadDatabaseArchive(this.transferDeps(), by, appName, envName, body, declaredBytes));
  }

  /** A finished backup's media as a tar stream, for admins and the app's deployers (media-transfer.ts). */
  openBackupMedia(by: Principal, backupId: string): Promise<MediaArchive> {
    return openMediaArchive(this.transferDeps(), by, backupId);
  }

  /** A client's tar stored as the media of a finished backup of kind "upload" (media-transfer.ts). */
  async uploadMediaBackup(by: Principal, appName: string, envName: string, body: AsyncIterable<Buffer> | undefined, declaredBytes?: number): Promise<BackupView> {
    return toBackupView(await uploadMediaArchive(this.transferDeps(), by, appName, envName, body, declaredBytes));
  }

  private transferDeps(): TransferDeps {
    return { db: this.db, store: this.store, log: this.opts.log, uploadMaxBytes: this.opts.uploadMaxBytes ?? DEFAULT_UPLOAD_MAX_BYTES };
  }

  /** Restores a backup into its own environment or another environment of the same app. */
  async restore(by: Principal, backupId: string, input: { into?: string; confirm?: boolean }): Promise<ContentCopyView> {
    const backup = await data.findBackup(this.db, backupId);
    if (!backup) throw new NotFoundError(`backup '${backupId}' does not exist`);
    requireApp(by, backup.app);
    if (backup.state !== "succeeded") throw new ConflictError(`backup ${backupId} is ${backup.state}; only a finished backup can be restored`);
    const app = await apps.getAppByName(this.db, backup.app);
    const target = await apps.getEnvironment(this.db, app, input.into ?? backup.environment);
    if (input.confirm !== true) throw new PreconditionFailedError(`restoring replaces the content of ${backup.app}/${target.name}: send "confirm": true`);
    await this.ensureData(app, target);
    const id = randomUUID();
    // Like a content copy: the target's current content is backed up first, by the same job.
    const safetyId = randomUUID();
    await this.db
      .transaction()
      .execute(async (trx) => {
        await refuseWhileActive(trx, target.id, `${backup.app}/${target.name}`);
        await data.insertBackup(trx, { id: safetyId, app: backup.app, environment: target.name, environmentId: target.id, kind: "safety", database: backup.database, media: backup.media, prefix: backupLocation(target.id, safetyId), requestedBy: by.name });
        await data.insertContentCopy(trx, { id, app: backup.app, source: `backup:${backupId}`, target: target.name, sourceEnvironmentId: backup.environment_id, targetEnvironmentId: target.id, kind: "restore", database: backup.database, media: backup.media, safetyBackupId: safetyId, requestedBy: by.name });
        const spec: DataJobSpec = { action: "restore", app: backup.app, environment: target.name, targetEnvironmentId: target.id, database: backup.database, media: backup.media, backupId, safetyBackupId: safetyId };
        const jobId = await this.enqueue(trx, target, spec);
        await data.setContentCopyJob(trx, id, jobId);
        await data.setBackupJob(trx, safetyId, jobId);
        await recordActivity(trx, { actor: by.name, app: backup.app, environment: target.name, action: "backup.restore_requested", details: { backup: backupId, restore: id, safetyBackup: safetyId } });
      })
      .catch(conflictOnActive(backup.app, target.name));
    this.opts.onJobQueued();
    return this.getContentCopy(by, id);
  }

  async getContentCopy(by: Principal, id: string): Promise<ContentCopyView> {
    const c = await data.findContentCopy(this.db, id);
    if (!c) throw new NotFoundError(`content copy '${id}' does not exist`);
    requireApp(by, c.app);
    return toCopyView(c);
  }

  /** The agent's DataSpec with credentials, built when the agent asks for it. */
  async dataSpec(spec: DataJobSpec): Promise<DataSpec> {
    const target = await apps.findEnvironmentById(this.db, spec.targetEnvironmentId);
    if (!target) throw new NotFoundError(`environment of the job no longer exists`);
    const dbUrl = (env: apps.EnvironmentRow) => {
      const names = recordedNames(env);
      return env.db_password_encrypted && names ? databaseUrl(this.opts.adminUrl, names, this.box.decrypt(env.db_password_encrypted)) : "";
    };
    // The platform's keys: they reach every environment's media and the backups (the agent copies between them).
    const s3 = (place: S3Place, bucket: string, prefix: string) => ({
      endpoint: place.endpoint,
      region: place.region,
      accessKeyId: place.accessKeyId,
      secretAccessKey: place.secretAccessKey,
      bucket,
      prefix,
      forcePathStyle: true,
    });
    const mediaOf = (env: apps.EnvironmentRow) => s3(this.store.cfg.media, env.media_bucket ?? this.store.cfg.media.bucket, env.media_prefix);
    const out: DataSpec = {
      action: spec.action,
      app: spec.app,
      environment: spec.environment,
      database: spec.database,
      media: spec.media,
      sourceDatabaseUrl: "",
      targetDatabaseUrl: dbUrl(target),
      targetMedia: mediaOf(target),
    };
    if (spec.action === "backup") {
      out.sourceDatabaseUrl = out.targetDatabaseUrl;
      out.sourceMedia = out.targetMedia;
    }
    if (spec.sourceEnvironmentId && spec.action === "copy") {
      const source = await apps.findEnvironmentById(this.db, spec.sourceEnvironmentId);
      if (!source) throw new NotFoundError("the source environment no longer exists");
      out.sourceDatabaseUrl = dbUrl(source);
      out.sourceMedia = mediaOf(source);
    }
    for (const [field, id] of [["backup", spec.backupId], ["safetyBackup", spec.safetyBackupId]] as const) {
      if (!id) continue;
      const b = await data.findBackup(this.db, id);
      if (b) out[field] = { backupId: id, location: s3(this.store.cfg.backups, this.store.cfg.backups.bucket, b.prefix), databaseSha256: b.database_sha256 ?? "" };
    }
    return out;
  }

  /**
   * Drops a removed environment's database and role, its media and its backups: only what
   * is recorded as its own (`env` is its row as it was before the removal). A database it
   * never provisioned is not dropped, whatever its names would derive to.
   */
  async removeEnvironmentData(app: string, env: apps.EnvironmentRow): Promise<void> {
    const warn = (what: string) => (err: unknown) => this.opts.log.warn({ app, env: env.name, err: (err as Error).message }, `could not ${what}`);
    const names = await this.namesToDrop(app, env).catch((err: unknown) => (warn("find the environment's database")(err), undefined));
    if (names) await this.provisioner.drop(names).catch(warn("drop the environment's database"));
    await this.store.deletePrefix("media", env.media_bucket ?? this.store.cfg.media.bucket, env.media_prefix).catch(warn("delete media"));
    // Its own bucket and storage identity go with it (what is left in the bucket too).
    if (env.media_bucket && this.storage.isolates) await this.storage.remove({ environmentId: env.id, bucket: env.media_bucket }).catch(warn("remove the environment's storage identity and bucket"));
    for (const b of await data.listBackups(this.db, env.id)) {
      await this.store.deletePrefix("backups", this.store.cfg.backups.bucket, b.prefix).catch(() => undefined);
    }
    await data.deleteBackupsOf(this.db, env.id);
  }

  /**
   * The recorded names; for an environment provisioned before names were recorded, the
   * derived ones, unless another environment recorded them or derives them too (then the
   * database is someone else's as well, and stays).
   */
  private async namesToDrop(app: string, env: apps.EnvironmentRow): Promise<EnvironmentDatabase | undefined> {
    const recorded = recordedNames(env);
    if (recorded) return recorded;
    if (!env.db_password_encrypted) return undefined;
    const legacy = this.provisioner.legacyNames(app, env.name);
    const owner = await apps.findEnvironmentByDatabase(this.db, legacy);
    const sharer = (await apps.listUnrecordedDatabases(this.db)).find((e) => e.id !== env.id && this.provisioner.legacyNames(e.app, e.environment).database === legacy.database);
    const other = owner ?? sharer;
    if (other) {
      this.opts.log.warn({ app, env: env.name, database: legacy.database, usedBy: `${other.app}/${other.environment}` }, "not dropping a database another environment uses");
      return undefined;
    }
    return legacy;
  }

  /**
   * Scheduled backups: an environment whose schedule is on gets one a day;
   * afterwards its scheduled backups beyond the retention policy are pruned.
   */
  async runSchedule(now = new Date(), system: Principal = { tokenId: "scheduler", name: "scheduler", role: "admin", apps: [] }): Promise<{ started: number; pruned: number }> {
    let started = 0;
    let pruned = 0;
    const envs = await data.backupSchedules(this.db);
    for (const e of envs) {
      const schedule = (e.backup_schedule as BackupSchedule | null) ?? defaultBackupSchedule(e.name);
      if (!schedule.enabled) continue;
      // Retention is about scheduled backups only: manual, safety and uploaded ones stay until the environment goes.
      const scheduled = (await data.listBackups(this.db, e.id)).filter((b) => b.kind === "scheduled");
      const last = scheduled[0];
      if (!last || now.getTime() - last.created_at.getTime() >= 24 * 3600_000) {
        await this.createBackup(system, e.app, e.name, { database: true, media: true }, "scheduled").then(
          () => started++,
          (err: unknown) =>
            err instanceof ConflictError
              ? this.opts.log.info({ app: e.app, env: e.name, reason: err.message }, "scheduled backup skipped: another operation is running; tried again at the next run")
              : this.opts.log.warn({ app: e.app, env: e.name, err: (err as Error).message }, "scheduled backup not started"),
        );
      }
      const done = scheduled.filter((b) => b.state === "succeeded");
      const keep = backupsToKeep(done.map((b) => ({ id: b.id, createdAt: b.created_at })), schedule.retention);
      for (const b of done.filter((x) => !keep.has(x.id))) {
        await this.store.deletePrefix("backups", this.store.cfg.backups.bucket, b.prefix);
        await data.deleteBackup(this.db, b.id);
        pruned++;
      }
    }
    return { started, pruned };
  }

  async setSchedule(by: Principal, appName: string, envName: string, schedule: BackupSchedule): Promise<BackupSchedule> {
    requireApp(by, appName);
    const { daily, weekly, monthly } = schedule.retention;
    if (daily < 1 || weekly < 1 || monthly < 1) requireAdmin(by, "retention below 1 daily, 1 weekly, 1 monthly deletes scheduled backups at the next run: only an admin token may set it");
    const app = await apps.getAppByName(this.db, appName);
    const env = await apps.getEnvironment(this.db, app, envName);
    await apps.setBackupSchedule(this.db, env.id, schedule);
    await recordActivity(this.db, { actor: by.name, app: appName, environment: envName, action: "backup.schedule_changed", details: { ...schedule } });
    return schedule;
  }

  async getSchedule(by: Principal, appName: string, envName: string): Promise<BackupSchedule> {
    requireApp(by, appName);
    const app = await apps.getAppByName(this.db, appName);
    const env = await apps.getEnvironment(this.db, app, envName);
    return (env.backup_schedule as BackupSchedule | null) ?? defaultBackupSchedule(env.name);
  }

  /** Data jobs run on the target environment's host, or on any online host when it was never placed. */
  private async enqueue(trx: Db, env: apps.EnvironmentRow, spec: DataJobSpec): Promise<string> {
    const hostId = env.host_id ?? (await this.placement.choose(trx)) ?? null;
    const id = randomUUID();
    await this.lifecycle.createJob(trx, { id, kind: "data", deploymentId: null, hostId, spec, environmentId: env.id });
    return id;
  }
}

/** The database and role recorded on the environment, if any. */
function recordedNames(env: Pick<apps.EnvironmentRow, "database_name" | "database_role">): EnvironmentDatabase | undefined {
  return env.database_name && env.database_role ? { database: env.database_name, role: env.database_role } : undefined;
}

/**
 * The one rule of issue 11: an environment runs one deployment or data operation at a time,
 * and is not removed under one. Locks the environment's row for the rest of `trx` (so two
 * requests racing cannot both pass), then throws a 409 naming what is running. `except`
 * lets a deployment queue behind a deployment. Returns the operation it let through, if any.
 */
export async function refuseWhileActive(trx: Db, environmentId: string, label: string, except?: ActiveOperation["kind"], opts: { locked?: boolean } = {}): Promise<ActiveOperation | undefined> {
  // `locked`: the caller holds the row's lock already (apps.lockEnvironmentRow in this transaction).
  if (!opts.locked && !(await data.lockEnvironment(trx, environmentId))) throw new NotFoundError(`environment ${label} no longer exists`);
  const op = await data.activeOperation(trx, environmentId);
  if (!op || op.kind === except) return op;
  throw new ConflictError(`${op.kind === "copy" ? "content copy" : op.kind} ${op.id} of ${label} is ${op.state}: wait for it to finish, one deployment or data operation per environment at a time`, {
    details: { operation: op.kind, id: op.id, state: op.state },
  });
}

/**
 * Before removing an environment: nothing may be changing it (refuseWhileActive), and nothing
 * may be reading it either, a content copy from it or a restore of one of its backups.
 */
export async function refuseRemovalWhileBusy(trx: Db, environmentId: string, label: string): Promise<void> {
  await refuseWhileActive(trx, environmentId, label);
  const reader = await data.activeReader(trx, environmentId);
  if (reader) {
    throw new ConflictError(`${reader.kind === "copy" ? "content copy" : reader.kind} ${reader.id} reads ${label}'s data and is ${reader.state}: wait for it to finish before removing it`, {
      details: { operation: reader.kind, id: reader.id, state: reader.state },
    });
  }
}

function conflictOnActive(app: string, env: string) {
  return (err: unknown) => {
    if (err instanceof UniqueViolationError && err.constraint === "content_one_active") throw new ConflictError(`a content copy or restore into ${app}/${env} is already running`);
    throw err;
  };
}

export function toBackupView(b: data.BackupRow): BackupView {
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  const db = n(b.database_bytes);
  const media = n(b.media_bytes);
  return {
    id: b.id,
    app: b.app,
    environment: b.environment,
    kind: b.kind,
    state: b.state,
    database: b.database,
    media: b.media,
    databaseBytes: db,
    databaseSha256: b.database_sha256,
    mediaBytes: media,
    mediaObjects: b.media_objects,
    sizeBytes: db === null && media === null ? null : (db ?? 0) + (media ?? 0),
    error: b.error,
    createdAt: b.created_at.toISOString(),
    finishedAt: b.finished_at ? b.finished_at.toISOString() : null,
  };
}

export function toCopyView(c: data.ContentCopyRow): ContentCopyView {
  return {
    id: c.id,
    app: c.app,
    kind: c.kind,
    from: c.source,
    to: c.target,
    state: c.state,
    database: c.database,
    media: c.media,
    progress: { phase: c.phase, bytes: Number(c.bytes), objects: Number(c.objects) },
    safetyBackupId: c.safety_backup_id,
    error: c.error,
    createdAt: c.created_at.toISOString(),
    finishedAt: c.finished_at ? c.finished_at.toISOString() : null,
  };
}
