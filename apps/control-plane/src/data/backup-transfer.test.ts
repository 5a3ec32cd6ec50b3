import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import S3rver from "s3rver";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { sql } from "kysely";
import { backupLocation } from "@slipway/core";
import { testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { ObjectStore } from "./object-store.js";

const MiB = 1024 * 1024;
const LIMIT = 24 * MiB;
/** The 11-byte header of a pg_dump 15 custom-format archive (PGDMP, version 1.14.0, int 4, offset 8, format 1). */
const HEADER = Buffer.from([0x50, 0x47, 0x44, 0x4d, 0x50, 0x01, 0x0e, 0x00, 0x04, 0x08, 0x01]);
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
/** A body in 64 KiB chunks, as a client's upload arrives. */
const chunked = (b: Buffer) => Readable.from((function* () {
  for (let i = 0; i < b.length; i += 64 * 1024) yield b.subarray(i, i + 64 * 1024);
})());

// Database archives in and out through the API (issue 13), against a real S3 server (s3rver)
// and PostgreSQL: uploads stored as backups byte for byte, downloads as stored, refusals store nothing.
describe("backup archives through the API", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-s3-"));
  let s3: S3rver;
  let cp: TestControlPlane;
  let store: ObjectStore;
  const tokens = { deployer: "", other: "", viewer: "" };
  const envIds: Record<string, string> = {};
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });
  const call = (method: string, url: string, payload?: unknown, token = cp.adminToken) =>
    cp.app.inject({ method: method as "GET", url, headers: auth(token), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const upload = (env: string, body: Buffer | Readable | string | undefined, opts: { token?: string; contentType?: string; headers?: Record<string, string> } = {}) =>
    cp.app.inject({
      method: "POST",
      url: `/v1/apps/shop/environments/${env}/backups/upload`,
      headers: { ...auth(opts.token ?? cp.adminToken), "content-type": opts.contentType ?? "application/octet-stream", ...opts.headers },
      ...(body !== undefined ? { payload: body } : {}),
    });
  const objects = async (envId: string) => {
    const page = await store.clients.backups.send(new ListObjectsV2Command({ Bucket: "backups", Prefix: `envs/${envId}/` }));
    return (page.Contents ?? []).map((o) => o.Key!);
  };
  const counts = async () => {
    const q = async (t: string) => Number(((await sql`SELECT count(*) AS n FROM ${sql.table(t)}`.execute(cp.database.db)).rows[0] as { n: string }).n);
    return { backups: await q("backups"), activity: await q("activity"), jobs: await q("jobs") };
  };

  beforeAll(async () => {
    s3 = new S3rver({ directory: dir, address: "127.0.0.1", port: 0, silent: true, vhostBuckets: false, configureBuckets: [{ name: "media", configs: [] }, { name: "backups", configs: [] }] });
    const { port } = await s3.run();
    const place = { endpoint: `http://127.0.0.1:${port}`, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
    const storage = { media: { ...place, endpointForContainers: place.endpoint, bucket: "media" }, backups: { ...place, bucket: "backups" } };
    store = new ObjectStore(storage);
    cp = await testControlPlane("postgres", { storage, uploadMaxBytes: LIMIT });
    for (const name of ["shop", "other"]) expect((await call("POST", "/v1/apps", { name, repository: `https://x.test/${name}.git` })).statusCode).toBe(201);
    tokens.deployer = (await call("POST", "/v1/tokens", { name: "ci", role: "deployer", apps: ["shop"] })).json().token;
    tokens.other = (await call("POST", "/v1/tokens", { name: "other-ci", role: "deployer", apps: ["other"] })).json().token;
    tokens.viewer = (await call("POST", "/v1/tokens", { name: "dash", role: "viewer", apps: ["shop"] })).json().token;
    const rows = await cp.database.db.selectFrom("environments").innerJoin("apps", "apps.id", "environments.app_id").select(["environments.id", "environments.name"]).where("apps.name", "=", "shop").execute();
    for (const r of rows) envIds[r.name] = r.id;
  });
  afterAll(async () => {
    store?.close();
    await cp?.close();
    await s3?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stores an uploaded archive as a finished backup, streamed in and out byte for byte with its sha256", async () => {
    // Three multipart parts of 8 MiB and a bit.
    const archive = Buffer.concat([HEADER, randomBytes(20 * MiB + 123)]);
    const res = await upload("test", chunked(archive), { token: tokens.deployer });
    expect(res.statusCode, res.body).toBe(201);
    const b = res.json();
    expect(b).toMatchObject({ app: "shop", environment: "test", kind: "upload", state: "succeeded", database: true, media: false, databaseBytes: archive.length, databaseSha256: sha256(archive), sizeBytes: archive.length });
    expect((await call("GET", "/v1/apps/shop/environments/test/backups")).json().map((x: { id: string }) => x.id)).toContain(b.id);
    expect((await call("GET", `/v1/backups/${b.id}`, undefined, tokens.viewer)).json()).toEqual(b);
    // The manifest a restore reads first, beside the archive.
    const manifest = await store.clients.backups.send(new GetObjectCommand({ Bucket: "backups", Key: `${backupLocation(envIds.test!, b.id)}manifest.json` }));
    expect(JSON.parse(await manifest.Body!.transformToString())).toMatchObject({ backupId: b.id, app: "shop", environment: "test", database: { bytes: archive.length, sha256: sha256(archive) }, media: null });

    const down = await cp.app.inject({ method: "GET", url: `/v1/backups/${b.id}/database`, headers: auth(tokens.deployer) });
    expect(down.statusCode).toBe(200);
    expect(down.headers["content-type"]).toBe("application/octet-stream");
    expect(Number(down.headers["content-length"])).toBe(archive.length);
    expect(down.headers["x-slipway-sha256"]).toBe(sha256(archive));
    expect(down.headers["content-disposition"]).toBe(`attachment; filename="shop-test-${b.id}.dump"`);
    expect(sha256(down.rawPayload)).toBe(sha256(archive));
    const activity = (await call("GET", "/v1/activity?app=shop&env=test")).json().map((a: { action: string; actor: string }) => `${a.action} by ${a.actor}`);
    expect(activity).toEqual(expect.arrayContaining(["backup.uploaded by ci", "backup.downloaded by ci"]));
  });

  it("refuses a body that is not a custom-format archive with 400, storing nothing", async () => {
    const before = { rows: await counts(), objects: await objects(envIds.live!) };
    const cases: Array<[string | Buffer | undefined, RegExp, string?]> = [
      [undefined, /it is empty/],
      [Buffer.alloc(0), /it is empty/],
      ["--\n-- PostgreSQL database dump\n--\nSET statement_timeout = 0;\n", /plain SQL script/],
      [Buffer.concat([HEADER.subarray(0, 10), Buffer.from([5]), randomBytes(4096)]), /directory archive/],
      [Buffer.concat([HEADER.subarray(0, 10), Buffer.from([3]), randomBytes(100)]), /tar archive/],
      [HEADER.subarray(0, 7), /truncated/],
      [Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), randomBytes(2 * MiB)]), /does not start with PGDMP/],
      [JSON.stringify({ database: true }), /plain SQL script|does not start with PGDMP/, "application/json"],
    ];
    for (const [body, message, contentType] of cases) {
      const res = await upload("live", body === undefined ? undefined : typeof body === "string" ? body : chunked(body), contentType ? { contentType } : {});
      expect({ status: res.statusCode, code: res.json().error?.code }, String(body).slice(0, 40)).toEqual({ status: 400, code: "invalid_request" });
      expect(res.json().error.message).toMatch(message);
      expect(res.json().error.message).toMatch(/nothing was stored/);
    }
    expect({ rows: await counts(), objects: await objects(envIds.live!) }).toEqual(before);
  });

  // (The multipart upload is aborted too; s3rver implements neither the abort nor the listing of uploads, so that is not checked here.)
  it("refuses more than the limit with 413, declared or streamed, storing nothing", async () => {
    const before = { rows: await counts(), objects: await objects(envIds.live!) };
    const declared = await upload("live", chunked(Buffer.concat([HEADER, randomBytes(1000)])), { headers: { "content-length": String(LIMIT + 1) } });
    expect(declared.statusCode).toBe(413);
    expect(declared.json().error).toMatchObject({ code: "payload_too_large", message: expect.stringMatching(/larger than the 24 MiB an upload may have/) });
    // The limit is only found out part way through (three parts were written by then).
    const streamed = await upload("live", chunked(Buffer.concat([HEADER, randomBytes(LIMIT)])));
    expect(streamed.statusCode).toBe(413);
    expect({ rows: await counts(), objects: await objects(envIds.live!) }).toEqual(before);
    // Exactly the limit is fine.
    const exact = await upload("live", chunked(Buffer.concat([HEADER, randomBytes(LIMIT - HEADER.length)])));
    expect(exact.statusCode, exact.body).toBe(201);
    expect(exact.json().databaseBytes).toBe(LIMIT);
  });

  it("stores nothing of an upload whose client goes away part way", async () => {
    const before = { rows: await counts(), objects: await objects(envIds.live!) };
    // As the request stream does when the connection is lost: 10 MiB arrive (a part is written), then an error.
    async function* vanishing(): AsyncGenerator<Buffer> {
      yield HEADER;
      for (let i = 0; i < 10; i++) yield randomBytes(MiB);
      throw Object.assign(new Error("aborted"), { code: "ECONNRESET" });
    }
    const admin = { tokenId: "t", name: "ann", role: "admin" as const, apps: [] };
    await expect(cp.services.data.uploadBackup(admin, "shop", "live", vanishing())).rejects.toThrow(/^aborted$/);
    expect({ rows: await counts(), objects: await objects(envIds.live!) }).toEqual(before);
  });

  it("over a real connection, a refusal reaches a client that is still sending, and the rest is not read for long", async () => {
    await cp.app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = cp.app.server.address() as { port: number };
    /** Sends `declared` bytes (a header first) until the answer comes; `stubborn` keeps sending after it. */
    const send = (head: Buffer, declared: number, stubborn: boolean) =>
      new Promise<{ status: number; message: string; closedAfterMs: number }>((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/v1/apps/shop/environments/live/backups/upload", headers: { ...auth(cp.adminToken), "content-type": "application/octet-stream", "content-length": String(declared) } });
        let answer: { status: number; message: string; at: number } | undefined;
        req.on("response", (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => {
            answer = { status: res.statusCode!, message: JSON.parse(text).error.message, at: Date.now() };
            if (!stubborn) req.destroy();
          });
        });
        req.on("error", () => undefined);
        req.on("close", () => (answer ? resolve({ status: answer.status, message: answer.message, closedAfterMs: Date.now() - answer.at }) : reject(new Error("closed without an answer"))));
        req.write(head);
        const chunk = randomBytes(256 * 1024);
        const more = () => {
          if (req.destroyed || req.writableEnded) return;
          if (req.write(chunk)) setImmediate(more);
          else req.once("drain", more);
        };
        more();
      });
    const before = { rows: await counts(), objects: await objects(envIds.live!) };
    // Refused after 11 bytes, with 20 MiB on their way; and one over the limit refused before a byte is read.
    const notDump = await send(Buffer.from("not a dump at all"), 20 * MiB, false);
    expect(notDump).toMatchObject({ status: 400, message: expect.stringMatching(/not a pg_dump custom-format archive.*nothing was stored/) });
    const tooLarge = await send(HEADER, LIMIT + MiB, false);
    expect(tooLarge).toMatchObject({ status: 413 });
    // A client that goes on sending after the answer: its connection is closed after a few seconds, not read to the end.
    const stubborn = await send(HEADER, 1024 ** 3, true);
    expect(stubborn.status).toBe(413);
    expect(stubborn.closedAfterMs).toBeGreaterThan(3_000);
    expect(stubborn.closedAfterMs).toBeLessThan(10_000);
    expect({ rows: await counts(), objects: await objects(envIds.live!) }).toEqual(before);
  });

  it("lets admins and the app's deployers download, nobody else; only finished backups with a database", async () => {
    const up = await upload("test", Buffer.concat([HEADER, randomBytes(5000)]));
    const id = up.json().id as string;
    const get = (backup: string, token?: string) => cp.app.inject({ method: "GET", url: `/v1/backups/${backup}/database`, headers: token === undefined ? {} : auth(token) });
    const before = await counts();
    expect((await get(id)).statusCode).toBe(401);
    expect((await get(id, "slw_nope")).statusCode).toBe(401);
    const other = await get(id, tokens.other);
    expect(other.statusCode).toBe(403);
    expect(other.json().error.message).toMatch(/may not act on app 'shop'/);
    const viewer = await get(id, tokens.viewer);
    expect(viewer.statusCode).toBe(403);
    expect(viewer.json().error.message).toMatch(/viewer's: a database dump holds every row/);
    expect((await get(randomUUID(), cp.adminToken)).statusCode).toBe(404);
    // No HEAD: it would read the whole archive from the store for nothing.
    expect((await cp.app.inject({ method: "HEAD", url: `/v1/backups/${id}/database`, headers: auth(cp.adminToken) })).statusCode).toBe(404);
    expect(await counts()).toEqual(before);
    expect((await get(id, cp.adminToken)).statusCode).toBe(200);

    // Not finished yet (no agent here), and media only.
    await call("POST", "/v1/apps/shop/environments", { name: "qa" });
    const q = await call("POST", "/v1/apps/shop/environments/qa/backups", { database: true, media: false });
    const notDone = await get(q.json().id, cp.adminToken);
    expect(notDone.statusCode).toBe(409);
    expect(notDone.json().error.message).toMatch(/is queued: only a finished backup can be downloaded/);
    const mediaOnly = randomUUID();
    await cp.database.db
      .insertInto("backups")
      .values({ id: mediaOnly, app: "shop", environment: "test", environment_id: envIds.test!, kind: "manual", state: "succeeded", database: false, media: true, media_bytes: 1, media_objects: 1, prefix: backupLocation(envIds.test!, mediaOnly), job_id: null, requested_by: "ann", created_at: new Date(), finished_at: new Date() })
      .execute();
    const noDb = await get(mediaOnly, cp.adminToken);
    expect(noDb.statusCode).toBe(409);
    expect(noDb.json().error.message).toMatch(/has no database \(media only\)/);

    // Uploads: other apps' deployers and viewers store nothing.
    const objectsBefore = await objects(envIds.test!);
    const rowsBefore = await counts();
    expect((await upload("test", Buffer.concat([HEADER, randomBytes(100)]), { token: tokens.other })).statusCode).toBe(403);
    expect((await upload("test", Buffer.concat([HEADER, randomBytes(100)]), { token: tokens.viewer })).statusCode).toBe(403);
    expect((await upload("nope", Buffer.concat([HEADER, randomBytes(100)]))).statusCode).toBe(404);
    expect({ rows: await counts(), objects: await objects(envIds.test!) }).toEqual({ rows: rowsBefore, objects: objectsBefore });
  });

  it("restores an upload like any backup: a database-only restore after a safety backup of the target", async () => {
    const up = (await upload("live", Buffer.concat([HEADER, randomBytes(3000)]))).json();
    const res = await call("POST", `/v1/backups/${up.id}/restore`, { confirm: true }, tokens.deployer);
    expect(res.statusCode, res.body).toBe(202);
    const restore = res.json();
    expect(restore).toMatchObject({ kind: "restore", from: `backup:${up.id}`, to: "live", database: true, media: false, state: "queued" });
    const safety = (await call("GET", `/v1/backups/${restore.safetyBackupId}`)).json();
    expect(safety).toMatchObject({ kind: "safety", environment: "live", database: true, media: false, state: "queued" });
    const job = await cp.database.db.selectFrom("jobs").selectAll().where("environment_id", "=", envIds.live!).orderBy("created_at", "desc").executeTakeFirstOrThrow();
    expect(job.spec).toMatchObject({ action: "restore", backupId: up.id, safetyBackupId: restore.safetyBackupId, database: true, media: false });
  });

  it("never prunes uploads with scheduled backups", async () => {
    const db = cp.database.db;
    const now = new Date(Date.now() + 400 * 86_400_000);
    // test's schedule: on, keeping one of each; its uploads are all old by `now`.
    expect((await call("PUT", "/v1/apps/shop/environments/test/backup-schedule", { enabled: true, retention: { daily: 1, weekly: 1, monthly: 1 } })).statusCode).toBe(200);
    const uploads = await db.selectFrom("backups").select("id").where("environment_id", "=", envIds.test!).where("kind", "=", "upload").execute();
    expect(uploads.length).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 5; i++) {
      const id = randomUUID();
      await db.insertInto("backups").values({ id, app: "shop", environment: "test", environment_id: envIds.test!, kind: "scheduled", state: "succeeded", database: true, media: false, database_bytes: 1, prefix: backupLocation(envIds.test!, id), job_id: null, requested_by: "scheduler", created_at: new Date(now.getTime() - (i + 40) * 86_400_000), finished_at: new Date() }).execute();
    }
    const r = await cp.services.data.runSchedule(now);
    expect(r.pruned).toBeGreaterThan(0);
    const left = await db.selectFrom("backups").select("id").where("environment_id", "=", envIds.test!).where("kind", "=", "upload").execute();
    expect(left.map((x) => x.id).sort()).toEqual(uploads.map((x) => x.id).sort());
  });
});
