import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import type { S3Location } from "@slipway/proto";
import { setMaxListeners } from "node:events";
import type { Readable } from "node:stream";
import { CopyObjectClient, OWNER_FULL_CONTROL } from "./s3-copy.js";

export interface S3Object {
  key: string;
  size: number;
  etag: string;
}

export interface CopyProgress {
  objects: number;
  bytes: number;
}

export interface CopyPrefixOptions {
  concurrency?: number;
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
}

export interface CopyPrefixResult {
  objects: number;
  bytes: number;
  /** target objects removed because the source does not have them */
  deleted: number;
}

/** A copy that stopped partway; says how far it got so the job log can tell the user. */
export class PartialCopyError extends Error {
  constructor(
    readonly done: number,
    /** undefined when source or target could not even be listed (the cause says which) */
    readonly total: number | undefined,
    readonly bytes: number,
    cause: unknown,
  ) {
    super(
      total === undefined ? errorText(cause) : `failed after ${done}/${total} objects: ${errorText(cause)}`,
      { cause },
    );
    this.name = "PartialCopyError";
  }
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { Code?: string }).Code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message || err.name;
  }
  return String(err);
}

/**
 * Every client of this agent talks to S3 the same way. The SDK's default
 * request/response checksums (aws-chunked framing) are stored verbatim as the
 * body by s3rver, silently corrupting objects, so checksums are sent only
 * where an operation requires one. Path-style addressing because self-hosted
 * endpoints have no wildcard DNS for virtual-hosted buckets.
 */
export function makeS3Client(loc: S3Location): S3Client {
  return new S3Client({
    ...(loc.endpoint ? { endpoint: loc.endpoint } : {}),
    region: loc.region || "us-east-1",
    credentials: { accessKeyId: loc.accessKeyId, secretAccessKey: loc.secretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: 4,
  });
}

/** A prefix names a folder: "env-a" must not also match "env-ab/…". */
export function normalizePrefix(prefix: string): string {
  return prefix === "" || prefix.endsWith("/") ? prefix : prefix + "/";
}

/** The same location with its prefix extended (e.g. a backup's `media/` folder). */
export function under(loc: S3Location, sub: string): S3Location {
  return { ...loc, prefix: normalizePrefix(loc.prefix) + sub };
}

/** All objects under `loc.prefix`, page by page (ListObjectsV2, 1,000 per page). */
export async function* listObjects(client: S3Client, loc: S3Location, signal?: AbortSignal): AsyncGenerator<S3Object> {
  const prefix = normalizePrefix(loc.prefix);
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: loc.bucket, Prefix: prefix, ContinuationToken: token }),
      { abortSignal: signal },
    );
    for (const o of page.Contents ?? []) {
      if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0, etag: o.ETag ?? "" };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

export async function listAll(client: S3Client, loc: S3Location, signal?: AbortSignal): Promise<S3Object[]> {
  const out: S3Object[] = [];
  for await (const o of listObjects(client, loc, signal)) out.push(o);
  return out;
}

/**
 * Runs `fn` over `items` with at most `concurrency` in flight. The first
 * failure stops new work from starting; work already in flight is awaited so
 * nothing keeps writing after the caller has been told it failed.
 */
export async function mapBounded<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      if (signal?.aborted) {
        failure ??= { err: signal.reason ?? abortError() };
        return;
      }
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  if (failure) throw failure.err;
}

export function abortError(): Error {
  return Object.assign(new Error("cancelled"), { name: "AbortError" });
}

function sameServer(a: S3Location, b: S3Location): boolean {
  return a.endpoint === b.endpoint && a.accessKeyId === b.accessKeyId && (a.region || "us-east-1") === (b.region || "us-east-1");
}

/**
 * Servers disagree on how x-amz-copy-source is decoded (S3 decodes it fully;
 * s3rver uses decodeURI, which leaves %2B, %26, %3F… encoded), so only keys
 * whose encoding is the same under both rules are copied server-side.
 */
function encodedCopySource(key: string): string | undefined {
  const strict = encodeURIComponent(key).replace(/%2F/g, "/");
  return strict === encodeURI(key) ? strict : undefined;
}

interface Clients {
  src: S3Client;
  dst: S3Client;
  /** only when source and target are on the same server: server-side copies */
  copier?: CopyObjectClient;
}

/** Copies one object: server-side where possible, else streamed through the agent (never buffered whole). */
async function copyObject(c: Clients, src: S3Location, srcKey: string, dst: S3Location, dstKey: string, signal?: AbortSignal): Promise<void> {
  const source = c.copier ? encodedCopySource(srcKey) : undefined;
  if (c.copier && source) {
    await c.copier.copy(src.bucket, source, dst.bucket, dstKey, signal);
    return;
  }
  const got = await c.src.send(new GetObjectCommand({ Bucket: src.bucket, Key: srcKey }), { abortSignal: signal });
  await c.dst.send(
    new PutObjectCommand({
      Bucket: dst.bucket,
      Key: dstKey,
      Body: got.Body as Readable,
      ContentLength: got.ContentLength,
      ACL: OWNER_FULL_CONTROL,
      ...(got.ContentType ? { ContentType: got.ContentType } : {}),
    }),
    { abortSignal: signal },
  );
}

/** Deletes keys in batches of 1,000 (DeleteObjects); a per-key error fails the call. */
export async function deleteKeys(client: S3Client, bucket: string, keys: readonly string[], signal?: AbortSignal): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const res = await client.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
      { abortSignal: signal },
    );
    const first = res.Errors?.[0];
    if (first) throw new Error(`could not delete ${res.Errors!.length} object(s), first ${first.Key}: ${first.Code} ${first.Message}`);
  }
}

export async function deletePrefix(loc: S3Location, signal?: AbortSignal): Promise<number> {
  const client = makeS3Client(loc);
  try {
    const keys = (await listAll(client, loc, signal)).map((o) => o.key);
    await deleteKeys(client, loc.bucket, keys, signal);
    return keys.length;
  } finally {
    client.destroy();
  }
}

function overlaps(a: S3Location, b: S3Location): boolean {
  if (a.endpoint !== b.endpoint || a.bucket !== b.bucket) return false;
  const pa = normalizePrefix(a.prefix);
  const pb = normalizePrefix(b.prefix);
  return pa.startsWith(pb) || pb.startsWith(pa);
}

/**
 * Makes `dst.prefix` hold exactly what `src.prefix` holds ("replace"): every
 * source object is copied (relative keys kept), then target objects the
 * source does not have are deleted. The source is listed completely first so
 * progress and a failure can say "n/total". Throws PartialCopyError on failure.
 * Deletion comes last so a copy that fails midway has removed nothing.
 */
export async function copyPrefix(src: S3Location, dst: S3Location, opts: CopyPrefixOptions = {}): Promise<CopyPrefixResult> {
  if (overlaps(src, dst)) {
    throw new Error(`source s3://${src.bucket}/${src.prefix} and target s3://${dst.bucket}/${dst.prefix} overlap`);
  }
  const concurrency = opts.concurrency ?? 16;
  const srcClient = makeS3Client(src);
  const same = sameServer(src, dst);
  const clients: Clients = {
    src: srcClient,
    dst: same ? srcClient : makeS3Client(dst),
    ...(same ? { copier: new CopyObjectClient(dst, concurrency) } : {}),
  };
  const srcPrefix = normalizePrefix(src.prefix);
  const dstPrefix = normalizePrefix(dst.prefix);
  // Every request in flight listens on the signal; with 16+ of them Node would warn about a leak that is not one.
  const signal = opts.signal ? AbortSignal.any([opts.signal]) : undefined;
  if (signal) setMaxListeners(0, signal);
  let objects = 0;
  let bytes = 0;
  let total: number | undefined;
  try {
    // The target is listed alongside the source, before the copies: one listing less on the critical path, and
    // objects written to the target while the copy runs are not mistaken for stale ones.
    const listing = (side: string, loc: S3Location, client: S3Client) =>
      listAll(client, loc, signal).catch((err: unknown) => {
        throw new Error(`could not list the ${side}: ${errorText(err)}`, { cause: err });
      });
    const [sources, existing] = await Promise.all([listing("source", src, clients.src), listing("target", dst, clients.dst)]);
    total = sources.length;
    const wanted = new Set(sources.map((o) => dstPrefix + o.key.slice(srcPrefix.length)));
    const stale = existing.filter((o) => !wanted.has(o.key)).map((o) => o.key);
    await mapBounded(
      sources,
      concurrency,
      async (o) => {
        await copyObject(clients, src, o.key, dst, dstPrefix + o.key.slice(srcPrefix.length), signal);
        objects++;
        bytes += o.size;
        opts.onProgress?.({ objects, bytes });
      },
      signal,
    );
    await deleteKeys(clients.dst, dst.bucket, stale, signal);
    return { objects, bytes, deleted: stale.length };
  } catch (err) {
    if (isAbort(err)) throw err;
    throw new PartialCopyError(objects, total, bytes, err);
  } finally {
    clients.src.destroy();
    if (clients.dst !== clients.src) clients.dst.destroy();
    clients.copier?.destroy();
  }
}

export function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || (err.cause instanceof Error && err.cause.name === "AbortError"));
}
