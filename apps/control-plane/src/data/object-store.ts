import { DeleteObjectsCommand, ListObjectsV2Command, S3Client, CreateBucketCommand, HeadBucketCommand } from "@aws-sdk/client-s3";

/** The S3 settings of the platform: one media bucket (a prefix per environment) and one backup bucket. */
export interface StorageConfig {
  endpoint: string;
  endpointForContainers: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  mediaBucket: string;
  backupBucket: string;
}

// Media and backup locations are named after ids (core's environmentMediaPrefix and
// backupLocation) and recorded: an environment's media prefix on the environment, a
// backup's on the backup. Only recorded prefixes are read or deleted.

/**
 * DEFAULT_STORAGE_DSN: `s3://<key>:<secret>@<bucket>/<prefix>?endpoint=<url>&region=<region>&path_style=true`
 * (key and secret URL-encoded; the prefix ends in "/").
 */
export function storageDsn(cfg: StorageConfig, prefix: string): string {
  const q = new URLSearchParams({ endpoint: cfg.endpointForContainers, region: cfg.region, path_style: "true" });
  return `s3://${encodeURIComponent(cfg.accessKeyId)}:${encodeURIComponent(cfg.secretAccessKey)}@${cfg.mediaBucket}/${prefix}?${q.toString()}`;
}

/** The control plane's own S3 work: buckets at start, deleting an environment's media and backups. */
export class ObjectStore {
  readonly client: S3Client;
  constructor(readonly cfg: StorageConfig) {
    this.client = new S3Client({
      endpoint: cfg.endpoint,
      region: cfg.region,
      credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey },
      forcePathStyle: true,
      // The SDK's default checksums corrupt objects on some S3-compatible servers (s3rver).
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  }

  async ensureBuckets(): Promise<void> {
    for (const Bucket of [this.cfg.mediaBucket, this.cfg.backupBucket]) {
      try {
        await this.client.send(new HeadBucketCommand({ Bucket }));
      } catch {
        await this.client.send(new CreateBucketCommand({ Bucket }));
      }
    }
  }

  /** Deletes every object under a prefix; returns how many. */
  async deletePrefix(bucket: string, prefix: string): Promise<number> {
    let deleted = 0;
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length) {
        await this.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
        deleted += keys.length;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return deleted;
  }

  close(): void {
    this.client.destroy();
  }
}
