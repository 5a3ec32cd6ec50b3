/**
 * Data jobs (backup, restore, copy) against a REAL PostgreSQL (127.0.0.1:5432)
 * and a REAL s3rver started here as a child process. Everything is checked by
 * reading back: md5 over the rows in order, sha256 of every object.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import type { DataSpec, S3Location } from "@slipway/proto";
import { SignatureV4 } from "@smithy/signature-v4";
import type { SourceData } from "@smithy/types";
import { createLogger } from "@slipway/core";
import { runDataJob, type BackupManifest } from "./data.runner.js";
import { copyPrefix, deletePrefix, makeS3Client, PartialCopyError } from "./s3.js";
import { pgConnection } from "./pg-tools.js";
import { dumpToS3 } from "./database.js";
import { uploadStream } from "./s3-upload.js";
import { CopyObjectClient, encodeKey } from "./s3-copy.js";
import {
  createDb,
  dbUrl,
  dropDb,
  fillItems,
  itemsDigest,
  putObjects,
  rand,
  readDigests,
  sha256,
  recordingReporter,
  startS3rver,
  withDb,
  type S3rverHandle,
} from "./data.testkit.js";

const log = createLogger("data-test", "silent");
const run = rand();
const dbA = `slipway_data_test_${run}_a`;
const dbB = `slipway_data_test_${run}_b`;
let s3: S3rverHandle | undefined;
/** The sha256 the first test's backup b1 reported for its database archive. */
let b1Sha256 = "";

function spec(over: Partial<DataSpec>): DataSpec {
  return {
    action: "backup",
    app: "shop",
    environment: "live",
    database: true,
    media: true,
    sourceDatabaseUrl: "",
    sourceMedia: undefined,
    targetDatabaseUrl: "",
    targetMedia: undefined,
    backup: undefined,
    safetyBackup: undefined,
    ...over,
  };
}

const media = (prefix: string, bucket = "media"): S3Location => s3!.location(bucket, prefix);
/** A backup's location; `sha256`: the database archive's sha256 as the control plane recorded it ("" = none: the manifest's counts). */
const backupAt = (id: string, sha256 = "") => ({ backupId: id, location: s3!.location("backups", `shop/${id}/`), databaseSha256: sha256 });

async function runJob(s: DataSpec) {
  const report = recordingReporter();
  const outcome = await runDataJob(s, { report, log, signal: new AbortController().signal });
  return { outcome, report };
}

async function readManifest(id: string): Promise<BackupManifest> {
  const client = makeS3Client(s3!.location("backups", ""));
  try {
    const got = await client.send(new GetObjectCommand({ Bucket: "backups", Key: `shop/${id}/manifest.json` }));
    return JSON.parse(await got.Body!.transformToString()) as BackupManifest;
  } finally {
    client.destroy();
  }
}

/** 50 objects of 1–40 KB, some keys with characters servers encode differently in x-amz-copy-source. */
const keyOf = (i: number) => (i % 10 === 3 ? `odd names/ä b+c&d=${i}?.txt` : `uploads/${i % 4}/file-${i}.bin`);

beforeAll(async () => {
  s3 = await startS3rver(["media", "backups", "other"]);
  await createDb(dbA);
  await createDb(dbB);
});

afterAll(async () => {
  await Promise.allSettled([dropDb(dbA), dropDb(dbB)]);
  await s3?.stop();
});

describe("database URLs", () => {
  it("never put the password on the command line", () => {
    const c = pgConnection("postgres://role%40x:s3cr%2Ft@db.internal:6543/my_db?sslmode=require");
    expect(c.args.join(" ")).not.toContain("s3cr");
    expect(c.args).toEqual(["--host", "db.internal", "--port", "6543", "--username", "role@x", "--no-password", "--dbname=my_db"]);
    expect(c.env).toMatchObject({ PGPASSWORD: "s3cr/t", PGSSLMODE: "require" });
    expect(c.label).toBe("db.internal:6543/my_db");
  });
});

describe("data jobs with a real PostgreSQL and a real s3rver", () => {
  it("backs up a database and 50 media objects, then restores them into another database and prefix (replace)", async () => {
    await fillItems(dbA, 3000, "alpha");
    await fillItems(dbB, 40, "other");
    const source = await putObjects(media("envA/"), 50, (i) => 1024 + ((i * 7919) % 40_000), keyOf);
    const stale = await putObjects(media("envB/"), 6, () => 500, (i) => `stale-${i}.bin`);
    expect(stale.size).toBe(6);

    const backup = await runJob(spec({ action: "backup", sourceDatabaseUrl: dbUrl(dbA), sourceMedia: media("envA/"), backup: backupAt("b1") }));
    expect(backup.outcome, backup.report.lines().join("\n")).toBe("succeeded");
    expect(backup.report.lines()).toContain("===== database backup =====");
    expect(backup.report.lines()).toContain("===== media backup =====");
    const steps = backup.report.events.filter((e) => e.kind === "step").map((e) => e.value);
    expect(steps).toEqual([
      { name: "database", state: "running" },
      { name: "database", state: "succeeded" },
      { name: "media", state: "running" },
      { name: "media", state: "succeeded" },
    ]);
    const facts = backup.report.events.filter((e) => e.kind === "backup").map((e) => e.value as Record<string, unknown>);
    expect(facts).toHaveLength(2);
    expect(facts[0]).toMatchObject({ backupId: "b1", database: true, media: false });
    expect(facts[0].databaseBytes).toBeGreaterThan(10_000);
    expect(facts[0].databaseSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(facts[1]).toMatchObject({ databaseSha256: "" });
    expect(facts[1]).toMatchObject({ backupId: "b1", media: true, mediaObjects: 50 });
    const manifest = await readManifest("b1");
    expect(manifest.media).toEqual({ objects: 50, bytes: facts[1].mediaBytes });
    expect(manifest.database?.bytes).toBe(facts[0].databaseBytes);
    expect(manifest.database?.sha256).toBe(facts[0].databaseSha256);
    b1Sha256 = facts[0].databaseSha256 as string;
    expect(await readDigests(s3!.location("backups", "shop/b1/media/"))).toEqual(source);

    // Progress: cumulative per phase, and the last media figure is the whole.
    const progress = backup.report.events.filter((e) => e.kind === "progress").map((e) => ({ ...(e.value as { phase: string; bytes: number; objects: number }), at: e.at }));
    const mediaProgress = progress.filter((p) => p.phase === "media");
    expect(mediaProgress.at(-1)).toMatchObject({ objects: 50, bytes: facts[1].mediaBytes });
    for (const phase of ["database", "media"]) {
      const ps = progress.filter((p) => p.phase === phase);
      for (let i = 1; i < ps.length; i++) {
        expect(ps[i].bytes).toBeGreaterThanOrEqual(ps[i - 1].bytes);
        // every event but the final flush respects the interval
        if (i < ps.length - 1) expect(ps[i].at - ps[i - 1].at).toBeGreaterThanOrEqual(249);
      }
    }

    const restore = await runJob(
      spec({ action: "restore", targetDatabaseUrl: dbUrl(dbB), targetMedia: media("envB/"), backup: backupAt("b1", b1Sha256) }),
    );
    expect(restore.outcome, restore.report.lines().join("\n")).toBe("succeeded");
    expect(restore.report.lines()).toContain("===== checking backup b1 =====");
    expect(await itemsDigest(dbB)).toEqual(await itemsDigest(dbA));
    expect(await readDigests(media("envB/"))).toEqual(source);
  });

  it("copy backs up the target first; restoring that safety backup brings the target back exactly", async () => {
    await withDb(dbB, (c) => c.query("TRUNCATE items RESTART IDENTITY"));
    await fillItems(dbB, 777, "target");
    await deletePrefix(media("envB/"));
    await putObjects(media("envB/"), 20, (i) => 300 + i, (i) => `uploads/t-${i}.bin`);
    const before = { db: await itemsDigest(dbB), media: await readDigests(media("envB/")) };
    expect(before.db).not.toEqual(await itemsDigest(dbA));

    const copy = await runJob(
      spec({
        action: "copy",
        sourceDatabaseUrl: dbUrl(dbA),
        sourceMedia: media("envA/"),
        targetDatabaseUrl: dbUrl(dbB),
        targetMedia: media("envB/"),
        safetyBackup: backupAt("s1"),
      }),
    );
    expect(copy.outcome, copy.report.lines().join("\n")).toBe("succeeded");
    expect(copy.report.events.filter((e) => e.kind === "step" && (e.value as { state: string }).state === "succeeded").map((e) => (e.value as { name: string }).name)).toEqual([
      "safety-backup",
      "database",
      "media",
    ]);
    expect(copy.report.events.filter((e) => e.kind === "backup").map((e) => (e.value as { backupId: string }).backupId)).toEqual(["s1", "s1"]);
    expect(await itemsDigest(dbB)).toEqual(await itemsDigest(dbA));
    expect(await readDigests(media("envB/"))).toEqual(await readDigests(media("envA/")));

    const back = await runJob(spec({ action: "restore", targetDatabaseUrl: dbUrl(dbB), targetMedia: media("envB/"), backup: backupAt("s1") }));
    expect(back.outcome, back.report.lines().join("\n")).toBe("succeeded");
    expect(await itemsDigest(dbB)).toEqual(before.db);
    expect(await readDigests(media("envB/"))).toEqual(before.media);
  });

  it("a restore with a safety backup keeps the target's content first, and that backup brings it back exactly (issue 11)", async () => {
    await fillItems(dbB, 55, "changed");
    await putObjects(media("envB/"), 3, (i) => 100 + i, (i) => `uploads/r-${i}.bin`);
    const before = { db: await itemsDigest(dbB), media: await readDigests(media("envB/")) };
    const restore = await runJob(spec({ action: "restore", targetDatabaseUrl: dbUrl(dbB), targetMedia: media("envB/"), backup: backupAt("s1"), safetyBackup: backupAt("r1") }));
    expect(restore.outcome, restore.report.lines().join("\n")).toBe("succeeded");
    expect(restore.report.events.filter((e) => e.kind === "step" && (e.value as { state: string }).state === "succeeded").map((e) => (e.value as { name: string }).name)).toEqual([
      "verify",
      "safety-backup",
      "database",
      "media",
    ]);
    expect(await itemsDigest(dbB)).not.toEqual(before.db);
    const back = await runJob(spec({ action: "restore", targetDatabaseUrl: dbUrl(dbB), targetMedia: media("envB/"), backup: backupAt("r1") }));
    expect(back.outcome, back.report.lines().join("\n")).toBe("succeeded");
    expect(await itemsDigest(dbB)).toEqual(before.db);
    expect(await readDigests(media("envB/"))).toEqual(before.media);
  });

  it("a copy that fails midway says what was done, fails, and leaves the safety backup usable", async () => {
    const before = { db: await itemsDigest(dbB), media: await readDigests(media("envB/")) };
    // The database copies; the media source is a bucket that does not exist.
    const copy = await runJob(
      spec({
        action: "copy",
        sourceDatabaseUrl: dbUrl(dbA),
        sourceMedia: media("envA/", "no-such-bucket"),
        targetDatabaseUrl: dbUrl(dbB),
        targetMedia: media("envB/"),
        safetyBackup: backupAt("s2"),
      }),
    );
    expect(copy.outcome).toBe("failed");
    const last = copy.report.lines().at(-1)!;
    expect(last).toMatch(/database copied; media copy could not list the source: .*NoSuchBucket/);
    expect(last).toContain("The safety backup s2 restores the target's previous content.");
    const result = copy.report.events.find((e) => e.kind === "result")!.value as { state: string; error: Error };
    expect(result.state).toBe("failed");
    expect(result.error.message).toBe(last);
    expect(await itemsDigest(dbB)).toEqual(await itemsDigest(dbA));

    const back = await runJob(spec({ action: "restore", targetDatabaseUrl: dbUrl(dbB), targetMedia: media("envB/"), backup: backupAt("s2") }));
    expect(back.outcome, back.report.lines().join("\n")).toBe("succeeded");
    expect(await itemsDigest(dbB)).toEqual(before.db);
    expect(await readDigests(media("envB/"))).toEqual(before.media);
  });

  it("a copy from a database that does not exist fails with pg_dump's message and leaves the target untouched", async () => {
    const before = await itemsDigest(dbB);
    const copy = await runJob(
      spec({
        action: "copy",
        media: false,
        sourceDatabaseUrl: dbUrl(`slipway_data_test_${run}_missing`),
        targetDatabaseUrl: dbUrl(dbB),
        safetyBackup: backupAt("s3"),
      }),
    );
    expect(copy.outcome).toBe("failed");
    const last = copy.report.lines().at(-1)!;
    expect(last).toMatch(/^safety backup s3 of the target written; database copy failed: pg_dump failed \(exit code 1\): .*does not exist/s);
    expect(last).toContain("The safety backup s3 restores");
    expect(await itemsDigest(dbB)).toEqual(before);
  });

  it("a copy cancelled during the media copy reports cancelled, what was done, and the safety backup", async () => {
    const ac = new AbortController();
    const report = recordingReporter();
    const step = report.step;
    report.step = (name, state) => {
      step(name, state);
      if (name === "media" && state === "running") ac.abort();
    };
    const outcome = await runDataJob(
      spec({
        action: "copy",
        sourceDatabaseUrl: dbUrl(dbA),
        sourceMedia: media("envA/"),
        targetDatabaseUrl: dbUrl(dbB),
        targetMedia: media("envB/"),
        safetyBackup: backupAt("s4"),
      }),
      { report, log, signal: ac.signal },
    );
    expect(outcome).toBe("cancelled");
    expect(report.lines().at(-1)).toBe(
      "safety backup s4 of the target written; database copied; media copy cancelled. The safety backup s4 restores the target's previous content.",
    );
    expect(report.events.find((e) => e.kind === "result")!.value).toMatchObject({ state: "cancelled" });
  });

  it("a backup that fails removes what it wrote; restore refuses a backup without a manifest", async () => {
    const failed = await runJob(
      spec({ action: "backup", sourceDatabaseUrl: dbUrl(dbA), sourceMedia: media("envA/", "no-such-bucket"), backup: backupAt("b2") }),
    );
    expect(failed.outcome).toBe("failed");
    expect(failed.report.lines().at(-1)).toMatch(/^media backup could not list the source/);
    expect(failed.report.lines()).toContain("removed the incomplete backup b2 (1 object(s))");
    const restore = await runJob(spec({ action: "restore", targetDatabaseUrl: dbUrl(dbB), targetMedia: media("envB/"), backup: backupAt("b2") }));
    expect(restore.outcome).toBe("failed");
    expect(restore.report.lines().at(-1)).toMatch(/backup b2 has no readable manifest/);
  });

  it("a restore refuses a database archive that is not the one the backup wrote, before touching anything (issue 11)", async () => {
    // An archive swapped for another valid one (a dump of another database), with and without its manifest rewritten to match.
    await fillItems(dbB, 5, "swap");
    const forged = await dumpToS3(dbUrl(dbB), s3!.location("backups", "shop/b1/"), "database.dump");
    expect(forged.sha256).not.toBe(b1Sha256);
    await withDb(dbB, (c) => c.query("TRUNCATE items RESTART IDENTITY"));
    await fillItems(dbB, 9, "target before");
    const before = { db: await itemsDigest(dbB), media: await readDigests(media("envB/")) };
    const attempt = async (recorded: string, safetyId: string) => {
      const r = await runJob(spec({ action: "restore", targetDatabaseUrl: dbUrl(dbB), targetMedia: media("envB/"), backup: backupAt("b1", recorded), safetyBackup: backupAt(safetyId) }));
      expect(r.outcome).toBe("failed");
      expect(r.report.lines().at(-1)).toMatch(/^checking backup b1 failed: .*database archive is not the one the backup wrote \(sha256 [0-9a-f]{64}, recorded [0-9a-f]{64}\).*The target was not touched\.$/);
      expect(r.report.events.find((e) => e.kind === "result")!.value).toMatchObject({ state: "failed", error: { type: "backup_unusable" } });
      // Nothing ran after the check: no safety backup written, target database and media as they were.
      expect(r.report.events.filter((e) => e.kind === "step").map((e) => e.value)).toEqual([{ name: "verify", state: "running" }, { name: "verify", state: "failed" }]);
      expect(await readDigests(s3!.location("backups", `shop/${safetyId}/`))).toEqual(new Map());
      expect(await itemsDigest(dbB)).toEqual(before.db);
      expect(await readDigests(media("envB/"))).toEqual(before.media);
    };
    // The control plane's record catches it.
    await attempt(b1Sha256, "t1");
    // Without a record (an older backup), the manifest does.
    await attempt("", "t2");
    // Manifest rewritten to match the forged archive: the control plane's record still refuses it.
    const client = makeS3Client(s3!.location("backups", ""));
    try {
      const manifest = await readManifest("b1");
      await client.send(new PutObjectCommand({ Bucket: "backups", Key: "shop/b1/manifest.json", Body: JSON.stringify({ ...manifest, database: { bytes: forged.bytes, sha256: forged.sha256 } }) }));
    } finally {
      client.destroy();
    }
    await attempt(b1Sha256, "t3");
  });

  it("copyPrefix reports how far it got when an object fails midway", async () => {
    await putObjects(media("mid/"), 30, () => 100, (i) => `k${String(i).padStart(2, "0")}`);
    const client = makeS3Client(media(""));
    let deleting: Promise<unknown> | undefined;
    const err = await copyPrefix(media("mid/"), media("mid-copy/"), {
      concurrency: 1,
      onProgress: (p) => {
        // After the 5th copy, a source object that is 20 copies further on disappears.
        if (p.objects === 5) deleting ??= client.send(new DeleteObjectCommand({ Bucket: "media", Key: "mid/k25" }));
      },
    }).catch((e: unknown) => e);
    await deleting;
    client.destroy();
    expect(err).toBeInstanceOf(PartialCopyError);
    expect((err as PartialCopyError).message).toMatch(/^failed after 25\/30 objects: .*NoSuchKey/);
  });

  it("uploadStream puts exact multiples of the part size, partial last parts and small bodies intact", async () => {
    const part = 5 * 1024 * 1024;
    const client = makeS3Client(media(""));
    try {
      for (const [name, size] of [["two-parts", 2 * part], ["three-parts", 2 * part + 1], ["small", 1000]] as const) {
        const body = randomBytes(size);
        // 64 KiB chunks, like a pipe delivers them
        const chunks = Array.from({ length: Math.ceil(size / 65536) }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536));
        const r = await uploadStream(client, "media", `up/${name}`, Readable.from(chunks), { partSize: part, queueSize: 2 });
        expect(r).toEqual({ bytes: size, parts: Math.max(1, Math.ceil(size / part)) });
        const got = await client.send(new GetObjectCommand({ Bucket: "media", Key: `up/${name}` }));
        expect(sha256(await got.Body!.transformToByteArray())).toBe(sha256(body));
      }
    } finally {
      client.destroy();
    }
  });

  it("the lean CopyObject client signs exactly like the AWS SDK's SigV4 signer, and its copies are intact", async () => {
    // s3rver does not check SigV4 signatures, so the SDK's own signer (a dependency of @aws-sdk/client-s3) is the oracle.
    const loc = { ...media(""), endpoint: "https://s3.example.test:8443", region: "eu-central-1", accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalr/K7MDENG+bPxRfiCYEXAMPLEKEY" };
    const lean = new CopyObjectClient(loc, 1);
    const at = new Date("2026-03-04T05:06:07.890Z");
    const path = lean.pathOf("media", "uploads/ä b/(1)*.bin");
    expect(path).toBe("/media/uploads/%C3%A4%20b/%281%29%2A.bin");
    const ours = lean.signedHeaders(path, "media/src/key.bin", at);
    lean.destroy();
    class Sha256 {
      private h;
      constructor(secret?: SourceData) {
        this.h = secret ? createHmac("sha256", Buffer.from(secret as Uint8Array)) : createHash("sha256");
      }
      update(d: SourceData) {
        this.h.update(typeof d === "string" ? d : Buffer.from(d as Uint8Array));
      }
      async digest() {
        return new Uint8Array(this.h.digest());
      }
    }
    const signer = new SignatureV4({ credentials: { accessKeyId: loc.accessKeyId, secretAccessKey: loc.secretAccessKey }, region: loc.region, service: "s3", sha256: Sha256, uriEscapePath: false });
    const sdk = await signer.sign(
      {
        method: "PUT",
        protocol: "https:",
        hostname: "s3.example.test",
        port: 8443,
        path,
        query: {},
        headers: { host: "s3.example.test:8443", "x-amz-acl": "bucket-owner-full-control", "x-amz-content-sha256": ours["x-amz-content-sha256"], "x-amz-copy-source": "media/src/key.bin" },
      },
      { signingDate: at },
    );
    expect(ours.authorization).toBe(sdk.headers.authorization);

    const original = await putObjects(media("sig/"), 1, () => 5000, () => "one");
    const real = new CopyObjectClient(media(""), 2);
    try {
      await real.copy("media", encodeKey("sig/one"), "other", "signed/one (copy)");
      expect(await readDigests(s3!.location("other", "signed/"))).toEqual(new Map([["one (copy)", original.get("one")]]));
    } finally {
      real.destroy();
    }
  });

  it("copies across buckets on the same endpoint", async () => {
    const r = await copyPrefix(media("envA/"), s3!.location("other", "x/"));
    expect(r.objects).toBe(50);
    expect(await readDigests(s3!.location("other", "x/"))).toEqual(await readDigests(media("envA/")));
  });
});
