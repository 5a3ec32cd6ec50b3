import type { Readable } from "node:stream";
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, NoSuchKey, PutObjectCommand, S3Client, CreateBucketCommand, HeadBucketCommand } from "@aws-sdk/client-s3";
import { uploadStream } from "./s3-multipart.js";

/** One S3 endpoint with the platform's keys to it, and a bucket there. */
export interface S3Place {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
}

/**
 * The S3 settings of the platform. Media: where environments' media live (each in a bucket of
 * its own under an isolating provider, else under a prefix of `media.bucket`), with the
 * platform's keys, which reach every environment's media. Backups: a place no environment's
 * keys reach (another bucket of the same server under an isolating provider, or another server).
 */
export interface StorageConfig {
  media: S3Place & { endpointForContainers: string };
  backups: S3Place;
}

// Media and backup locations are named after ids (core's environmentMediaPrefix and
// backupLocation) and recorded: an environment's media bucket and prefix on the environment, a
// backup's on the backup. Only recorded locations are read or deleted.

/**
 * DEFAULT_STORAGE_DSN: `s3://<key>:<secret>@<bucket>/<prefix>?endpoint=<url>&region=<region>&path_style=true`
 * (key and secret URL-encoded; the prefix ends in "/").
 */
export function storageDsn(media: StorageConfig["media"], keys: { accessKeyId: string; secretAccessKey: string }, bucket: string, prefix: string): string {
  const q = new URLSearchParams({ endpoint: media.endpointForContainers, region: media.region, path_style: "true" });
  return `s3://${encodeURIComponent(keys.accessKeyId)}:${encodeURIComponent(keys.secretAccessKey)}@${bucket}/${prefix}?${q.toString()}`;
}

function client(p: S3Place): S3Client {
  return new S3Client({
    endpoint: p.endpoint,
    region: p.region,
    credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey },
    forcePathStyle: true,
    // The SDK's default checksums corrupt objects on some S3-compatible servers (s3rver).
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** An object being read: its body streams from the S3 server as it is consumed. */
export interface OpenObject {
  body: Readable;
  bytes: number;
  contentType: string;
}

/** One object of a listing. */
export interface StoredObject {
  key: string;
  bytes: number;
  lastModified: Date;
}

/** S3 multipart parts of streamed uploads: 8 MiB, 3 in flight (32 MiB of buffers an upload; 10,000 parts = 78 GiB at most). */
export const UPLOAD_PART_SIZE = 8 * 1024 * 1024;
export const UPLOAD_QUEUE_SIZE = 3;

/**
 * The control plane's own S3 work: buckets at start, deleting an environment's media and
 * backups, and backup archives streamed in from and out to API clients.
 */
export class ObjectStore {
  readonly clients: Record<"media" | "backups", S3Client>;
  constructor(readonly cfg: StorageConfig) {
    this.clients = { media: client(cfg.media), backups: client(cfg.backups) };
  }

  async ensureBuckets(): Promise<void> {
    for (const store of ["media", "backups"] as const) {
      const Bucket = this.cfg[store].bucket;
      try {
        await this.clients[store].send(new HeadBucketCommand({ Bucket }));
      } catch {
        await this.clients[store].send(new CreateBucketCommand({ Bucket }));
      }
    }
  }

  /** Deletes every object under a prefix of a bucket of the media or the backup store; returns how many. */
  async deletePrefix(store: "media" | "backups", bucket: string, prefix: string): Promise<number> {
    const c = this.clients[store];
    let deleted = 0;
    let token: string | undefined;
    do {
      const page = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length) {
        await c.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
        deleted += keys.length;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return deleted;
  }

  /** Every object under a prefix, page by page (1,000 a page): never the whole listing in memory. */
  async *listPrefix(store: "media" | "backups", bucket: string, prefix: string): AsyncGenerator<StoredObject> {
    let token: string | undefined;
    do {
      const page = await this.clients[store].send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key !== undefined) yield { key: o.Key, bytes: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Opens an object for reading; undefined when there is no such key. The caller consumes or destroys `body`. */
  async openObject(store: "media" | "backups", bucket: string, key: string): Promise<OpenObject | undefined> {
    try {
      const got = await this.clients[store].send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return { body: got.Body as Readable, bytes: Number(got.ContentLength ?? 0), contentType: got.ContentType || "application/octet-stream" };
    } catch (err) {
      if (err instanceof NoSuchKey || (err as { name?: string }).name === "NoSuchKey") return undefined;
      throw err;
    }
  }

  async putObject(store: "media" | "backups", bucket: string, key: string, body: string | Buffer, contentType: string): Promise<void> {
    await this.clients[store].send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
  }

  /**
   * Streams `source` into one object with bounded memory (s3-multipart.ts). When `source`
   * throws, nothing is stored and its error is thrown.
   */
  upload(store: "media" | "backups", bucket: string, key: string, source: AsyncIterable<Buffer>, contentType: string): Promise<{ bytes: number; parts: number }> {
    return uploadStream(this.clients[store], bucket, key, source, { partSize: UPLOAD_PART_SIZE, queueSize: UPLOAD_QUEUE_SIZE, contentType });
  }

  close(): void {
    this.clients.media.destroy();
    this.clients.backups.destroy();
  }
}
