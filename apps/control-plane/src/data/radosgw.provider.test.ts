import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { createLogger } from "@slipway/core";
import { startRadosGw, type RadosGw } from "../testing/radosgw.js";
import { RadosGwProvider } from "./radosgw.provider.js";
import { environmentBucket, environmentStorageUser, newStorageCredentials, type S3Credentials } from "./storage-provider.js";

/** What the server answers one call with these keys: "ok" or the S3 error's name. */
async function attempt(rgw: RadosGw, keys: S3Credentials, call: (c: S3Client) => Promise<unknown>): Promise<string> {
  const client = new S3Client({ endpoint: rgw.endpoint, region: "us-east-1", credentials: keys, forcePathStyle: true, requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });
  try {
    await call(client);
    return "ok";
  } catch (err) {
    return (err as { name?: string }).name ?? String(err);
  } finally {
    client.destroy();
  }
}

const put = (bucket: string, key = "x.txt", body = "hello") => (c: S3Client) => c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
const get = (bucket: string, key = "x.txt") => async (c: S3Client) => (await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
const list = (bucket: string) => (c: S3Client) => c.send(new ListObjectsV2Command({ Bucket: bucket }));
const del = (bucket: string, key = "x.txt") => (c: S3Client) => c.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));

// The provider against a real Ceph Object Gateway (single-node cluster started here).
describe("radosgw storage provider", () => {
  let rgw: RadosGw;
  let provider: RadosGwProvider;
  const a = { environmentId: randomUUID(), credentials: newStorageCredentials() };
  const b = { environmentId: randomUUID(), credentials: newStorageCredentials() };
  const bucketA = environmentBucket(a.environmentId);
  const bucketB = environmentBucket(b.environmentId);

  beforeAll(async () => {
    rgw = await startRadosGw();
    provider = new RadosGwProvider({ endpoint: rgw.endpoint, region: "us-east-1", admin: rgw.admin, log: createLogger("t", "silent") });
    await attempt(rgw, rgw.admin, (c) => c.send(new CreateBucketCommand({ Bucket: "platform-backups" })));
    await attempt(rgw, rgw.admin, put("platform-backups", "dump", "secret dump"));
  }, 120_000);
  afterAll(async () => {
    await rgw?.stop();
  });

  it("gives each environment a user and a bucket of its own, reachable with its keys only", async () => {
    await provider.provision({ ...a, bucket: bucketA });
    await provider.provision({ ...b, bucket: bucketB });
    expect(await attempt(rgw, a.credentials, put(bucketA, "uploads/a.txt", "from a"))).toBe("ok");
    expect(await attempt(rgw, b.credentials, put(bucketB, "uploads/b.txt", "from b"))).toBe("ok");
    expect(await attempt(rgw, a.credentials, get(bucketA, "uploads/a.txt"))).toBe("ok");
    expect(await attempt(rgw, a.credentials, list(bucketA))).toBe("ok");
    expect(await attempt(rgw, a.credentials, del(bucketA, "uploads/a.txt"))).toBe("ok");
    // A's keys on B's bucket and on the platform's backups: every operation refused.
    for (const [what, call] of [
      ["list B", list(bucketB)],
      ["get B", get(bucketB, "uploads/b.txt")],
      ["put B", put(bucketB, "evil.txt")],
      ["delete B", del(bucketB, "uploads/b.txt")],
      ["list backups", list("platform-backups")],
      ["get backup", get("platform-backups", "dump")],
      ["overwrite backup", put("platform-backups", "dump", "forged")],
      ["delete backup", del("platform-backups", "dump")],
      ["a second bucket", (c: S3Client) => c.send(new CreateBucketCommand({ Bucket: `slw-extra-${a.environmentId.slice(0, 8)}` }))],
    ] as const) {
      expect(await attempt(rgw, a.credentials, call), what).toMatch(/AccessDenied|TooManyBuckets/);
    }
    // B's object and the backup are intact; the platform's keys reach everything.
    expect(await attempt(rgw, b.credentials, get(bucketB, "uploads/b.txt"))).toBe("ok");
    const platform = new S3Client({ endpoint: rgw.endpoint, region: "us-east-1", credentials: rgw.admin, forcePathStyle: true, requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });
    try {
      expect(await (await platform.send(new GetObjectCommand({ Bucket: bucketB, Key: "uploads/b.txt" }))).Body!.transformToString()).toBe("from b");
      expect(await (await platform.send(new GetObjectCommand({ Bucket: "platform-backups", Key: "dump" }))).Body!.transformToString()).toBe("secret dump");
      // As a restore writes: giving the bucket's owner (the environment) full control of the object.
      await platform.send(new PutObjectCommand({ Bucket: bucketA, Key: "restored.txt", Body: "by the platform", ACL: "bucket-owner-full-control" }));
    } finally {
      platform.destroy();
    }
    expect(await attempt(rgw, a.credentials, get(bucketA, "restored.txt"))).toBe("ok");
  });

  it("is idempotent, and new keys for an environment replace its old ones", async () => {
    await provider.provision({ ...a, bucket: bucketA });
    expect(await attempt(rgw, a.credentials, get(bucketA, "restored.txt"))).toBe("ok");
    const replaced = newStorageCredentials();
    await provider.provision({ environmentId: a.environmentId, credentials: replaced, bucket: bucketA });
    expect(await attempt(rgw, replaced, get(bucketA, "restored.txt"))).toBe("ok");
    expect(await attempt(rgw, a.credentials, get(bucketA, "restored.txt"))).toMatch(/InvalidAccessKeyId|AccessDenied/);
    const info = JSON.parse(await rgw.radosgwAdmin(["user", "info", `--uid=${environmentStorageUser(a.environmentId)}`])) as { keys: Array<{ access_key: string }>; max_buckets: number };
    expect(info.keys.map((k) => k.access_key)).toEqual([replaced.accessKeyId]);
    expect(info.max_buckets).toBe(1);
    a.credentials = replaced;
  });

  it("removes the bucket with its objects and the user; a second removal is a no-op", async () => {
    await provider.remove({ environmentId: a.environmentId, bucket: bucketA });
    expect(await attempt(rgw, a.credentials, list(bucketA))).toMatch(/InvalidAccessKeyId|AccessDenied|NoSuchBucket/);
    expect(await attempt(rgw, rgw.admin, list(bucketA))).toBe("NoSuchBucket");
    await expect(rgw.radosgwAdmin(["user", "info", `--uid=${environmentStorageUser(a.environmentId)}`])).rejects.toThrow(/could not fetch user info|no user info/);
    await provider.remove({ environmentId: a.environmentId, bucket: bucketA });
    // B untouched.
    expect(await attempt(rgw, b.credentials, get(bucketB, "uploads/b.txt"))).toBe("ok");
  });

  it("names a refusal of the admin API (the platform's keys without the users caps)", async () => {
    const weak = newStorageCredentials();
    await rgw.radosgwAdmin(["user", "create", "--uid=weak", "--display-name=weak", `--access-key=${weak.accessKeyId}`, `--secret=${weak.secretAccessKey}`]);
    const p = new RadosGwProvider({ endpoint: rgw.endpoint, region: "us-east-1", admin: weak, log: createLogger("t", "silent") });
    await expect(p.provision({ environmentId: randomUUID(), credentials: newStorageCredentials(), bucket: environmentBucket(randomUUID()) })).rejects.toThrow(/radosgw refused reading user slw-env-[0-9a-f]{32}: 403 AccessDenied/);
  });
});
