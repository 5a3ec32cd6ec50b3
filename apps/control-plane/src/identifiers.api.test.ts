import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import pg from "pg";
import { testControlPlane, type TestControlPlane } from "./testing/harness.js";

const PG_ADMIN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A database URL with another database name (the admin's credentials on the victim's database). */
function onDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

// Issue 11, "Identifiers that cannot collide": app `shop` with environment `api-live` used to get
// the database, role and default host name of app `shop-api`'s `live` (`slw_shop_api_live`,
// `shop-api-live.<base>`). Through the public API, over real PostgreSQL, with the real provisioner.
describe("identifiers that cannot collide (REST, PostgreSQL)", () => {
  let cp: TestControlPlane;
  const h = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const call = (method: string, url: string, payload?: unknown) =>
    cp.app.inject({ method: method as "GET", url, headers: h(), ...(payload !== undefined ? { payload: payload as object } : {}) });
  /** Every row a refused request must leave alone. */
  const dump = async () => {
    const rows = async (t: string) => JSON.stringify((await sql`SELECT * FROM ${sql.table(t)} ORDER BY 1`.execute(cp.database.db)).rows);
    return [await rows("apps"), await rows("environments"), await rows("domains"), await rows("activity"), await rows("jobs"), await rows("deployments")].join("\n");
  };
  /** The DATABASE_URL a deployment hands to the environment's containers, pointed at loopback. */
  const deployedDatabaseUrl = async (app: string, env: string) => {
    const res = await call("POST", `/v1/apps/${app}/environments/${env}/deployments`, {});
    expect(res.statusCode, res.body).toBe(202);
    const job = await cp.database.db.selectFrom("jobs").selectAll().where("deployment_id", "=", res.json().id).executeTakeFirstOrThrow();
    const vars = cp.services.environments.unseal((job.spec as { variablesSealed: string }).variablesSealed);
    const u = new URL(vars.DATABASE_URL!);
    u.hostname = "127.0.0.1";
    return { url: u.toString(), deploymentId: res.json().id as string, vars };
  };
  const environmentId = async (app: string, env: string) =>
    (await cp.database.db.selectFrom("environments").innerJoin("apps", "apps.id", "environments.app_id").select("environments.id").where("apps.name", "=", app).where("environments.name", "=", env).executeTakeFirstOrThrow()).id;
  const rolePassword = (role: string) => withClient(PG_ADMIN, async (c) => (await c.query<{ rolpassword: string }>("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [role])).rows[0]?.rolpassword);

  beforeAll(async () => {
    cp = await testControlPlane("postgres");
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("refuses shop/api-live while shop-api/live exists: 409 naming the owner; shop-api's rows, role password and host name stay", async () => {
    expect((await call("POST", "/v1/apps", { name: "shop-api", repository: "https://x.test/shop-api.git" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps", { name: "shop", repository: "https://x.test/shop.git" })).statusCode).toBe(201);
    const victim = await deployedDatabaseUrl("shop-api", "live");
    const victimDb = new URL(victim.url).pathname.slice(1);
    const victimRole = decodeURIComponent(new URL(victim.url).username);
    await withClient(victim.url, async (c) => {
      await c.query("CREATE TABLE orders (id int primary key, item text)");
      await c.query("INSERT INTO orders VALUES (1, 'the victim''s order')");
    });
    const passwordBefore = await rolePassword(victimRole);
    expect(passwordBefore).toBeTruthy();
    const before = await dump();

    const created = await call("POST", "/v1/apps/shop/environments", { name: "api-live" });
    if (created.statusCode < 300) {
      // What the attack did next: a deployment (which provisions "its" database), then the removal.
      const attacker = await deployedDatabaseUrl("shop", "api-live");
      await call("POST", `/v1/deployments/${attacker.deploymentId}/cancel`);
      await call("DELETE", "/v1/apps/shop/environments/api-live?confirm=api-live");
    }

    // shop-api/live is untouched: its rows (read as the cluster's admin), its role's password, its host name.
    const rows = await withClient(onDatabase(PG_ADMIN, victimDb), async (c) => (await c.query("SELECT id, item FROM orders")).rows).catch((err: Error) => err.message);
    expect(rows).toEqual([{ id: 1, item: "the victim's order" }]);
    expect(await rolePassword(victimRole)).toBe(passwordBefore);
    expect((await call("GET", "/v1/apps/shop-api/environments/live")).json().domains).toEqual(["shop-api-live.example.test"]);

    expect(created.statusCode, created.body).toBe(409);
    expect(created.json().error).toMatchObject({ code: "conflict", message: "host name shop-api-live.example.test is already used by shop-api/live" });
    expect(await dump()).toBe(before);
    expect((await call("GET", "/v1/apps/shop/environments")).json().map((e: { name: string }) => e.name)).toEqual(["test", "live"]);
  });

  it("names every database and role after the environment's id, never after app and environment names", async () => {
    const { url, vars } = await deployedDatabaseUrl("shop", "test");
    const id = (await environmentId("shop", "test")).replace(/-/g, "");
    const u = new URL(url);
    expect(u.pathname).toMatch(new RegExp(`^/t[0-9a-f]{8}_e_${id}$`));
    expect(decodeURIComponent(u.username)).toBe(u.pathname.slice(1));
    const stored = await cp.database.db.selectFrom("environments").select(["database_name", "database_role", "media_prefix"]).where("id", "=", await environmentId("shop", "test")).executeTakeFirstOrThrow();
    expect(stored).toEqual({ database_name: u.pathname.slice(1), database_role: u.pathname.slice(1), media_prefix: `envs/${await environmentId("shop", "test")}/` });
    expect(vars.DEFAULT_STORAGE_DSN).toContain(`@media/envs/${await environmentId("shop", "test")}/?`);
  });

  it("refuses an app whose test or live host name another environment already has, writing nothing", async () => {
    expect((await call("POST", "/v1/apps", { name: "blog", repository: "https://x.test/blog.git" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps/blog/environments", { name: "news-live" })).statusCode).toBe(201);
    const before = await dump();
    const res = await call("POST", "/v1/apps", { name: "blog-news", repository: "https://x.test/blog-news.git" });
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json().error.message).toBe("host name blog-news-live.example.test is already used by blog/news-live");
    expect(await dump()).toBe(before);
    expect((await call("GET", "/v1/apps/blog-news")).statusCode).toBe(404);
  });

  it("refuses a custom domain that is another environment's host name, naming the owner", async () => {
    const before = await dump();
    const taken = await call("POST", "/v1/apps/shop/environments/test/domains", { hostname: "shop-api-live.example.test" });
    expect(taken.statusCode, taken.body).toBe(409);
    expect(taken.json().error.message).toBe("host name shop-api-live.example.test is already used by shop-api/live");
    expect(await dump()).toBe(before);
    expect((await call("POST", "/v1/apps/shop-api/environments/live/domains", { hostname: "api.shop.example.com" })).statusCode).toBe(201);
    const custom = await call("POST", "/v1/apps/shop/environments/live/domains", { hostname: "API.shop.example.com" });
    expect(custom.statusCode).toBe(409);
    expect(custom.json().error.message).toBe("host name api.shop.example.com is already used by shop-api/live");
  });

  it("decides two concurrent colliding creations in the database: one is created, the other gets 409", async () => {
    expect((await call("POST", "/v1/apps", { name: "x-y", repository: "https://x.test/xy.git" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps", { name: "x", repository: "https://x.test/x.git" })).statusCode).toBe(201);
    const [a, b] = await Promise.all([call("POST", "/v1/apps/x/environments", { name: "y-qa" }), call("POST", "/v1/apps/x-y/environments", { name: "qa" })]);
    expect([a.statusCode, b.statusCode].sort()).toEqual([201, 409]);
    const loser = a.statusCode === 409 ? a : b;
    expect(loser.json().error.message).toMatch(/^host name x-y-qa\.example\.test is already used by (x\/y-qa|x-y\/qa)$/);
    const labels = await cp.database.db.selectFrom("environments").select("host_label").where("host_label", "=", "x-y-qa").execute();
    expect(labels).toHaveLength(1);
  });

  it("environments provisioned before names were recorded keep their database; a second claim on the same name is refused and drops nothing", async () => {
    // Two environments as an installation before migration 0010 could have them: leg-a/live and leg/a-live,
    // both provisioned under the name derived from their names, <prefix>_leg_a_live.
    expect((await call("POST", "/v1/apps", { name: "leg-a", repository: "https://x.test/leg-a.git" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps", { name: "leg", repository: "https://x.test/leg.git" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps/leg/environments", { name: "zz" })).statusCode).toBe(201);
    const db = cp.database.db;
    await db.updateTable("environments").set({ name: "a-live" }).where("id", "=", await environmentId("leg", "zz")).execute();
    const owner = await deployedDatabaseUrl("leg-a", "live");
    const recorded = new URL(owner.url).pathname.slice(1);
    const legacy = `${recorded.split("_e_")[0]}_leg_a_live`;
    await withClient(PG_ADMIN, async (c) => {
      await c.query(`ALTER DATABASE ${recorded} RENAME TO ${legacy}`);
      await c.query(`ALTER ROLE ${recorded} RENAME TO ${legacy}`);
    });
    const ownerId = await environmentId("leg-a", "live");
    const sealed = (await db.selectFrom("environments").select("db_password_encrypted").where("id", "=", ownerId).executeTakeFirstOrThrow()).db_password_encrypted;
    await db.updateTable("environments").set({ database_name: null, database_role: null }).where("id", "=", ownerId).execute();
    await db.updateTable("environments").set({ db_password_encrypted: sealed, database_name: null, database_role: null }).where("id", "=", await environmentId("leg", "a-live")).execute();
    await withClient(onDatabase(PG_ADMIN, legacy), (c) => c.query("CREATE TABLE t (v text); INSERT INTO t VALUES ('from before 0010')"));

    // The first to need it records the name it was created under, and keeps its data.
    await call("POST", `/v1/deployments/${owner.deploymentId}/cancel`);
    const again = await deployedDatabaseUrl("leg-a", "live");
    expect(new URL(again.url).pathname).toBe(`/${legacy}`);
    expect(await db.selectFrom("environments").select(["database_name", "database_role"]).where("id", "=", ownerId).executeTakeFirstOrThrow()).toEqual({ database_name: legacy, database_role: legacy });
    await call("POST", `/v1/deployments/${again.deploymentId}/cancel`);

    // The other one is refused, naming the owner; removing it leaves the database and its password alone.
    const passwordBefore = await rolePassword(legacy);
    const refused = await call("POST", "/v1/apps/leg/environments/a-live/deployments", {});
    expect(refused.statusCode, refused.body).toBe(409);
    expect(refused.json().error.message).toBe(`database ${legacy} of leg/a-live (named before migration 0010) is already used by leg-a/live`);
    expect((await call("DELETE", "/v1/apps/leg/environments/a-live?confirm=a-live")).statusCode).toBe(202);
    expect(await withClient(onDatabase(PG_ADMIN, legacy), async (c) => (await c.query("SELECT v FROM t")).rows)).toEqual([{ v: "from before 0010" }]);
    expect(await rolePassword(legacy)).toBe(passwordBefore);
  });

  it("removing an environment drops only its own database: a colliding name of another app's environment stays", async () => {
    // HAProxy backends and Docker networks were `<app>--<env>`: a--b/c and a/b--c shared one.
    expect((await call("POST", "/v1/apps", { name: "a--b", repository: "https://x.test/ab.git" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps", { name: "a", repository: "https://x.test/a.git" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps/a--b/environments", { name: "c" })).statusCode).toBe(201);
    expect((await call("POST", "/v1/apps/a/environments", { name: "b--c" })).statusCode).toBe(201);
    const keep = await deployedDatabaseUrl("a--b", "c");
    const gone = await deployedDatabaseUrl("a", "b--c");
    expect(new URL(keep.url).pathname).not.toBe(new URL(gone.url).pathname);
    await withClient(keep.url, (c) => c.query("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"));
    await call("POST", `/v1/deployments/${gone.deploymentId}/cancel`);
    expect((await call("DELETE", "/v1/apps/a/environments/b--c?confirm=b--c")).statusCode).toBe(202);
    const dbs = await withClient(PG_ADMIN, async (c) => (await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname = ANY($1)", [[new URL(keep.url).pathname.slice(1), new URL(gone.url).pathname.slice(1)]])).rows.map((r) => r.datname));
    expect(dbs).toEqual([new URL(keep.url).pathname.slice(1)]);
    expect(await withClient(keep.url, async (c) => (await c.query("SELECT v FROM kept")).rows)).toEqual([{ v: "still here" }]);
  });
});
