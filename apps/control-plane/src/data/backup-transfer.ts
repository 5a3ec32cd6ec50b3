// Database archives in and out of the backup store through the API (issue 13, the local loop):
// a finished backup's archive streamed to a client, and a client's archive streamed in as a
// backup of kind "upload" that the ordinary restore (with its safety backup) can restore.
import { createHash, randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import {
  BACKUP_DATABASE_KEY,
  BACKUP_MANIFEST_KEY,
  CUSTOM_ARCHIVE_HEADER_BYTES,
  ConflictError,
  ForbiddenError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  backupLocation,
  customArchiveProblem,
  type BackupManifest,
  type Logger,
} from "@slipway/core";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { requireApp, type Principal } from "../services/auth.service.js";
import * as data from "./data.repository.js";
import type { ObjectStore } from "./object-store.js";

/** Default limit of an uploaded archive (SLIPWAY_BACKUP_UPLOAD_MAX_MB). */
export const DEFAULT_UPLOAD_MAX_BYTES = 10 * 1024 ** 3;

export interface TransferDeps {
  db: Db;
  store: ObjectStore;
  log: Logger;
  /** Bytes an uploaded archive may have; more is refused (413) and nothing is stored. */
  uploadMaxBytes: number;
}

/** A backup's database archive on its way to a client. */
export interface DatabaseArchive {
  body: Readable;
  bytes: number;
  contentType: string;
  /** As recorded when the archive was written (null for backups made before sha256s were recorded). */
  sha256: string | null;
  /** `<app>-<env>-<backup id>.dump` */
  filename: string;
}

/**
 * A database dump holds every row of the environment, secrets the app keeps included, and its
 * media everything its users uploaded: admins and the deployers of the app get them (they can
 * copy them elsewhere and open a shell there anyway), viewers do not, whatever else they may
 * read. `holds` says what, for the refusal.
 */
export function requireDataReader(by: Principal, app: string, holds: string): void {
  requireApp(by, app);
  if (by.role === "viewer") throw new ForbiddenError(`the token '${by.name}' is a viewer's: ${holds}; it needs an admin token or a deployer token of '${app}'`);
}

/**
 * Opens a finished backup's database archive for reading, as stored; recorded in the activity
 * feed (who read which environment's data). 404 unknown backup, 403 another app's, 409 not
 * finished, media only, or its archive gone from the store.
 */
export async function openDatabaseArchive(d: TransferDeps, by: Principal, backupId: string): Promise<DatabaseArchive> {
  const b = await data.findBackup(d.db, backupId);
  if (!b) throw new NotFoundError(`backup '${backupId}' does not exist`);
  requireDataReader(by, b.app, "a database dump holds every row of the environment");
  if (b.state !== "succeeded") throw new ConflictError(`backup ${b.id} is ${b.state}: only a finished backup can be downloaded`);
  if (!b.database || b.database_bytes === null) throw new ConflictError(`backup ${b.id} of ${b.app}/${b.environment} has no database (media only)`);
  const object = await d.store.openObject("backups", d.store.cfg.backups.bucket, b.prefix + BACKUP_DATABASE_KEY);
  if (!object) throw new ConflictError(`the database archive of backup ${b.id} is no longer in the backup store`);
  try {
    await recordActivity(d.db, { actor: by.name, app: b.app, environment: b.environment, action: "backup.downloaded", details: { backup: b.id, kind: b.kind, bytes: object.bytes } });
  } catch (err) {
    object.body.destroy();
    throw err;
  }
  return { ...object, sha256: b.database_sha256, filename: `${b.app}-${b.environment}-${b.id}.dump` };
}

/**
 * Streams a client's database archive into the backup store and records it as a finished
 * backup of kind "upload" of the environment (database only), which POST /backups/{id}/restore
 * restores like any other. The archive's first bytes must be a pg_dump custom-format header
 * (else 400); more than `uploadMaxBytes` (declared or sent) is 413. Whatever fails, nothing is
 * stored: a multipart upload in progress is aborted, written objects are deleted.
 */
export async function uploadDatabaseArchive(d: TransferDeps, by: Principal, appName: string, envName: string, body: AsyncIterable<Buffer> | undefined, declaredBytes?: number): Promise<data.BackupRow> {
  requireApp(by, appName);
  const app = await apps.getAppByName(d.db, appName);
  const env = await apps.getEnvironment(d.db, app, envName);
  const tooLarge = () => new PayloadTooLargeError(`the archive is larger than the ${formatLimit(d.uploadMaxBytes)} an upload may have (SLIPWAY_BACKUP_UPLOAD_MAX_MB); nothing was stored`);
  if (declaredBytes !== undefined && declaredBytes > d.uploadMaxBytes) throw tooLarge();
  // Read by hand rather than with for-await: leaving the loop early would destroy the request
  // stream, and with it the connection the refusal is answered on.
  const reader = body?.[Symbol.asyncIterator]();
  const head = await readHead(reader, CUSTOM_ARCHIVE_HEADER_BYTES);
  const problem = customArchiveProblem(Buffer.concat(head));
  if (problem) throw new InvalidRequestError(`the body is not a database archive a restore can read: ${problem}; nothing was stored`, { details: { body: problem } });
  const id = randomUUID();
  const prefix = backupLocation(env.id, id);
  const hash = createHash("sha256");
  let bytes = 0;
  const count = (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > d.uploadMaxBytes) throw tooLarge();
    hash.update(chunk);
    return chunk;
  };
  async function* archive(): AsyncGenerator<Buffer> {
    for (const chunk of head) yield count(chunk);
    for (;;) {
      const next = await reader!.next();
      if (next.done) return;
      yield count(next.value);
    }
  }
  const bucket = d.store.cfg.backups.bucket;
  try {
    await d.store.upload("backups", bucket, prefix + BACKUP_DATABASE_KEY, archive(), "application/octet-stream");
    const sha256 = hash.digest("hex");
    const at = new Date();
    const manifest: BackupManifest = { backupId: id, app: app.name, environment: env.name, createdAt: at.toISOString(), database: { bytes, sha256 }, media: null };
    await d.store.putObject("backups", bucket, prefix + BACKUP_MANIFEST_KEY, JSON.stringify(manifest, null, 2), "application/json");
    await d.db.transaction().execute(async (trx) => {
      // Removed while the archive streamed in: its backups went with it, so must this one.
      if (!(await data.lockEnvironment(trx, env.id))) throw new NotFoundError(`environment ${app.name}/${env.name} no longer exists`);
      await data.insertFinishedBackup(trx, { id, app: app.name, environment: env.name, environmentId: env.id, kind: "upload", prefix, requestedBy: by.name, at, database: { bytes, sha256 } });
      await recordActivity(trx, { actor: by.name, app: app.name, environment: env.name, action: "backup.uploaded", details: { backup: id, bytes, sha256 } });
    });
    d.log.info({ app: app.name, env: env.name, backup: id, bytes, sha256 }, "database archive uploaded");
  } catch (err) {
    await d.store.deletePrefix("backups", bucket, prefix).catch((e: unknown) => d.log.warn({ backup: id, err: (e as Error).message }, "could not remove the objects of a failed upload"));
    throw err;
  }
  return (await data.findBackup(d.db, id))!;
}

/** The first chunks of the body, at least `n` bytes of them unless it is shorter. */
async function readHead(reader: AsyncIterator<Buffer> | undefined, n: number): Promise<Buffer[]> {
  const head: Buffer[] = [];
  let got = 0;
  while (reader && got < n) {
    const next = await reader.next();
    if (next.done) break;
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    head.push(chunk);
    got += chunk.length;
  }
  return head;
}

export function formatLimit(bytes: number): string {
  return bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3} GiB` : bytes % 1024 ** 2 === 0 ? `${bytes / 1024 ** 2} MiB` : `${bytes} bytes`;
}
