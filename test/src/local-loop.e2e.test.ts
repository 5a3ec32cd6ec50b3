import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, repoRoot, type AgentHandle } from "./support/platform.js";
import { TestRepo } from "./support/git-repo.js";
import { dataAppFiles, vendorPg } from "./support/data-app.js";
import { getVia } from "./support/load.js";

const CLI = path.join(repoRoot, "bin/slipway");
const PG_ADMIN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";
/** The data app's own checksum of its table (support/data-app.ts), computed the same way on the local copy. */
const CHECKSUM_SQL = "SELECT count(*)::int AS n, coalesce(md5(string_agg(id || ':' || tag || ':' || encode(payload, 'hex'), ',' ORDER BY id)), '') AS h FROM items";

interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Every file below `dir`: its path relative to `dir` → sha256, as the data app reports its media objects. */
function filesOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const name = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(name);
      else out[name] = sha256(readFileSync(path.join(dir, name)));
    }
  };
  walk("");
  return out;
}

// Issue 13, the local loop: `slipway pull db` copies an environment's database (rows written by
// the deployed app through its DATABASE_URL) into a local database on this machine's PostgreSQL,
// `slipway push db` puts a changed local copy back, after a safety backup; `slipway pull media`
// and `push media` do the same with its media (objects the app wrote through DEFAULT_STORAGE_DSN)
// and a folder. The real CLI, control plane, agent, PostgreSQL, NATS and S3; the local side is
// the same cluster and a folder on this machine, as a developer's would be.
describe("the local loop: slipway pull / push, db and media", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  // The local databases are named after app and environment: a name of this run's own.
  const app = `loop${randomBytes(3).toString("hex")}`;
  const localDb = `${app}_test`;
  const scratchDb = `${app}_scratch`;
  const work = mkdtempSync(path.join(tmpdir(), "slipway-loop-"));
  const config = path.join(work, "config.json");
  let agent: AgentHandle;
  let admin: pg.Client;

  /** The CLI as a developer runs it: logged in through SLIPWAY_URL/SLIPWAY_TOKEN, libpq pointed at the local server. */
  const cli = (args: string[], env: Record<string, string> = {}, timeoutMs = 90_000, cwd = work) =>
    new Promise<CliResult>((resolve, reject) => {
      const p = spawn(CLI, args, {
        cwd,
        env: { PATH: process.env.PATH!, HOME: path.dirname(config), SLIPWAY_CONFIG: config, SLIPWAY_URL: platform.api.baseUrl, SLIPWAY_TOKEN: platform.api.token, PGHOST: "127.0.0.1", PGUSER: "postgres", ...env },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      const timer = setTimeout(() => {
        p.kill("SIGKILL");
        reject(new Error(`slipway ${args.join(" ")} did not exit within ${timeoutMs} ms; stdout ${JSON.stringify(out.slice(-500))}, stderr ${JSON.stringify(err.slice(-500))}`));
      }, timeoutMs);
      p.stdout.on("data", (d) => (out += d));
      p.stderr.on("data", (d) => (err += d));
      p.on("error", reject);
      p.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, out, err });
      });
      p.stdin.end();
    });
  /** The environment's rows as the deployed app sees them. */
  const remote = async () => {
    const r = await getVia(agent.ingressPort, `${app}-test.localhost`, "/checksum");
    if (r.status !== 200) throw new Error(`/checksum: ${r.status} ${r.body}`);
    const c = JSON.parse(r.body) as { count: number; rows: string };
    return { count: c.count, md5: c.rows };
  };
  /** The environment's media as the deployed app sees them: key below its media root → sha256. */
  const remoteMedia = async () => {
    const r = await getVia(agent.ingressPort, `${app}-test.localhost`, "/checksum");
    if (r.status !== 200) throw new Error(`/checksum: ${r.status} ${r.body}`);
    return (JSON.parse(r.body) as { objects: Record<string, string> }).objects;
  };
  /** A local database's rows, by the same checksum. */
  const local = async (db: string, sql = CHECKSUM_SQL) => {
    const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:5432/${db}` });
    await c.connect();
    try {
      const r = await c.query(sql);
      return r.rows[0] ? { count: Number(r.rows[0].n), md5: String(r.rows[0].h) } : undefined;
    } finally {
      await c.end();
    }
  };
  const localExists = async (db: string) => (await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [db])).rowCount === 1;
  const backups = () => platform.api.call<Array<Record<string, any>>>("GET", `/v1/apps/${app}/environments/test/backups`);

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    await platform.start();
    agent = await platform.addAgent();
    vendorPg(repo.dir);
    repo.commit(dataAppFiles, "data app");
    await platform.api.call("POST", "/v1/apps", { name: app, repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 20 } } });
    const d = await platform.api.deploy(app, "test");
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    const w = await getVia(agent.ingressPort, `${app}-test.localhost`, "/write?rows=30&objects=0&tag=platform");
    expect(w.body).toBe(JSON.stringify({ rows: 30, objects: 0 }));
  });
  afterAll(async () => {
    try {
      for (const db of [localDb, scratchDb]) await admin?.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
      await admin?.end().catch(() => undefined);
      rmSync(work, { recursive: true, force: true });
    } finally {
      await platform.stop();
    }
  });

  it("pulls the environment's database into a new local <app>_<env>: the same rows, byte for byte", async () => {
    const before = await remote();
    expect(before.count).toBe(30);
    const pulled = await cli(["pull", "db", app, "test"]);
    expect(pulled.code, pulled.err + pulled.out).toBe(0);
    expect(pulled.out).toMatch(new RegExp(`^pulled ${app}/test into the local database ${localDb}: backup [0-9a-f-]{36}, [\\d.]+ KiB\\n$`));
    // Progress on stderr: the backup's states, the bytes downloaded (of the announced length), the check.
    expect(pulled.err).toMatch(/backup [0-9a-f-]{36}: succeeded\n/);
    expect(pulled.err).toMatch(/downloading: [\d.]+ KiB of [\d.]+ KiB \(100%\)\n/);
    expect(pulled.err).toMatch(/archive [\d.]+ KiB, sha256 [0-9a-f]{64} \(checked\)\n/);
    expect(await local(localDb)).toEqual(before);
    // A backup of the database only, whose archive is the one checked.
    const id = /backup ([0-9a-f-]{36})/.exec(pulled.out)![1]!;
    const b = (await backups()).find((x) => x.id === id)!;
    expect(b).toMatchObject({ kind: "manual", state: "succeeded", database: true, media: false });
    expect(pulled.err).toContain(`sha256 ${b.databaseSha256} (checked)`);
    const activity = await platform.api.call<Array<{ action: string }>>("GET", `/v1/activity?app=${app}&env=test`);
    expect(activity.map((a) => a.action)).toContain("backup.downloaded");

    // Never over a database that is there already, unless told where with --to.
    const again = await cli(["pull", "db", app, "test"]);
    expect(again.code).toBe(1);
    expect(again.err).toBe(`slipway: a local database named ${localDb} already exists: drop it first (dropdb ${localDb}), or restore into it with --to postgres:///${localDb}\n`);
    expect(await local(localDb)).toEqual(before);
    await admin.query(`CREATE DATABASE "${scratchDb}"`);
    const into = await cli(["pull", "db", app, "test", "--to", `postgres://postgres@127.0.0.1:5432/${scratchDb}`, "--json"]);
    expect(into.code, into.err).toBe(0);
    expect(JSON.parse(into.out)).toMatchObject({ app, environment: "test", database: scratchDb, target: `127.0.0.1:5432/${scratchDb}` });
    expect(await local(scratchDb)).toEqual(before);
  });

  it("pushes a changed local copy back after a safety backup, which is listed with the environment's backups", async () => {
    const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:5432/${localDb}` });
    await c.connect();
    try {
      await c.query("INSERT INTO items (tag, payload) SELECT 'local-' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 5) g");
      await c.query("UPDATE items SET tag = 'changed locally' WHERE id = (SELECT min(id) FROM items)");
      await c.query("DELETE FROM items WHERE id = (SELECT max(id) FROM items WHERE tag LIKE 'platform-%')");
    } finally {
      await c.end();
    }
    const changed = (await local(localDb))!;
    expect(changed.count).toBe(34);
    const platformBefore = await remote();
    expect(platformBefore).not.toEqual(changed);

    // No terminal to confirm on: only with the flag, and nothing is sent without it.
    const refused = await cli(["push", "db", app, "test"]);
    expect(refused.code).toBe(2);
    expect(refused.err).toBe(`slipway: push db replaces the database of ${app}/test: run it in a terminal to confirm by typing ${app}/test, or add --yes-i-am-sure\n`);
    const before = await backups();

    const pushed = await cli(["push", "db", app, "test", "--yes-i-am-sure"]);
    expect(pushed.code, pushed.err + pushed.out).toBe(0);
    expect(pushed.err).toMatch(/uploading: [\d.]+ KiB of [\d.]+ KiB \(100%\)\n/);
    expect(pushed.err).toMatch(/restore [0-9a-f-]{36}: succeeded/);
    const m = new RegExp(`^pushed the local database ${localDb} to ${app}/test \\(backup ([0-9a-f-]{36}), [\\d.]+ KiB\\)\\nsafety backup ([0-9a-f-]{36}) holds the database as it was before; to put it back: slipway backups restore \\2 --yes\\n$`).exec(pushed.out);
    expect(m, pushed.out).not.toBeNull();
    const [, uploadId, safetyId] = m!;

    expect(await remote()).toEqual(changed);
    const after = await backups();
    expect(after).toHaveLength(before.length + 2);
    expect(after.find((b) => b.id === safetyId)).toMatchObject({ kind: "safety", state: "succeeded", database: true, media: false });
    expect(after.find((b) => b.id === uploadId)).toMatchObject({ kind: "upload", state: "succeeded", database: true, media: false, databaseSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    // The safety backup holds what the environment had: pulled into a scratch database, it reads as before.
    await admin.query(`DROP DATABASE IF EXISTS "${scratchDb}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${scratchDb}"`);
    const res = await fetch(`${platform.api.baseUrl}/v1/backups/${safetyId}/database`, { headers: { authorization: `Bearer ${platform.api.token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-slipway-sha256")).toBe(after.find((b) => b.id === safetyId)!.databaseSha256);
    expect(Buffer.from(await res.arrayBuffer()).subarray(0, 5).toString()).toBe("PGDMP");
  });

  it("lets no token but an admin's or the app's deployers' download a dump", async () => {
    const id = (await backups()).find((b) => b.kind === "upload")!.id as string;
    const token = async (role: string, apps: string[]) => (await platform.api.call("POST", "/v1/tokens", { name: `${role}-${apps[0]}`, role, apps })).token as string;
    const download = (t: string) => fetch(`${platform.api.baseUrl}/v1/backups/${id}/database`, { headers: { authorization: `Bearer ${t}` } });
    const other = await download(await token("deployer", ["some-other-app"]));
    expect(other.status).toBe(403);
    expect(((await other.json()) as { error: { message: string } }).error.message).toBe(`this token may not act on app '${app}'`);
    expect((await download(await token("viewer", [app]))).status).toBe(403);
    const own = await download(await token("deployer", [app]));
    expect(own.status).toBe(200);
    await own.arrayBuffer();
    // Through the CLI: refused at the backup it asks for, with the API's reason, and no local database made.
    const cliOther = await cli(["pull", "db", app, "test", "--to", `postgres://postgres@127.0.0.1:5432/${scratchDb}`], { SLIPWAY_TOKEN: await token("deployer", ["yet-another-app"]) });
    expect(cliOther.code).toBe(1);
    expect(cliOther.err).toBe(`slipway: this token may not act on app '${app}' (403 forbidden)\n`);
    await admin.query(`DROP DATABASE IF EXISTS "${localDb}" WITH (FORCE)`);
    const cliDefault = await cli(["pull", "db", app, "test"], { SLIPWAY_TOKEN: await token("deployer", ["and-another"]) });
    expect(cliDefault.code).toBe(1);
    expect(await localExists(localDb)).toBe(false);
  });

  it("pulls the environment's media into ./<app>-<env>-media: the same files, byte for byte", async () => {
    const w = await getVia(agent.ingressPort, `${app}-test.localhost`, "/write?rows=0&objects=5&tag=pic");
    expect(w.body).toBe(JSON.stringify({ rows: 0, objects: 5 }));
    const before = await remoteMedia();
    expect(Object.keys(before).sort()).toEqual(["media/pic-0.bin", "media/pic-1.bin", "media/pic-2.bin", "media/pic-3.bin", "media/pic-4.bin"]);

    const pulled = await cli(["pull", "media", app, "test"]);
    expect(pulled.code, pulled.err + pulled.out).toBe(0);
    const m = new RegExp(`^pulled the media of ${app}/test into \\./${app}-test-media: backup ([0-9a-f-]{36}), 5 files, [\\d.]+ KiB\\n$`).exec(pulled.out);
    expect(m, pulled.out).not.toBeNull();
    expect(pulled.err).toMatch(/backup [0-9a-f-]{36}: succeeded\n/);
    expect(pulled.err).toMatch(/downloading: 5 of 5 files, [\d.]+ KiB of [\d.]+ KiB \(100%\)\n/);
    const folder = path.join(work, `${app}-test-media`);
    expect(filesOf(folder)).toEqual(before);
    // A backup of the media only, listed with the environment's backups; the download is in the feed.
    const b = (await backups()).find((x) => x.id === m![1])!;
    expect(b).toMatchObject({ kind: "manual", state: "succeeded", database: false, media: true, mediaObjects: 5 });
    const activity = await platform.api.call<Array<{ action: string; details: { part?: string } }>>("GET", `/v1/activity?app=${app}&env=test`);
    expect(activity.some((a) => a.action === "backup.downloaded" && a.details.part === "media")).toBe(true);

    // Never into a folder that holds something, unless --to names it and --force says so.
    const again = await cli(["pull", "media", app, "test"]);
    expect(again.code).toBe(1);
    expect(again.err).toBe(`slipway: ./${app}-test-media exists and is not empty: pull into another folder with --to <dir>, or into this one with --to ./${app}-test-media --force\n`);
    const other = path.join(work, "elsewhere");
    const into = await cli(["pull", "media", app, "test", "--to", other, "--json"]);
    expect(into.code, into.err).toBe(0);
    expect(JSON.parse(into.out)).toMatchObject({ app, environment: "test", folder: other, files: 5 });
    expect(filesOf(other)).toEqual(before);
    const forced = await cli(["pull", "media", app, "test", "--to", other, "--force"]);
    expect(forced.code, forced.err).toBe(0);
  });

  it("pushes a changed folder back after a safety backup: the environment's media are the folder's files", async () => {
    const folder = path.join(work, `${app}-test-media`);
    const before = await remoteMedia();
    // Changed, removed, added (nested, empty, at the top).
    writeFileSync(path.join(folder, "media/pic-0.bin"), randomBytes(2000));
    rmSync(path.join(folder, "media/pic-1.bin"));
    mkdirSync(path.join(folder, "media/sub/deeper"), { recursive: true });
    writeFileSync(path.join(folder, "media/sub/deeper/new.txt"), "made locally\n");
    writeFileSync(path.join(folder, "media/empty.bin"), "");
    writeFileSync(path.join(folder, "notes.txt"), randomBytes(300_000));
    const local = filesOf(folder);
    expect(Object.keys(local)).toHaveLength(7);
    expect(local).not.toEqual(before);

    // No terminal to confirm on: only with the flag, and nothing is sent without it.
    const refused = await cli(["push", "media", app, "test"]);
    expect(refused.code).toBe(2);
    expect(refused.err).toBe(`slipway: push media replaces the media of ${app}/test: run it in a terminal to confirm by typing ${app}/test, or add --yes-i-am-sure\n`);
    const listed = await backups();

    const pushed = await cli(["push", "media", app, "test", "--yes-i-am-sure"]);
    expect(pushed.code, pushed.err + pushed.out).toBe(0);
    expect(pushed.err).toMatch(/uploading: 7 of 7 files, [\d.]+ KiB of [\d.]+ KiB \(100%\)\n/);
    expect(pushed.err).toMatch(/restore [0-9a-f-]{36}: succeeded/);
    const m = new RegExp(`^pushed 7 files \\([\\d.]+ KiB\\) from \\./${app}-test-media to ${app}/test \\(backup ([0-9a-f-]{36})\\)\\nsafety backup ([0-9a-f-]{36}) holds the media as they were before; to put them back: slipway backups restore \\2 --yes\\n$`).exec(pushed.out);
    expect(m, pushed.out).not.toBeNull();
    const [, uploadId, safetyId] = m!;

    expect(await remoteMedia()).toEqual(local);
    const after = await backups();
    expect(after).toHaveLength(listed.length + 2);
    expect(after.find((b) => b.id === safetyId)).toMatchObject({ kind: "safety", state: "succeeded", database: false, media: true, mediaObjects: 5 });
    expect(after.find((b) => b.id === uploadId)).toMatchObject({ kind: "upload", state: "succeeded", database: false, media: true, mediaObjects: 7 });

    // The safety backup holds the media as they were: its tar, read by GNU tar, has the files from before.
    const res = await fetch(`${platform.api.baseUrl}/v1/backups/${safetyId}/media`, { headers: { authorization: `Bearer ${platform.api.token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-tar");
    const tarFile = path.join(work, "safety.tar");
    writeFileSync(tarFile, Buffer.from(await res.arrayBuffer()));
    const safetyDir = path.join(work, "safety");
    mkdirSync(safetyDir);
    execFileSync("tar", ["-xf", tarFile, "-C", safetyDir]);
    expect(filesOf(safetyDir)).toEqual(before);
  });

  it("lets no token but an admin's or the app's deployers' download media", async () => {
    const id = (await backups()).find((b) => b.kind === "upload" && b.media)!.id as string;
    const token = async (role: string, apps: string[]) => (await platform.api.call("POST", "/v1/tokens", { name: `${role}-media-${apps[0]}`, role, apps })).token as string;
    const download = (t: string) => fetch(`${platform.api.baseUrl}/v1/backups/${id}/media`, { headers: { authorization: `Bearer ${t}` } });
    const other = await download(await token("deployer", ["some-other-app"]));
    expect(other.status).toBe(403);
    expect(((await other.json()) as { error: { message: string } }).error.message).toBe(`this token may not act on app '${app}'`);
    const viewer = await download(await token("viewer", [app]));
    expect(viewer.status).toBe(403);
    expect(((await viewer.json()) as { error: { message: string } }).error.message).toMatch(/viewer's: an environment's media hold everything its users uploaded/);
    const own = await download(await token("deployer", [app]));
    expect(own.status).toBe(200);
    await own.arrayBuffer();
    // Through the CLI: refused at the backup it asks for, with the API's reason, and no folder made.
    const cliOther = await cli(["pull", "media", app, "test", "--to", path.join(work, "refused")], { SLIPWAY_TOKEN: await token("deployer", ["yet-another-app"]) });
    expect(cliOther.code).toBe(1);
    expect(cliOther.err).toBe(`slipway: this token may not act on app '${app}' (403 forbidden)\n`);
    expect(readdirSync(work)).not.toContain("refused");
  });
});
