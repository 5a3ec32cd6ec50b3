import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { testControlPlane, type DbKind, type TestControlPlane } from "./testing/harness.js";

// Issue 11, found 6: one deployment or data operation per environment at a time, and no
// removal under one. Jobs stay queued (no agent): queued counts as running here.
describe.each<DbKind>(["pglite", "postgres"])("one operation per environment (%s)", (kind) => {
  let cp: TestControlPlane;
  const h = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const call = (method: string, url: string, payload?: unknown) =>
    cp.app.inject({ method: method as "GET", url, headers: h(), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const counts = async () => {
    const q = async (t: string) => Number(((await sql`SELECT count(*) AS n FROM ${sql.table(t)}`.execute(cp.database.db)).rows[0] as { n: string }).n);
    return { copies: await q("content_copies"), backups: await q("backups"), jobs: await q("jobs"), deployments: await q("deployments"), environments: await q("environments"), apps: await q("apps") };
  };
  let n = 0;
  const newApp = async () => {
    const name = `app${++n}`;
    expect((await call("POST", "/v1/apps", { name, repository: "https://x.test/shop.git" })).statusCode).toBe(201);
    return name;
  };
  /** A finished backup of app/env, as if an agent had written it. */
  const finishedBackup = async (app: string, env: string): Promise<string> => {
    const res = await call("POST", `/v1/apps/${app}/environments/${env}/backups`, { database: true, media: true });
    expect(res.statusCode).toBe(202);
    const id = res.json().id as string;
    await sql`UPDATE backups SET state = 'succeeded', finished_at = now(), database_bytes = 1, media_bytes = 0, media_objects = 0 WHERE id = ${id}`.execute(cp.database.db);
    await sql`UPDATE jobs SET state = 'succeeded' WHERE id = (SELECT job_id FROM backups WHERE id = ${id})`.execute(cp.database.db);
    return id;
  };
  const expectConflictNaming = (res: { statusCode: number; json: () => { error?: { code: string; message: string; details?: unknown } } }, op: string, id: string) => {
    expect(res.statusCode).toBe(409);
    const error = res.json().error!;
    expect(error.code).toBe("conflict");
    expect(error.message).toContain(id);
    expect(error.details).toMatchObject({ operation: op, id });
  };

  beforeAll(async () => {
    cp = await testControlPlane(kind);
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("refuses a restore into an environment whose deployment is running, writing nothing", async () => {
    const app = await newApp();
    const backup = await finishedBackup(app, "live");
    const deploy = await call("POST", `/v1/apps/${app}/environments/live/deployments`, {});
    expect(deploy.statusCode).toBe(202);
    const before = await counts();
    expectConflictNaming(await call("POST", `/v1/backups/${backup}/restore`, { confirm: true }), "deployment", deploy.json().id);
    expect(await counts()).toEqual(before);
    // Into another environment of the same app, nothing runs: it goes ahead.
    expect((await call("POST", `/v1/backups/${backup}/restore`, { into: "test", confirm: true })).statusCode).toBe(202);
  });

  it("refuses a deployment while a backup, content copy or restore of the environment runs, even queued behind it", async () => {
    const app = await newApp();
    const backup = await call("POST", `/v1/apps/${app}/environments/live/backups`, { database: true, media: false });
    expect(backup.statusCode).toBe(202);
    let before = await counts();
    expectConflictNaming(await call("POST", `/v1/apps/${app}/environments/live/deployments`, {}), "backup", backup.json().id);
    expectConflictNaming(await call("POST", `/v1/apps/${app}/environments/live/deployments`, { queue: true }), "backup", backup.json().id);
    expectConflictNaming(await call("POST", `/v1/apps/${app}/environments/live/deployments`, { content: { from: "test", confirm: true } }), "backup", backup.json().id);
    expect(await counts()).toEqual(before);

    const copy = await call("POST", `/v1/apps/${app}/environments/test/content-copies`, { from: "live", confirm: true });
    expect(copy.statusCode).toBe(202);
    before = await counts();
    expectConflictNaming(await call("POST", `/v1/apps/${app}/environments/test/deployments`, { queue: true }), "copy", copy.json().id);
    expect(await counts()).toEqual(before);

    const other = await newApp();
    const done = await finishedBackup(other, "live");
    const restore = await call("POST", `/v1/backups/${done}/restore`, { confirm: true });
    expect(restore.statusCode).toBe(202);
    before = await counts();
    expectConflictNaming(await call("POST", `/v1/apps/${other}/environments/live/deployments`, {}), "restore", restore.json().id);
    // A backup during a restore would read half-restored content.
    expectConflictNaming(await call("POST", `/v1/apps/${other}/environments/live/backups`, { database: true, media: true }), "restore", restore.json().id);
    expect(await counts()).toEqual(before);
  });

  it("refuses a content copy or a backup during a deployment, but still queues a deployment behind a deployment", async () => {
    const app = await newApp();
    const deploy = await call("POST", `/v1/apps/${app}/environments/live/deployments`, {});
    expect(deploy.statusCode).toBe(202);
    const before = await counts();
    expectConflictNaming(await call("POST", `/v1/apps/${app}/environments/live/content-copies`, { from: "test", confirm: true }), "deployment", deploy.json().id);
    expectConflictNaming(await call("POST", `/v1/apps/${app}/environments/live/backups`, { database: true, media: true }), "deployment", deploy.json().id);
    expect(await counts()).toEqual(before);
    const behind = await call("POST", `/v1/apps/${app}/environments/live/deployments`, { queue: true });
    expect(behind.statusCode).toBe(202);
    expect(behind.json().waiting).toBe(true);
  });

  it("refuses to remove an environment or its app under a running backup, copy or restore; nothing is half-deleted", async () => {
    const app = await newApp();
    expect((await call("POST", `/v1/apps/${app}/environments`, { name: "qa" })).statusCode).toBe(201);
    const backup = await call("POST", `/v1/apps/${app}/environments/qa/backups`, { database: true, media: true });
    expect(backup.statusCode).toBe(202);
    let before = await counts();
    expectConflictNaming(await call("DELETE", `/v1/apps/${app}/environments/qa?confirm=qa`), "backup", backup.json().id);
    expectConflictNaming(await call("DELETE", `/v1/apps/${app}?confirm=${app}`), "backup", backup.json().id);
    expect(await counts()).toEqual(before);
    expect((await call("GET", `/v1/apps/${app}/environments/qa`)).statusCode).toBe(200);
    expect(await call("GET", `/v1/apps/${app}/environments/qa/backups`).then((r) => r.json().map((b: { id: string }) => b.id))).toEqual([backup.json().id]);

    const copy = await call("POST", `/v1/apps/${app}/environments/live/content-copies`, { from: "test", confirm: true });
    expect(copy.statusCode).toBe(202);
    before = await counts();
    expectConflictNaming(await call("DELETE", `/v1/apps/${app}?confirm=${app}`), "copy", copy.json().id);
    expect(await counts()).toEqual(before);

    const other = await newApp();
    expect((await call("POST", `/v1/apps/${other}/environments`, { name: "qa" })).statusCode).toBe(201);
    const done = await finishedBackup(other, "live");
    const restore = await call("POST", `/v1/backups/${done}/restore`, { into: "qa", confirm: true });
    expect(restore.statusCode).toBe(202);
    before = await counts();
    expectConflictNaming(await call("DELETE", `/v1/apps/${other}/environments/qa?confirm=qa`), "restore", restore.json().id);
    expect(await counts()).toEqual(before);
    expect((await call("GET", `/v1/apps/${other}/environments/qa`)).statusCode).toBe(200);
  });

  it("refuses to remove the environment a running copy or restore reads from (its data, or the backup), writing nothing", async () => {
    const app = await newApp();
    expect((await call("POST", `/v1/apps/${app}/environments`, { name: "qa" })).statusCode).toBe(201);
    // qa is the source: the copy into test dumps qa's database and copies its media.
    const copy = await call("POST", `/v1/apps/${app}/environments/test/content-copies`, { from: "qa", confirm: true });
    expect(copy.statusCode).toBe(202);
    let before = await counts();
    expectConflictNaming(await call("DELETE", `/v1/apps/${app}/environments/qa?confirm=qa`), "copy", copy.json().id);
    expect(await counts()).toEqual(before);
    expect((await call("GET", `/v1/apps/${app}/environments/qa`)).statusCode).toBe(200);

    // A restore into test of a backup of staging: removing staging would delete the backup it reads.
    const other = await newApp();
    expect((await call("POST", `/v1/apps/${other}/environments`, { name: "staging" })).statusCode).toBe(201);
    const done = await finishedBackup(other, "staging");
    const restore = await call("POST", `/v1/backups/${done}/restore`, { into: "test", confirm: true });
    expect(restore.statusCode).toBe(202);
    before = await counts();
    expectConflictNaming(await call("DELETE", `/v1/apps/${other}/environments/staging?confirm=staging`), "restore", restore.json().id);
    expect(await counts()).toEqual(before);
  });

  it("takes a safety backup of the target before a restore, and the restore names it", async () => {
    const app = await newApp();
    const backup = await finishedBackup(app, "live");
    const res = await call("POST", `/v1/backups/${backup}/restore`, { into: "test", confirm: true });
    expect(res.statusCode).toBe(202);
    const safetyId = res.json().safetyBackupId as string;
    expect(safetyId).toMatch(/^[0-9a-f-]{36}$/);
    const backups = (await call("GET", `/v1/apps/${app}/environments/test/backups`)).json();
    expect(backups).toEqual([expect.objectContaining({ id: safetyId, kind: "safety", state: "queued", database: true, media: true })]);
    // The same job writes it, before it touches the target: the agent gets both locations.
    const row = await cp.database.db.selectFrom("content_copies").select("job_id").where("id", "=", res.json().id).executeTakeFirstOrThrow();
    const job = await cp.database.db.selectFrom("jobs").select("spec").where("id", "=", row.job_id!).executeTakeFirstOrThrow();
    const spec = await cp.services.data.dataSpec(job.spec as Parameters<TestControlPlane["services"]["data"]["dataSpec"]>[0]);
    expect(spec.action).toBe("restore");
    expect(spec.backup?.backupId).toBe(backup);
    expect(spec.safetyBackup?.backupId).toBe(safetyId);
    expect(spec.safetyBackup?.location?.bucket).toBe("backups");
  });

  it("skips a scheduled backup while a deployment runs, without failing it", async () => {
    const app = await newApp();
    expect((await call("POST", `/v1/apps/${app}/environments/live/deployments`, {})).statusCode).toBe(202);
    await cp.services.data.runSchedule();
    const scheduled = (await call("GET", `/v1/apps/${app}/environments/live/backups`)).json();
    expect(scheduled).toEqual([]);
  });

  it.runIf(kind === "postgres")("lets only one of several racing requests through", async () => {
    const app = await newApp();
    // Provisioned first: two first provisionings at once collide on CREATE ROLE, a separate matter.
    const appRow = await cp.database.db.selectFrom("apps").selectAll().where("name", "=", app).executeTakeFirstOrThrow();
    for (const env of await cp.database.db.selectFrom("environments").selectAll().where("app_id", "=", appRow.id).execute()) await cp.services.data.ensureData(appRow, env);
    const results = await Promise.all([
      call("POST", `/v1/apps/${app}/environments/live/backups`, { database: true, media: true }),
      call("POST", `/v1/apps/${app}/environments/live/content-copies`, { from: "test", confirm: true }),
      call("POST", `/v1/apps/${app}/environments/live/deployments`, {}),
      call("POST", `/v1/apps/${app}/environments/live/backups`, { database: false, media: true }),
    ]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([202, 409, 409, 409]);
  });
});
