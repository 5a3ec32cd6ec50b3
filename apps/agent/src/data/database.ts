import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { S3Location } from "@slipway/proto";
import { abortError, makeS3Client, normalizePrefix } from "./s3.js";
import { uploadStream } from "./s3-upload.js";
import { PgChild, pgConnection, RESTORE_FLAGS, rootFailure } from "./pg-tools.js";

export interface DbOptions {
  /** cumulative bytes of dump data moved so far */
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
}

export interface DumpResult {
  bytes: number;
  /** sha256 (hex) of the archive exactly as pg_dump wrote it */
  sha256: string;
}

/** S3 multipart: 8 MiB parts, 3 in flight. Memory stays (queue + 1) × part size whatever the database size. */
export const PART_SIZE = 8 * 1024 * 1024;
export const QUEUE_SIZE = 3;

function counter(onChunk: (chunk: Buffer) => void, flush?: () => Promise<void>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onChunk(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      if (!flush) return cb();
      flush().then(() => cb(), cb);
    },
  });
}

function whenAborted(signal: AbortSignal | undefined, stop: () => void): () => void {
  if (!signal) return () => undefined;
  if (signal.aborted) stop();
  signal.addEventListener("abort", stop, { once: true });
  return () => signal.removeEventListener("abort", stop);
}

/**
 * Downloads `<src.prefix><key>` into `file` (mode 0600: it holds the data) and answers its
 * size and sha256. A restore reads the archive from there, so what it restores is exactly
 * what was checked.
 */
export async function downloadArchive(src: S3Location, key: string, file: string, opts: DbOptions = {}): Promise<DumpResult> {
  if (opts.signal?.aborted) throw abortError();
  const client = makeS3Client(src);
  try {
    const got = await client.send(new GetObjectCommand({ Bucket: src.bucket, Key: normalizePrefix(src.prefix) + key }), { abortSignal: opts.signal });
    const hash = createHash("sha256");
    let bytes = 0;
    const count = counter((chunk) => {
      bytes += chunk.length;
      hash.update(chunk);
      opts.onProgress?.(bytes);
    });
    await pipeline(got.Body as Readable, count, createWriteStream(file, { mode: 0o600 }), { signal: opts.signal });
    return { bytes, sha256: hash.digest("hex") };
  } catch (err) {
    if (opts.signal?.aborted) throw abortError();
    throw err;
  } finally {
    client.destroy();
  }
}

/**
 * `pg_dump -Fc` streamed straight into `<dst.prefix><key>` (multipart upload,
 * no temporary file). The stream only ends once pg_dump has exited 0, so a
 * failing dump errors the upload instead of completing it: the multipart
 * upload is aborted and no object (half or whole) is left.
 */
export async function dumpToS3(databaseUrl: string, dst: S3Location, key: string, opts: DbOptions = {}): Promise<DumpResult> {
  if (opts.signal?.aborted) throw abortError();
  const conn = pgConnection(databaseUrl);
  const dump = new PgChild("pg_dump", ["--format=custom", "--no-owner", ...conn.args], conn, { stdin: "ignore", stdout: "pipe" });
  const hash = createHash("sha256");
  let bytes = 0;
  const body = counter(
    (chunk) => {
      bytes += chunk.length;
      hash.update(chunk);
      opts.onProgress?.(bytes);
    },
    () => dump.wait(),
  );
  const client = makeS3Client(dst);
  const unlisten = whenAborted(opts.signal, () => {
    dump.kill();
    body.destroy(abortError());
  });
  const piping = pipeline(dump.proc.stdout!, body).catch(() => undefined);
  try {
    await uploadStream(client, dst.bucket, normalizePrefix(dst.prefix) + key, body, {
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      contentType: "application/octet-stream",
      signal: opts.signal,
    });
    await dump.wait();
    return { bytes, sha256: hash.digest("hex") };
  } catch (err) {
    dump.kill();
    body.destroy();
    await dump.exited;
    if (opts.signal?.aborted) throw abortError();
    throw dump.failed ?? err;
  } finally {
    unlisten();
    await piping;
    client.destroy();
  }
}

/**
 * A downloaded archive (see downloadArchive) streamed into `pg_restore` on stdin. See
 * RESTORE_FLAGS: the restore is one transaction, so a failure (a bad archive) leaves the
 * target database as it was.
 */
export async function restoreFromFile(file: string, targetUrl: string, opts: DbOptions = {}): Promise<{ bytes: number }> {
  if (opts.signal?.aborted) throw abortError();
  const conn = pgConnection(targetUrl);
  const restore = new PgChild("pg_restore", [...RESTORE_FLAGS, ...conn.args], conn, { stdin: "pipe", stdout: "ignore" });
  let bytes = 0;
  const source = createReadStream(file);
  const count = counter((chunk) => {
    bytes += chunk.length;
    opts.onProgress?.(bytes);
  });
  const unlisten = whenAborted(opts.signal, () => {
    restore.kill();
    source.destroy(abortError());
  });
  try {
    const piped = await pipeline(source, count, restore.proc.stdin!).then(
      () => undefined,
      (err: unknown) => err,
    );
    if (piped) restore.kill();
    await restore.exited;
    if (opts.signal?.aborted) throw abortError();
    if (piped && !isPipeClosed(piped)) throw piped;
    if (restore.failed) throw restore.failed;
    if (piped) throw piped;
    return { bytes };
  } finally {
    unlisten();
  }
}

function isPipeClosed(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === "EPIPE" || code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ERR_STREAM_DESTROYED";
}

export interface CopyDatabaseOptions extends DbOptions {
  /**
   * pg_dump compression level for the pipe. 0 by default: the archive only
   * crosses a local pipe, so compressing it would spend CPU on both ends for
   * nothing (compression is for archives that are stored). "default" leaves
   * pg_dump's own default (as a plain `pg_dump -Fc` does).
   */
  compress?: number | "default";
}

/**
 * `pg_dump -Fc | pg_restore` without an intermediate file; the agent sits in
 * the pipe only to count bytes. Failure reports the tool that caused it
 * (the other one's error is just the broken pipe or truncated archive).
 */
export async function copyDatabase(sourceUrl: string, targetUrl: string, opts: CopyDatabaseOptions = {}): Promise<{ bytes: number }> {
  if (opts.signal?.aborted) throw abortError();
  const from = pgConnection(sourceUrl);
  const to = pgConnection(targetUrl);
  const compress = opts.compress === "default" ? [] : [`--compress=${opts.compress ?? 0}`];
  const dump = new PgChild("pg_dump", ["--format=custom", "--no-owner", ...compress, ...from.args], from, {
    stdin: "ignore",
    stdout: "pipe",
  });
  const restore = new PgChild("pg_restore", [...RESTORE_FLAGS, ...to.args], to, { stdin: "pipe", stdout: "ignore" });
  let bytes = 0;
  const count = counter((chunk) => {
    bytes += chunk.length;
    opts.onProgress?.(bytes);
  });
  const stop = () => {
    dump.kill();
    restore.kill();
  };
  const unlisten = whenAborted(opts.signal, stop);
  try {
    const piped = await pipeline(dump.proc.stdout!, count, restore.proc.stdin!).then(
      () => undefined,
      (err: unknown) => err,
    );
    // With the pipe broken, one side may be waiting forever for the other.
    if (piped) stop();
    await Promise.all([dump.exited, restore.exited]);
    if (opts.signal?.aborted) throw abortError();
    const failed = rootFailure(dump, restore);
    if (failed) throw failed;
    if (piped) throw piped;
    return { bytes };
  } finally {
    unlisten();
  }
}
