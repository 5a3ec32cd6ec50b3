// Media in and out of the backup store through the API (issue 13, the local loop), the way
// backup-transfer.ts moves database archives: a finished backup's media streamed to a client as
// one tar, and a client's tar streamed in as the media of a backup of kind "upload" that the
// ordinary restore (with its safety backup) puts in place of the environment's media.
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import tar from "tar-stream";
import {
  BACKUP_MANIFEST_KEY,
  BACKUP_MEDIA_DIR,
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  PayloadTooLargeError,
  backupLocation,
  mediaEntryKey,
  mediaEntryTypeProblem,
  type BackupManifest,
} from "@slipway/core";
import * as apps from "../repositories/apps.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { requireApp, type Principal } from "../services/auth.service.js";
import { formatLimit, requireDataReader, type TransferDeps } from "./backup-transfer.js";
import * as data from "./data.repository.js";
import { UPLOAD_PART_SIZE, type StoredObject } from "./object-store.js";

/** Files up to this size are read whole and stored with one PutObject, a few at once; larger ones stream in as multipart uploads. */
const SMALL_FILE_BYTES = UPLOAD_PART_SIZE;
/** Small files being stored at once: at most this many × SMALL_FILE_BYTES of memory, beside one multipart upload's buffers. */
const SMALL_FILES_IN_FLIGHT = 4;

const MEDIA_HOLDS = "an environment's media hold everything its users uploaded";

/** A backup's media on their way to a client, as a tar stream. */
export interface MediaArchive {
  body: Readable;
  /** As recorded when the backup was written: what the tar holds, entries and bytes of content. */
  objects: number;
  bytes: number;
  /** `<app>-<env>-<backup id>-media.tar` */
  filename: string;
}

/**
 * Opens a finished backup's media as a tar stream whose entries are named by the object keys
 * relative to the environment's media root (a key ending in `/`, a folder marker, becomes a
 * folder entry). Objects are listed a page at a time and each is streamed from the backup store
 * into the tar as the client reads it, so memory stays small whatever the media's size. A
 * failure part way destroys the stream: the client sees a truncated tar, never a complete-looking
 * one. Recorded in the activity feed. 404 unknown backup, 403 another app's or a viewer's token,
 * 409 not finished, database only, or its media gone from the store.
 */
export async function openMediaArchive(d: TransferDeps, by: Principal, backupId: string): Promise<MediaArchive> {
  const b = await data.findBackup(d.db, backupId);
  if (!b) throw new NotFoundError(`backup '${backupId}' does not exist`);
  requireDataReader(by, b.app, MEDIA_HOLDS);
  if (b.state !== "succeeded") throw new ConflictError(`backup ${b.id} is ${b.state}: only a finished backup can be downloaded`);
  if (!b.media || b.media_objects === null) throw new ConflictError(`backup ${b.id} of ${b.app}/${b.environment} has no media (database only)`);
  const objects = Number(b.media_objects);
  const bytes = Number(b.media_bytes ?? 0);
  const root = b.prefix + BACKUP_MEDIA_DIR;
  const listing = d.store.listPrefix("backups", d.store.cfg.backups.bucket, root);
  const first = await listing.next();
  try {
    if (first.done && objects > 0) throw new ConflictError(`the media of backup ${b.id} are no longer in the backup store`);
    await recordActivity(d.db, { actor: by.name, app: b.app, environment: b.environment, action: "backup.downloaded", details: { backup: b.id, kind: b.kind, part: "media", objects, bytes } });
  } catch (err) {
    await listing.return(undefined);
    throw err;
  }
  const pack = tar.pack();
  void packObjects(d, pack, root, first, listing).catch((err: unknown) => {
    d.log.warn({ backup: b.id, err: (err as Error).message }, "media download stopped part way");
    pack.destroy(err as Error);
  });
  return { body: Readable.from(pack), objects, bytes, filename: `${b.app}-${b.environment}-${b.id}-media.tar` };
}

/** Streams the listed objects into `pack` one after the other, each as the client reads it; throws when the store fails or the client went away. */
async function packObjects(d: TransferDeps, pack: tar.Pack, root: string, first: IteratorResult<StoredObject>, listing: AsyncGenerator<StoredObject>): Promise<void> {
  try {
    for (let next = first; !next.done; next = await listing.next()) {
      const o = next.value;
      const name = o.key.slice(root.length);
      if (name.endsWith("/")) {
        await entryDone(pack, { name, type: "directory", mode: 0o755, mtime: o.lastModified });
        continue;
      }
      const got = await d.store.openObject("backups", d.store.cfg.backups.bucket, o.key);
      if (!got) throw new Error(`the object ${JSON.stringify(name)} left the backup store while it was being read`);
      const sink = pack.entry({ name, type: "file", size: got.bytes, mode: 0o644, mtime: o.lastModified });
      const done = finished(sink);
      // Awaited below, or not at all when the copy fails first.
      done.catch(() => undefined);
      // Leaving the loop by an error destroys the object's body.
      for await (const chunk of got.body as AsyncIterable<Buffer>) {
        if (!sink.write(chunk)) await drained(sink);
      }
      sink.end(undefined);
      await done;
    }
    pack.finalize();
  } finally {
    await listing.return(undefined);
  }
}

/** An entry without a body (a folder) written into `pack`. */
function entryDone(pack: tar.Pack, header: Parameters<tar.Pack["entry"]>[0]): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())));
}

/** Resolves when `sink` has taken all it was given, rejects when it (or its pack: the client went away) is destroyed first. */
function finished(sink: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    sink.once("finish", resolve);
    sink.once("error", reject);
    sink.once("close", () => reject(new Error("the tar stream was closed (the client went away)")));
  });
}

/** Waits until `sink` wants more, or is closed (then finished() says why). */
function drained(sink: NodeJS.EventEmitter & { destroyed?: boolean }): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      sink.off("drain", done);
      sink.off("close", closed);
      resolve();
    };
    const closed = () => {
      sink.off("drain", done);
      reject(new Error("the tar stream was closed (the client went away)"));
    };
    sink.once("drain", done);
    sink.once("close", closed);
  });
}

/** One entry of a tar being read: its header, and a stream of its content that must be read (or resumed) before the next. */
type Entry = tar.Extract extends AsyncIterable<infer T> ? T : never;

/** The tar parser's complaint: the body is no tar archive a restore can take. */
class NotTarError extends Error {}

/**
 * Streams a client's tar into the backup store as the media of a new finished backup of kind
 * "upload" of the environment (media only), which POST /backups/{id}/restore puts in place of
 * the environment's media (after its safety backup). Entries are stored as they arrive, each
 * file as an object named by its entry name under the backup's `media/`; folders are taken and
 * not stored (S3 has none). 400 for a body that is not a tar, an entry that is not a regular file
 * or folder, or a name that is absolute, has a `..` part or is otherwise no plain relative path;
 * 413 for more than `uploadMaxBytes` of body (declared or sent). Whatever fails, nothing is
 * recorded and every object written is removed.
 */
export async function uploadMediaArchive(d: TransferDeps, by: Principal, appName: string, envName: string, body: AsyncIterable<Buffer> | undefined, declaredBytes?: number): Promise<data.BackupRow> {
  requireApp(by, appName);
  const app = await apps.getAppByName(d.db, appName);
  const env = await apps.getEnvironment(d.db, app, envName);
  const tooLarge = () => new PayloadTooLargeError(`the tar is larger than the ${formatLimit(d.uploadMaxBytes)} an upload may have (SLIPWAY_BACKUP_UPLOAD_MAX_MB); nothing was stored`);
  if (declaredBytes !== undefined && declaredBytes > d.uploadMaxBytes) throw tooLarge();
  const id = randomUUID();
  const prefix = backupLocation(env.id, id);
  const bucket = d.store.cfg.backups.bucket;
  try {
    const received = await storeEntries(d, body, prefix + BACKUP_MEDIA_DIR, tooLarge);
    // Counted as stored (an entry named twice is one object, the later one).
    const media = { objects: 0, bytes: 0 };
    for await (const o of d.store.listPrefix("backups", bucket, prefix + BACKUP_MEDIA_DIR)) {
      media.objects++;
      media.bytes += o.bytes;
    }
    const at = new Date();
    const manifest: BackupManifest = { backupId: id, app: app.name, environment: env.name, createdAt: at.toISOString(), database: null, media };
    await d.store.putObject("backups", bucket, prefix + BACKUP_MANIFEST_KEY, JSON.stringify(manifest, null, 2), "application/json");
    await d.db.transaction().execute(async (trx) => {
      // Removed while the tar streamed in: its backups went with it, so must this one.
      if (!(await data.lockEnvironment(trx, env.id))) throw new NotFoundError(`environment ${app.name}/${env.name} no longer exists`);
      await data.insertFinishedBackup(trx, { id, app: app.name, environment: env.name, environmentId: env.id, kind: "upload", prefix, requestedBy: by.name, at, media });
      await recordActivity(trx, { actor: by.name, app: app.name, environment: env.name, action: "backup.uploaded", details: { backup: id, part: "media", ...media } });
    });
    d.log.info({ app: app.name, env: env.name, backup: id, ...media, received }, "media tar uploaded");
  } catch (err) {
    await d.store.deletePrefix("backups", bucket, prefix).catch((e: unknown) => d.log.warn({ backup: id, err: (e as Error).message }, "could not remove the objects of a failed upload"));
    throw err;
  }
  return (await data.findBackup(d.db, id))!;
}

/**
 * Feeds the body through tar-stream's parser and stores each file under `root`; answers the
 * bytes of body read. Everything this started has settled when it returns or throws (no object
 * is still being written), so the caller's clean-up removes all of it. Whatever fails first (the
 * parser, an entry, the store, the body, the limit) is what is thrown.
 */
async function storeEntries(d: TransferDeps, body: AsyncIterable<Buffer> | undefined, root: string, tooLarge: () => Error): Promise<number> {
  const extract = tar.extract();
  const entries = extract[Symbol.asyncIterator]();
  let failure: { err: unknown } | undefined;
  const fail = (err: unknown) => {
    failure ??= { err };
    extract.destroy(err as Error);
  };
  // The parser's own errors; ours reach it through fail(), which has recorded them first.
  extract.on("error", (err: Error) => void (failure ??= { err: new NotTarError(err.message) }));
  let received = 0;
  let firstBytes = Buffer.alloc(0);
  // Read by hand rather than with for-await: leaving the loop early would destroy the request
  // stream, and with it the connection the refusal is answered on.
  const reader = body?.[Symbol.asyncIterator]();
  const feed = async () => {
    while (reader && !failure) {
      const next = await reader.next();
      if (failure) return;
      if (next.done) break;
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      received += chunk.length;
      if (received > d.uploadMaxBytes) throw tooLarge();
      if (firstBytes.length < 2) firstBytes = Buffer.concat([firstBytes, chunk.subarray(0, 2 - firstBytes.length)]);
      if (!extract.write(chunk)) await drained(extract);
    }
    if (!failure) extract.end(undefined);
  };
  // Not awaited on failure: a client still sending is left to the route, which answers at once.
  void feed().catch(fail);

  const inflight = new Map<string, Promise<void>>();
  try {
    for (;;) {
      const next = await entries.next();
      if (next.done) break;
      await storeEntry(d, next.value, root, inflight, fail);
    }
    await Promise.all(inflight.values());
    if (failure) throw failure.err;
    if (received === 0) throw new InvalidRequestError("the body is empty: send a tar archive (an empty folder's is 1,024 zero bytes); nothing was stored", { details: { body: "empty" } });
    return received;
  } catch (err) {
    fail(err);
    await Promise.allSettled(inflight.values());
    const first = failure!.err;
    if (first instanceof NotTarError) {
      const gzip = firstBytes[0] === 0x1f && firstBytes[1] === 0x8b;
      const problem = gzip ? "it is gzip-compressed: send the tar itself" : `it is not a tar archive (${first.message.replace(/\.$/, "")})`;
      throw new InvalidRequestError(`the body is no media archive a restore can take: ${problem}; nothing was stored`, { details: { body: problem } });
    }
    throw first;
  }
}

/**
 * Checks one entry and stores it (a file) or skips it (a folder). Small files are read whole and
 * stored in the background, at most SMALL_FILES_IN_FLIGHT at once (a failure goes to `fail`);
 * larger ones stream into a multipart upload before the next entry is read.
 */
async function storeEntry(d: TransferDeps, entry: Entry, root: string, inflight: Map<string, Promise<void>>, fail: (err: unknown) => void): Promise<void> {
  const { name, type, size = 0 } = entry.header;
  const refuse = (problem: string) => new InvalidRequestError(`${problem}; nothing was stored`, { details: { entry: name } });
  const typeProblem = mediaEntryTypeProblem(name, type);
  if (typeProblem) throw refuse(typeProblem);
  const k = mediaEntryKey(name, type as "file" | "directory");
  if ("problem" in k) throw refuse(k.problem);
  if (type === "directory") {
    entry.resume();
    return;
  }
  const key = root + k.key;
  const bucket = d.store.cfg.backups.bucket;
  // The same name again: the later entry wins, as in tar, so the earlier one must land first.
  await inflight.get(key);
  if (size > SMALL_FILE_BYTES) {
    await d.store.upload("backups", bucket, key, entry as AsyncIterable<Buffer>, "application/octet-stream");
    return;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk as Buffer);
  while (inflight.size >= SMALL_FILES_IN_FLIGHT) await Promise.race(inflight.values());
  const put: Promise<void> = d.store
    .putObject("backups", bucket, key, Buffer.concat(chunks), "application/octet-stream")
    .catch(fail)
    .finally(() => {
      if (inflight.get(key) === put) inflight.delete(key);
    });
  inflight.set(key, put);
}
