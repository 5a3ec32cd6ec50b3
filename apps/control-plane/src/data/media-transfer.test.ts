import { execFileSync } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import S3rver from "s3rver";
import tar from "tar-stream";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { sql } from "kysely";
import { backupLocation } from "@slipway/core";
import { testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { ObjectStore } from "./object-store.js";

const MiB = 1024 * 1024;
const LIMIT = 24 * MiB;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
/** A body in 64 KiB chunks, as a client's upload arrives. */
const chunked = (b: Buffer) => Readable.from((function* () {
  for (let i = 0; i < b.length; i += 64 * 1024) yield b.subarray(i, i + 64 * 1024);
})());

type TarEntry = { name: string; type?: "file" | "directory" | "symlink" | "link" | "character-device" | "fifo"; content?: Buffer; linkname?: string };

/** A tar made by tar-stream, as a client would send it. */
async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const read = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? "file";
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === "file") pack.entry({ name: e.name, type }, e.content ?? Buffer.alloc(0), done);
      else pack.entry({ name: e.name, type, ...(e.linkname ? { linkname: e.linkname } : {}), ...(type === "character-device" ? { devmajor: 1, devminor: 3 } : {}) }, done);
    });
  }
  pack.finalize();
  await read;
  return Buffer.concat(chunks);
}

/** What a tar holds: entry name → type and sha256 of the content. */
async function entriesOf(body: Buffer): Promise<Record<string, { type: string; sha256: string; size: number }>> {
  const out: Record<string, { type: string; sha256: string; size: number }> = {};
  const extract = tar.extract();
  const reading = (async () => {
    for await (const entry of extract) {
      const parts: Buffer[] = [];
      for await (const c of entry) parts.push(c as Buffer);
      const content = Buffer.concat(parts);
      out[entry.header.name] = { type: entry.header.type, sha256: sha256(content), size: content.length };
    }
  })();
  extract.end(body);
  await reading;
  return out;
}

// An environment's media in and out through the API as tar streams (issue 13, the local loop),
// against a real S3 server (s3rver) and PostgreSQL: uploads stored object by object as the media
// of a backup, downloads as stored, refusals store nothing.
describe("backup media through the API", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-s3-"));
  let s3: S3rver;
  let cp: TestControlPlane;
  let store: ObjectStore;
  const tokens = { deployer: "", other: "", viewer: "" };
  const envIds: Record<string, string> = {};
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });
  const call = (method: string, url: string, payload?: unknown, token = cp.adminToken) =>
    cp.app.inject({ method: method as "GET", url, headers: auth(token), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const upload = (env: string, body: Buffer | Readable | string | undefined, opts: { token?: string; headers?: Record<string, string> } = {}) =>
    cp.app.inject({
      method: "POST",
      url: `/v1/apps/shop/environments/${env}/backups/upload?part=media`,
      headers: { ...auth(opts.token ?? cp.adminToken), "content-type": "application/x-tar", ...opts.headers },
      ...(body !== undefined ? { payload: body } : {}),
    });
  const download = (id: string, token = cp.adminToken) => cp.app.inject({ method: "GET", url: `/v1/backups/${id}/media`, headers: auth(token) });
  const objects = async (envId: string) => {
    const page = await store.clients.backups.send(new ListObjectsV2Command({ Bucket: "backups", Prefix: `envs/${envId}/` }));
    return (page.Contents ?? []).map((o) => o.Key!);
  };
  const counts = async () => {
    const q = async (t: string) => Number(((await sql`SELECT count(*) AS n FROM ${sql.table(t)}`.execute(cp.database.db)).rows[0] as { n: string }).n);
    return { backups: await q("backups"), activity: await q("activity"), jobs: await q("jobs") };
  };
  const nothingStored = async (env: string, fn: () => Promise<void>) => {
    const before = { rows: await counts(), objects: await objects(envIds[env]!) };
    await fn();
    expect({ rows: await counts(), objects: await objects(envIds[env]!) }).toEqual(before);
  };
  /** A finished media backup as an agent writes one: objects under `<location>media/`, recorded with their count and bytes. */
  const agentBackup = async (env: string, files: Record<string, Buffer>) => {
    const id = randomUUID();
    const prefix = backupLocation(envIds[env]!, id);
    for (const [key, content] of Object.entries(files)) await store.putObject("backups", "backups", `${prefix}media/${key}`, content, "application/octet-stream");
    const bytes = Object.values(files).reduce((n, b) => n + b.length, 0);
    await cp.database.db
      .insertInto("backups")
      .values({ id, app: "shop", environment: env, environment_id: envIds[env]!, kind: "manual", state: "succeeded", database: false, media: true, media_bytes: bytes, media_objects: Object.keys(files).length, prefix, job_id: null, requested_by: "ann", created_at: new Date(), finished_at: new Date() })
      .execute();
    return id;
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

  it("stores an uploaded tar as the media of a finished backup and streams it back byte for byte", async () => {
    const files: Record<string, Buffer> = {
      "a.txt": Buffer.from("hello\n"),
      "empty.txt": Buffer.alloc(0),
      "uploads/2026/11/photo 1.jpg": randomBytes(70_000),
      "uploads/ünïcödé/файл.bin": randomBytes(3),
      [`deep/${"long-folder-name/".repeat(8)}file-with-a-name-past-the-ustar-limit.bin`]: randomBytes(1000),
      // Past one multipart part: streamed in rather than read whole.
      "video/big.bin": randomBytes(9 * MiB + 17),
    };
    const body = await tarOf([
      { name: "./", type: "directory" },
      { name: "./uploads/", type: "directory" },
      { name: "empty-folder/", type: "directory" },
      ...Object.entries(files).map(([name, content]) => ({ name: name === "a.txt" ? `./${name}` : name, content })),
    ]);
    const totalBytes = Object.values(files).reduce((n, b) => n + b.length, 0);
    const res = await upload("test", chunked(body), { token: tokens.deployer });
    expect(res.statusCode, res.body).toBe(201);
    const b = res.json();
    expect(b).toMatchObject({ app: "shop", environment: "test", kind: "upload", state: "succeeded", database: false, media: true, databaseBytes: null, mediaObjects: 6, mediaBytes: totalBytes, sizeBytes: totalBytes });
    // In the backup store as an agent's backup has them: one object per file under media/, the manifest beside.
    const location = backupLocation(envIds.test!, b.id);
    expect((await objects(envIds.test!)).filter((k) => k.startsWith(location)).sort()).toEqual([`${location}manifest.json`, ...Object.keys(files).map((k) => `${location}media/${k}`)].sort());
    for (const [key, content] of Object.entries(files)) {
      const got = await store.clients.backups.send(new GetObjectCommand({ Bucket: "backups", Key: `${location}media/${key}` }));
      expect(sha256(Buffer.from(await got.Body!.transformToByteArray())), key).toBe(sha256(content));
    }
    const manifest = await store.clients.backups.send(new GetObjectCommand({ Bucket: "backups", Key: `${location}manifest.json` }));
    expect(JSON.parse(await manifest.Body!.transformToString())).toMatchObject({ backupId: b.id, app: "shop", environment: "test", database: null, media: { objects: 6, bytes: totalBytes } });

    const down = await download(b.id, tokens.deployer);
    expect(down.statusCode, down.body.slice(0, 200)).toBe(200);
    expect(down.headers).toMatchObject({ "content-type": "application/x-tar", "content-disposition": `attachment; filename="shop-test-${b.id}-media.tar"`, "x-slipway-media-objects": "6", "x-slipway-media-bytes": String(totalBytes), "cache-control": "no-store" });
    const got = await entriesOf(down.rawPayload);
    expect(got).toEqual(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, { type: "file", sha256: sha256(v), size: v.length }])));
    const activity = (await call("GET", "/v1/activity?app=shop&env=test")).json().map((a: { action: string; actor: string; details: { part?: string } }) => `${a.action} ${a.details.part} by ${a.actor}`);
    expect(activity).toEqual(expect.arrayContaining(["backup.uploaded media by ci", "backup.downloaded media by ci"]));
  });

  it("downloads an agent's media backup, folder markers as folders, keys as they are", async () => {
    const id = await agentBackup("test", { "x/y.txt": Buffer.from("y"), "marker/": Buffer.alloc(0), "z.bin": randomBytes(10) });
    const down = await download(id);
    expect(down.statusCode).toBe(200);
    const got = await entriesOf(down.rawPayload);
    expect(Object.keys(got).sort()).toEqual(["marker/", "x/y.txt", "z.bin"]);
    expect(got["marker/"]!.type).toBe("directory");
    expect(got["x/y.txt"]).toEqual({ type: "file", sha256: sha256(Buffer.from("y")), size: 1 });
    // An empty media part is an empty tar.
    const none = await agentBackup("test", {});
    const empty = await download(none);
    expect(empty.statusCode).toBe(200);
    expect(empty.rawPayload.length).toBe(1024);
    expect(await entriesOf(empty.rawPayload)).toEqual({});
  });

  it("takes the tars GNU tar writes of a folder (gnu and pax formats), and GNU tar reads what it sends", async () => {
    const src = mkdtempSync(path.join(tmpdir(), "slipway-media-src-"));
    const files: Record<string, Buffer> = { "a.txt": Buffer.from("a"), "z/empty": Buffer.alloc(0), "ünï/файл.bin": randomBytes(999), [`${"n".repeat(150)}/${"f".repeat(120)}.bin`]: randomBytes(4000) };
    try {
      for (const [name, content] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(src, name)), { recursive: true });
        writeFileSync(path.join(src, name), content);
      }
      for (const format of ["gnu", "pax"]) {
        const body = execFileSync("tar", [`--format=${format}`, "-cf", "-", "-C", src, "."], { maxBuffer: 64 * MiB });
        const res = await upload("test", chunked(body));
        expect(res.statusCode, `${format}: ${res.body}`).toBe(201);
        expect(res.json(), format).toMatchObject({ mediaObjects: 4, mediaBytes: 5000 });
        const down = await download(res.json().id);
        const out = mkdtempSync(path.join(tmpdir(), "slipway-media-out-"));
        try {
          execFileSync("tar", ["-xf", "-", "-C", out], { input: down.rawPayload });
          const listed = execFileSync("find", [".", "-type", "f"], { cwd: out }).toString().trim().split("\n").map((f) => f.replace(/^\.\//, "")).sort();
          expect(listed, format).toEqual(Object.keys(files).sort());
          expect(Object.fromEntries(Object.keys(files).map((k) => [k, sha256(Buffer.from(execFileSync("cat", [k], { cwd: out })))]))).toEqual(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha256(v)])));
        } finally {
          rmSync(out, { recursive: true, force: true });
        }
      }
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  });

  it("refuses entries that lead out of the folder, links, devices and bodies that are no tar with 400, storing nothing", async () => {
    const good = { name: "fine.txt", content: randomBytes(100) };
    const cases: Array<[string, Buffer | string | undefined, RegExp]> = [
      ["absolute", await tarOf([good, { name: "/etc/cron.d/x", content: Buffer.from("x") }]), /the entry "\/etc\/cron.d\/x" is an absolute path; nothing was stored/],
      ["dot-dot", await tarOf([good, { name: "a/../../escape.txt", content: Buffer.from("x") }]), /the entry "a\/..\/..\/escape.txt" leads out of the folder \(..\)/],
      ["dot-dot folder", await tarOf([{ name: "../", type: "directory" }]), /leads out of the folder/],
      ["symlink", await tarOf([good, { name: "link", type: "symlink", linkname: "/etc/passwd" }]), /the entry "link" is a symbolic link: a media archive holds regular files and folders only/],
      ["hard link", await tarOf([good, { name: "hard", type: "link", linkname: "fine.txt" }]), /is a hard link/],
      ["device", await tarOf([{ name: "null", type: "character-device" }]), /is a device/],
      ["fifo", await tarOf([{ name: "pipe", type: "fifo" }]), /is a fifo/],
      ["empty part", await tarOf([{ name: "a//b", content: Buffer.from("x") }]), /empty or '.' part/],
      ["no body", undefined, /the body is empty/],
      ["empty body", Buffer.alloc(0), /the body is empty/],
      ["json", JSON.stringify({ files: ["a".repeat(600)] }), /no media archive a restore can take: it is not a tar archive \(Invalid tar header/],
      ["random", randomBytes(4096), /it is not a tar archive/],
      ["short", Buffer.from("not a tar"), /it is not a tar archive \(Unexpected end of data\)/],
      ["gzip", Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), randomBytes(2000)]), /it is gzip-compressed: send the tar itself/],
    ];
    // Truncated within the big file: the first files were stored by then.
    const whole = await tarOf([good, { name: "b.bin", content: randomBytes(MiB) }, { name: "c.bin", content: randomBytes(2 * MiB) }]);
    cases.push(["truncated", whole.subarray(0, whole.length - MiB), /it is not a tar archive \(Unexpected end of data\)/]);
    await nothingStored("live", async () => {
      for (const [what, body, message] of cases) {
        const res = await upload("live", body === undefined ? undefined : typeof body === "string" ? body : chunked(body));
        expect({ status: res.statusCode, code: res.json().error?.code }, what).toEqual({ status: 400, code: "invalid_request" });
        expect(res.json().error.message, what).toMatch(message);
        expect(res.json().error.message, what).toMatch(/nothing was stored$/);
      }
    });
  });

  it("refuses more than the limit with 413, declared or streamed, storing nothing", async () => {
    await nothingStored("live", async () => {
      const declared = await upload("live", chunked(await tarOf([{ name: "a", content: randomBytes(100) }])), { headers: { "content-length": String(LIMIT + 1) } });
      expect(declared.statusCode).toBe(413);
      expect(declared.json().error.message).toMatch(/the tar is larger than the 24 MiB an upload may have/);
      // Found out part way, after files were stored: small ones and one multipart upload.
      const files = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.bin`, content: randomBytes(i === 3 ? 10 * MiB : 3 * MiB) }));
      const streamed = await upload("live", chunked(await tarOf(files)));
      expect(streamed.statusCode).toBe(413);
    });
  });

  it("lets admins and the app's deployers download media, nobody else; only finished backups with media", async () => {
    const id = (await upload("test", await tarOf([{ name: "x.txt", content: Buffer.from("x") }]))).json().id as string;
    const get = (backup: string, token?: string) => cp.app.inject({ method: "GET", url: `/v1/backups/${backup}/media`, headers: token === undefined ? {} : auth(token) });
    const before = await counts();
    expect((await get(id)).statusCode).toBe(401);
    expect((await get(id, "slw_nope")).statusCode).toBe(401);
    const other = await get(id, tokens.other);
    expect(other.statusCode).toBe(403);
    expect(other.json().error.message).toMatch(/may not act on app 'shop'/);
    const viewer = await get(id, tokens.viewer);
    expect(viewer.statusCode).toBe(403);
    expect(viewer.json().error.message).toMatch(/viewer's: an environment's media hold everything its users uploaded/);
    expect((await get(randomUUID(), cp.adminToken)).statusCode).toBe(404);
    expect((await cp.app.inject({ method: "HEAD", url: `/v1/backups/${id}/media`, headers: auth(cp.adminToken) })).statusCode).toBe(404);
    // Not finished yet (no agent here), database only, and media no longer in the store.
    await call("POST", "/v1/apps/shop/environments", { name: "qa" });
    const queued = (await call("POST", "/v1/apps/shop/environments/qa/backups", { database: false, media: true })).json().id;
    const notDone = await get(queued, cp.adminToken);
    expect(notDone.statusCode).toBe(409);
    expect(notDone.json().error.message).toMatch(/is queued: only a finished backup can be downloaded/);
    const HEADER = Buffer.from([0x50, 0x47, 0x44, 0x4d, 0x50, 0x01, 0x0e, 0x00, 0x04, 0x08, 0x01]);
    const dbOnly = (await cp.app.inject({ method: "POST", url: "/v1/apps/shop/environments/test/backups/upload", headers: { ...auth(cp.adminToken), "content-type": "application/octet-stream" }, payload: Buffer.concat([HEADER, randomBytes(100)]) })).json().id;
    const noMedia = await get(dbOnly, cp.adminToken);
    expect(noMedia.statusCode).toBe(409);
    expect(noMedia.json().error.message).toMatch(/has no media \(database only\)/);
    const gone = await agentBackup("test", { "a.txt": Buffer.from("a") });
    await store.deletePrefix("backups", "backups", `${backupLocation(envIds.test!, gone)}media/`);
    const goneRes = await get(gone, cp.adminToken);
    expect(goneRes.statusCode).toBe(409);
    expect(goneRes.json().error.message).toMatch(/no longer in the backup store/);
    const after = await counts();
    // Only the refusals' own rows: the queued backup (and its job and activity) and the database upload.
    expect(after.backups - before.backups).toBe(3);
    expect((await call("GET", "/v1/activity?app=shop")).json().filter((a: { action: string; details: { backup: string } }) => a.action === "backup.downloaded" && [id, queued, dbOnly, gone].includes(a.details.backup))).toEqual([]);
    expect((await get(id, cp.adminToken)).statusCode).toBe(200);

    // Uploads: other apps' deployers and viewers store nothing; an unknown environment is 404.
    await nothingStored("test", async () => {
      const body = await tarOf([{ name: "x.txt", content: Buffer.from("x") }]);
      expect((await upload("test", body, { token: tokens.other })).statusCode).toBe(403);
      expect((await upload("test", body, { token: tokens.viewer })).statusCode).toBe(403);
      expect((await upload("nope", body)).statusCode).toBe(404);
      const badPart = await cp.app.inject({ method: "POST", url: "/v1/apps/shop/environments/test/backups/upload?part=both", headers: auth(cp.adminToken), payload: body });
      expect(badPart.statusCode).toBe(400);
    });
  });

  it("streams a download object by object: a client that goes away part way leaves the control plane serving", async () => {
    const id = await agentBackup("test", Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`part-${i}.bin`, randomBytes(2 * MiB)])));
    await cp.app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = cp.app.server.address() as { port: number };
    const partial = await new Promise<number>((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port, path: `/v1/backups/${id}/media`, headers: auth(cp.adminToken) }, (res) => {
        let n = 0;
        res.on("data", (d: Buffer) => {
          n += d.length;
          if (n > 3 * MiB) {
            req.destroy();
            resolve(n);
          }
        });
        res.on("error", () => undefined);
      });
      req.on("error", (e) => (e.message.includes("socket hang up") ? undefined : reject(e)));
    });
    expect(partial).toBeGreaterThan(3 * MiB);
    const whole = await fetch(`http://127.0.0.1:${port}/v1/backups/${id}/media`, { headers: auth(cp.adminToken) });
    expect(whole.status).toBe(200);
    expect(whole.headers.get("transfer-encoding")).toBe("chunked");
    const entries = await entriesOf(Buffer.from(await whole.arrayBuffer()));
    expect(Object.keys(entries)).toHaveLength(12);
    expect((await call("GET", "/healthz")).statusCode).toBe(200);
  });

  it("restores a media upload like any backup: a media-only restore after a safety backup of the target's media", async () => {
    const up = (await upload("live", await tarOf([{ name: "a.txt", content: Buffer.from("a") }]))).json();
    const res = await call("POST", `/v1/backups/${up.id}/restore`, { confirm: true }, tokens.deployer);
    expect(res.statusCode, res.body).toBe(202);
    const restore = res.json();
    expect(restore).toMatchObject({ kind: "restore", from: `backup:${up.id}`, to: "live", database: false, media: true, state: "queued" });
    expect((await call("GET", `/v1/backups/${restore.safetyBackupId}`)).json()).toMatchObject({ kind: "safety", environment: "live", database: false, media: true, state: "queued" });
    const job = await cp.database.db.selectFrom("jobs").selectAll().where("environment_id", "=", envIds.live!).orderBy("created_at", "desc").executeTakeFirstOrThrow();
    expect(job.spec).toMatchObject({ action: "restore", backupId: up.id, safetyBackupId: restore.safetyBackupId, database: false, media: true });
  });
});
