import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { dataAppFiles, vendorPg } from "./support/data-app.js";
import { getVia } from "./support/load.js";
import { waitFor } from "./support/processes.js";

const PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres";

async function admin<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const u = new URL(PG_ADMIN);
  u.pathname = `/${database}`;
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** The DATABASE_URL the environment's running web container got. */
function containerDatabaseUrl(app: string, env: string): URL {
  const id = execFileSync("docker", ["ps", "-q", "--filter", `label=io.slipway.app=${app}`, "--filter", `label=io.slipway.environment=${env}`, "--filter", "label=io.slipway.role=web"], { encoding: "utf8" }).trim().split("\n")[0]!;
  const vars = JSON.parse(execFileSync("docker", ["inspect", "-f", "{{json .Config.Env}}", id], { encoding: "utf8" })) as string[];
  return new URL(vars.find((v) => v.startsWith("DATABASE_URL="))!.slice("DATABASE_URL=".length));
}

// Issue 11, must show 1: app `shop` creating environment `api-live` cannot reach app `shop-api`'s
// live (database, role, host name); apps whose `<app>--<env>` backend and network names used to be
// equal (a--b/c and a/b--c) each keep their own. The built control plane and agent, real
// PostgreSQL cluster, dockerd and HAProxy; checked with pg against the cluster and through the ingress.
describe("identifiers that cannot collide, end to end", () => {
  const platform = new Platform({ database: "postgres" });
  const dataRepo = new TestRepo();
  let agent: AgentHandle;
  const api = () => platform.api;
  const via = (host: string, p = "/") => getVia(agent.ingressPort, host, p);

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent();
    vendorPg(dataRepo.dir);
    dataRepo.commit(dataAppFiles, "data app");
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("refuses shop/api-live with 409 naming shop-api/live; shop-api's rows, role password and host name are untouched", async () => {
    await api().call("POST", "/v1/apps", { name: "shop-api", repository: dataRepo.url, settings: { startupProbe: { startupTimeoutSeconds: 20 } } });
    await api().call("POST", "/v1/apps", { name: "shop", repository: dataRepo.url, settings: { startupProbe: { startupTimeoutSeconds: 20 } } });
    const d = await api().deploy("shop-api", "live");
    expect(d.state, await api().log(d.id)).toBe("succeeded");
    const written = await via("shop-api-live.localhost", "/write?rows=12&objects=3&tag=victim");
    expect(written.status, written.body).toBe(200);
    expect(JSON.parse(written.body)).toEqual({ rows: 12, objects: 3 });
    const checksumBefore = await via("shop-api-live.localhost", "/checksum");
    expect(checksumBefore.status).toBe(200);
    const victim = containerDatabaseUrl("shop-api", "live");
    const victimDb = victim.pathname.slice(1);
    const victimRole = decodeURIComponent(victim.username);
    const rowsOf = () => admin(victimDb, async (c) => (await c.query("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) AS sum, count(*)::int AS n FROM items t")).rows[0]).catch((err: Error) => err.message);
    const passwordOf = () => admin("postgres", async (c) => (await c.query("SELECT rolpassword FROM pg_authid WHERE rolname = $1", [victimRole])).rows[0]?.rolpassword as string | undefined);
    const rowsBefore = await rowsOf();
    const passwordBefore = await passwordOf();
    expect(rowsBefore).toMatchObject({ n: 12 });
    expect(passwordBefore).toBeTruthy();

    const created = await api().raw("POST", "/v1/apps/shop/environments", { name: "api-live" });
    if (created.status < 300) {
      // The attack as it went before the fix: deploy "its" environment, then remove it.
      await api().deploy("shop", "api-live").catch(() => undefined);
      await api().raw("DELETE", "/v1/apps/shop/environments/api-live?confirm=api-live");
    }

    expect(await rowsOf()).toEqual(rowsBefore);
    expect(await passwordOf()).toBe(passwordBefore);
    expect(await via("shop-api-live.localhost", "/checksum")).toEqual(checksumBefore);
    expect(created.status).toBe(409);
    expect(created.body.error).toMatchObject({ code: "conflict", message: "host name shop-api-live.localhost is already used by shop-api/live" });
    expect((await api().call("GET", "/v1/apps/shop/environments")).map((e: { name: string }) => e.name)).toEqual(["test", "live"]);
  });

  it("serves a--b/c and a/b--c each from its own containers, and removing one leaves the other", async () => {
    const ab = new TestRepo();
    const a = new TestRepo();
    ab.commit(helloApp("I am a--b/c"), "a--b");
    a.commit(helloApp("I am a/b--c"), "a");
    await api().call("POST", "/v1/apps", { name: "a--b", repository: ab.url, settings: { startupProbe: { startupTimeoutSeconds: 8 } } });
    await api().call("POST", "/v1/apps", { name: "a", repository: a.url, settings: { startupProbe: { startupTimeoutSeconds: 8 } } });
    await api().call("POST", "/v1/apps/a--b/environments", { name: "c" });
    await api().call("POST", "/v1/apps/a/environments", { name: "b--c" });
    for (const [app, env] of [["a--b", "c"], ["a", "b--c"]] as const) {
      const d = await api().deploy(app, env);
      expect(d.state, await api().log(d.id)).toBe("succeeded");
    }
    expect(await via("a--b-c.localhost")).toEqual({ status: 200, body: "I am a--b/c" });
    expect(await via("a-b--c.localhost")).toEqual({ status: 200, body: "I am a/b--c" });
    const networks = (ids: string) => execFileSync("docker", ["inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}", ...ids.split("\n")], { encoding: "utf8" }).trim().split("\n");
    const web = (app: string, env: string) => execFileSync("docker", ["ps", "-q", "--filter", `label=io.slipway.app=${app}`, "--filter", `label=io.slipway.environment=${env}`, "--filter", "label=io.slipway.role=web"], { encoding: "utf8" }).trim();
    const [netAb] = networks(web("a--b", "c"));
    const [netA] = networks(web("a", "b--c"));
    expect(netAb).not.toBe(netA);

    await api().call("DELETE", "/v1/apps/a/environments/b--c?confirm=b--c");
    await waitFor("a/b--c's host name to go", async () => (await via("a-b--c.localhost")).status === 404, { timeoutMs: 30_000, intervalMs: 100 });
    expect(await via("a--b-c.localhost")).toEqual({ status: 200, body: "I am a--b/c" });
    expect(web("a--b", "c")).not.toBe("");
  });
});
