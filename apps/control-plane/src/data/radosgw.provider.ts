import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { CreateBucketCommand, HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { SignatureV4 } from "@smithy/signature-v4";
import type { Logger } from "@slipway/core";
import { environmentStorageUser, type S3Credentials, type StorageProvider } from "./storage-provider.js";

/** node:crypto as the hash @smithy/signature-v4 asks for (an HMAC when given a secret). */
class Sha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash("sha256") : createHmac("sha256", toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {
    throw new Error("not supported");
  }
}

function toBuffer(d: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof d === "string") return Buffer.from(d, "utf8");
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

/** An Admin Ops API refusal, with radosgw's error code (NoSuchUser, NoSuchBucket, …). */
export class RadosGwAdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    what: string,
  ) {
    super(`radosgw refused ${what}: ${status} ${code}`);
  }
}

interface RgwUser {
  user_id: string;
  keys: Array<{ user: string; access_key: string; secret_key: string }>;
  max_buckets: number;
}

/**
 * Per-environment identities on a Ceph Object Gateway, through its Admin Ops
 * API (`/admin/…`, signed with the platform user's keys like any S3 request;
 * that user needs the `users=*;buckets=*` caps, and the `admin` flag so that
 * backups and copies can read every bucket). Each environment gets a user
 * (`slw-env-<id>`) allowed one bucket, and the bucket itself, created with
 * the environment's own keys so that the environment owns it: other
 * environments' keys are refused on it, and its keys on everything else.
 */
export class RadosGwProvider implements StorageProvider {
  readonly kind = "radosgw" as const;
  readonly isolates = true;
  private readonly signer: SignatureV4;
  private readonly endpoint: URL;

  constructor(
    private readonly opts: { endpoint: string; region: string; admin: S3Credentials; log: Logger },
  ) {
    this.endpoint = new URL(opts.endpoint);
    this.signer = new SignatureV4({ credentials: opts.admin, region: opts.region, service: "s3", sha256: Sha256, uriEscapePath: false });
  }

  /** One signed Admin Ops request; answers its JSON (or undefined for an empty body). */
  private async admin<T>(method: "GET" | "PUT" | "DELETE" | "POST", resource: "user" | "bucket", query: Record<string, string>, what: string): Promise<T | undefined> {
    const q = { ...query, format: "json" };
    const path = `${this.endpoint.pathname.replace(/\/$/, "")}/admin/${resource}`;
    const signed = await this.signer.sign({
      method,
      protocol: this.endpoint.protocol,
      hostname: this.endpoint.hostname,
      ...(this.endpoint.port ? { port: Number(this.endpoint.port) } : {}),
      path,
      query: q,
      headers: { host: this.endpoint.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    });
    const url = new URL(path, this.endpoint);
    // Flags without a value (`?key`) are sent as `key=` and signed the same way.
    for (const [k, v] of Object.entries(q)) url.searchParams.set(k, v);
    const res = await fetch(url, { method, headers: signed.headers as Record<string, string>, signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    if (!res.ok) {
      let code = "";
      try {
        code = (JSON.parse(text) as { Code?: string }).Code ?? "";
      } catch {
        code = text.slice(0, 200);
      }
      throw new RadosGwAdminError(res.status, code, what);
    }
    return text ? (JSON.parse(text) as T) : undefined;
  }

  private async user(uid: string): Promise<RgwUser | undefined> {
    try {
      return await this.admin<RgwUser>("GET", "user", { uid }, `reading user ${uid}`);
    } catch (err) {
      if (err instanceof RadosGwAdminError && err.code === "NoSuchUser") return undefined;
      throw err;
    }
  }

  async provision(p: { environmentId: string; bucket: string; credentials: S3Credentials }): Promise<void> {
    const uid = environmentStorageUser(p.environmentId);
    const keys = { "access-key": p.credentials.accessKeyId, "secret-key": p.credentials.secretAccessKey };
    let user = await this.user(uid);
    if (!user) {
      try {
        user = await this.admin<RgwUser>("PUT", "user", { uid, "display-name": `Slipway environment ${p.environmentId}`, "max-buckets": "1", "key-type": "s3", ...keys }, `creating user ${uid}`);
      } catch (err) {
        // Another caller created it a moment ago: carry on with what is there.
        if (!(err instanceof RadosGwAdminError && err.code === "UserAlreadyExists")) throw err;
        user = await this.user(uid);
      }
    }
    if (!user) throw new Error(`radosgw user ${uid} vanished while being provisioned`);
    const has = user.keys.find((k) => k.access_key === p.credentials.accessKeyId);
    if (!has || has.secret_key !== p.credentials.secretAccessKey) {
      await this.admin("PUT", "user", { key: "", uid, "key-type": "s3", ...keys }, `setting the keys of ${uid}`);
    }
    // Keys the platform no longer hands out (replaced ones) stop working.
    for (const k of user.keys) {
      if (k.access_key !== p.credentials.accessKeyId) await this.admin("DELETE", "user", { key: "", uid, "access-key": k.access_key }, `removing an old key of ${uid}`);
    }
    await this.createOwnBucket(p.bucket, p.credentials);
    this.opts.log.info({ environmentId: p.environmentId, user: uid, bucket: p.bucket }, "environment's storage identity and bucket ready");
  }

  /** Created with the environment's keys: the environment owns its bucket (and may own no other). */
  private async createOwnBucket(bucket: string, credentials: S3Credentials): Promise<void> {
    const client = new S3Client({
      endpoint: this.opts.endpoint,
      region: this.opts.region,
      credentials,
      forcePathStyle: true,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
    try {
      // Already there and its own (a retry): creating it again would exceed the user's one bucket.
      const owned = await client.send(new HeadBucketCommand({ Bucket: bucket })).then(
        () => true,
        (err: unknown) => {
          if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
          throw err;
        },
      );
      if (!owned) await client.send(new CreateBucketCommand({ Bucket: bucket }));
    } finally {
      client.destroy();
    }
  }

  async remove(p: { environmentId: string; bucket: string }): Promise<void> {
    const uid = environmentStorageUser(p.environmentId);
    try {
      await this.admin("DELETE", "bucket", { bucket: p.bucket, "purge-objects": "true" }, `removing bucket ${p.bucket}`);
    } catch (err) {
      if (!(err instanceof RadosGwAdminError && err.code === "NoSuchBucket")) throw err;
    }
    try {
      await this.admin("DELETE", "user", { uid, "purge-data": "true" }, `removing user ${uid}`);
    } catch (err) {
      if (!(err instanceof RadosGwAdminError && err.code === "NoSuchUser")) throw err;
    }
    this.opts.log.info({ environmentId: p.environmentId, user: uid, bucket: p.bucket }, "environment's storage identity and bucket removed");
  }
}

// For the storage benchmark (the package's "./radosgw-provider" entry point).
export { environmentBucket, newStorageCredentials } from "./storage-provider.js";
