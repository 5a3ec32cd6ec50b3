import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import S3rver from "s3rver";
import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { ObjectStore } from "./object-store.js";
import { backupLocation } from "@slipway/core";

// Scheduled backups with retention, against a real S3 server (s3rver) and PostgreSQL.
describe("scheduled backups and retention", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-s3-"));
  let s3: S3rver;
  let cp: TestControlPlane;
  let store: ObjectStore;

  beforeAll(async () => {
    s3 = new S3rver({ directory: dir, address: "127.0.0.1", port: 0, silent: true, vhostBuckets: false, configureBuckets: [{ name: "media", configs: [] }, { name: "backups", configs: [] }] });
    const { port } = await s3.run();
    const place = { endpoint: `http://127.0.0.1:${port}`, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
    const storage = { media: { ...place, endpointForContainers: place.endpoint, bucket: "media" }, backups: { ...place, bucket: "backups" } };
    store = new ObjectStore(storage);
    cp = await testControlPlane("postgres", { storage });
    await cp.app.inject({ method: "POST", url: "/v1/apps", headers: { authorization: `Bearer ${cp.adminToken}` }, payload: { name: "shop", repository: "https://x.test/shop.git" } });
  });
  afterAll(async () => {
    store?.close();
    await cp?.close();
    await s3?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("backs up live daily by default, and prunes scheduled backups beyond 7 daily, 4 weekly, 12 monthly", async () => {
    const db = cp.database.db;
    const live = await db.selectFrom("environments").innerJoin("apps", "apps.id", "environments.app_id").select("environments.id").where("apps.name", "=", "shop").where("environments.name", "=", "live").executeTakeFirstOrThrow();
    const now = new Date("2026-11-22T12:00:00Z");
    // 400 days of daily scheduled backups ending two days ago, each with an object in S3.
    const ids: string[] = [];
    for (let i = 2; i < 402; i++) {
      const id = randomUUID();
      ids.push(id);
      const prefix = backupLocation(live.id, id);
      await db
        .insertInto("backups")
        .values({ id, app: "shop", environment: "live", environment_id: live.id, kind: "scheduled", state: "succeeded", database: true, media: true, database_bytes: 10, media_bytes: 1, media_objects: 1, prefix, job_id: null, requested_by: "scheduler", created_at: new Date(now.getTime() - i * 86_400_000), finished_at: new Date() })
        .execute();
      await store.clients.backups.send(new PutObjectCommand({ Bucket: "backups", Key: `${prefix}database.dump`, Body: "x" }));
    }
    const manual = randomUUID();
    await db.insertInto("backups").values({ id: manual, app: "shop", environment: "live", environment_id: live.id, kind: "manual", state: "succeeded", database: true, media: false, prefix: backupLocation(live.id, manual), job_id: null, requested_by: "ann", created_at: new Date(now.getTime() - 300 * 86_400_000), finished_at: new Date() }).execute();

    const r = await cp.services.data.runSchedule(now);
    expect(r.started).toBe(1); // live's last scheduled backup is 2 days old; test has no schedule
    const left = await db.selectFrom("backups").select(["id", "kind", "state"]).where("environment_id", "=", live.id).execute();
    const keptScheduled = left.filter((b) => b.kind === "scheduled" && b.state === "succeeded");
    expect(r.pruned).toBe(400 - keptScheduled.length);
    expect(keptScheduled.length).toBeGreaterThanOrEqual(12);
    expect(keptScheduled.length).toBeLessThanOrEqual(23);
    expect(left.some((b) => b.id === manual)).toBe(true); // retention prunes scheduled backups only
    expect(left.filter((b) => b.kind === "scheduled" && b.state === "queued")).toHaveLength(1);
    const objects = await store.clients.backups.send(new ListObjectsV2Command({ Bucket: "backups", Prefix: `envs/${live.id}/` }));
    expect((objects.Contents ?? []).length).toBe(keptScheduled.length);

    // A second run the same day starts nothing new and prunes nothing more.
    const again = await cp.services.data.runSchedule(now);
    expect(again).toEqual({ started: 0, pruned: 0 });
  });
});
