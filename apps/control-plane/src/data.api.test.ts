import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { testControlPlane, type TestControlPlane } from "./testing/harness.js";

// Content copies, restores and backups at the REST edge: the refusals change nothing.
describe("content and backups (REST)", () => {
  let cp: TestControlPlane;
  const h = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const call = (method: string, url: string, payload?: unknown) =>
    cp.app.inject({ method: method as "GET", url, headers: h(), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const counts = async () => {
    const q = async (t: string) => Number(((await sql`SELECT count(*) AS n FROM ${sql.table(t)}`.execute(cp.database.db)).rows[0] as { n: string }).n);
    return { copies: await q("content_copies"), backups: await q("backups"), jobs: await q("jobs"), deployments: await q("deployments") };
  };

  beforeAll(async () => {
    cp = await testControlPlane("postgres");
    await call("POST", "/v1/apps", { name: "shop", repository: "https://x.test/shop.git" });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("refuses bad content copies and restores with the documented codes, changing nothing", async () => {
    const before = await counts();
    const cases: Array<[string, string, unknown, number, string]> = [
      ["POST", "/v1/apps/shop/environments/live/content-copies", { from: "live", confirm: true }, 400, "invalid_request"],
      ["POST", "/v1/apps/shop/environments/live/content-copies", { from: "nope", confirm: true }, 404, "not_found"],
      ["POST", "/v1/apps/shop/environments/live/content-copies", { from: "test" }, 422, "precondition_failed"],
      ["POST", "/v1/apps/shop/environments/live/content-copies", { from: "test", confirm: false }, 422, "precondition_failed"],
      ["POST", "/v1/apps/shop/environments/live/content-copies", { from: "test", database: false, media: false, confirm: true }, 400, "invalid_request"],
      ["POST", "/v1/apps/shop/environments/live/content-copies", { confirm: true }, 400, "invalid_request"],
      ["POST", "/v1/apps/shop/environments/live/deployments", { content: { from: "test" } }, 422, "precondition_failed"],
      ["POST", "/v1/apps/shop/environments/live/deployments", { content: { from: "live", confirm: true } }, 400, "invalid_request"],
      ["POST", "/v1/apps/shop/environments/live/deployments", { content: { from: "qa", confirm: true } }, 404, "not_found"],
      ["POST", "/v1/apps/shop/environments/live/backups", { database: false, media: false }, 400, "invalid_request"],
      ["POST", "/v1/backups/00000000-0000-4000-8000-000000000000/restore", { confirm: true }, 404, "not_found"],
      ["GET", "/v1/content-copies/00000000-0000-4000-8000-000000000000", undefined, 404, "not_found"],
    ];
    for (const [method, url, payload, status, code] of cases) {
      const res = await call(method, url, payload);
      expect({ url, payload, status: res.statusCode, code: res.json().error?.code }).toEqual({ url, payload, status, code });
    }
    expect(await counts()).toEqual(before);
  });

  it("allows one content job per environment at a time, and takes a backup of the target first", async () => {
    const first = await call("POST", "/v1/apps/shop/environments/live/content-copies", { from: "test", confirm: true });
    expect(first.statusCode).toBe(202);
    expect(first.json()).toMatchObject({ kind: "copy", from: "test", to: "live", state: "queued", progress: { bytes: 0, objects: 0 } });
    expect(first.json().safetyBackupId).toMatch(/[0-9a-f-]{36}/);
    const before = await counts();
    const second = await call("POST", "/v1/apps/shop/environments/live/content-copies", { from: "test", confirm: true });
    expect(second.statusCode).toBe(409);
    const asDeploy = await call("POST", "/v1/apps/shop/environments/live/deployments", { content: { from: "test", confirm: true } });
    expect(asDeploy.statusCode).toBe(409);
    expect(await counts()).toEqual(before);
    const backups = (await call("GET", "/v1/apps/shop/environments/live/backups")).json();
    expect(backups).toHaveLength(1);
    expect(backups[0]).toMatchObject({ kind: "safety", state: "queued", database: true, media: true });
    // A copy into another environment is independent.
    expect((await call("POST", "/v1/apps/shop/environments/test/content-copies", { from: "live", database: true, media: false, confirm: true })).statusCode).toBe(202);
  });

  it("provisions the environment's own database and hands its URL and storage DSN to the deployment", async () => {
    // The copy into test queued above must end first: one operation per environment (issue 11).
    await sql`UPDATE content_copies SET state = 'succeeded', finished_at = now() WHERE target = 'test'`.execute(cp.database.db);
    await sql`UPDATE backups SET state = 'succeeded', finished_at = now() WHERE environment = 'test'`.execute(cp.database.db);
    const res = await call("POST", "/v1/apps/shop/environments/test/deployments", {});
    expect(res.statusCode).toBe(202);
    const job = await cp.database.db.selectFrom("jobs").selectAll().where("deployment_id", "=", res.json().id).executeTakeFirstOrThrow();
    const vars = cp.services.environments.unseal((job.spec as { variablesSealed: string }).variablesSealed);
    // Named after the environment's id (issue 11), never after app and environment names.
    const id = (await cp.database.db.selectFrom("environments").innerJoin("apps", "apps.id", "environments.app_id").select("environments.id").where("apps.name", "=", "shop").where("environments.name", "=", "test").executeTakeFirstOrThrow()).id;
    const name = `t[0-9a-f]{8}_e_${id.replace(/-/g, "")}`;
    expect(vars.DATABASE_URL).toMatch(new RegExp(`^postgres://${name}:[^@]+@host\\.docker\\.internal:5432/${name}$`));
    expect(vars.DEFAULT_STORAGE_DSN).toBe(`s3://k:s@media/envs/${id}/?endpoint=http%3A%2F%2Fhost.docker.internal%3A9&region=us-east-1&path_style=true`);
    expect(vars.STAGE).toBe("test");
  });

  it("keeps a backup schedule per environment: live daily by default", async () => {
    expect((await call("GET", "/v1/apps/shop/environments/live/backup-schedule")).json()).toEqual({ enabled: true, retention: { daily: 7, weekly: 4, monthly: 12 } });
    expect((await call("GET", "/v1/apps/shop/environments/test/backup-schedule")).json().enabled).toBe(false);
    const put = await call("PUT", "/v1/apps/shop/environments/test/backup-schedule", { enabled: true, retention: { daily: 3, weekly: 0, monthly: 1 } });
    expect(put.json()).toEqual({ enabled: true, retention: { daily: 3, weekly: 0, monthly: 1 } });
    expect((await call("PUT", "/v1/apps/shop/environments/test/backup-schedule", { enabled: true, retention: { daily: -1, weekly: 0, monthly: 0 } })).statusCode).toBe(400);
  });
});
