import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { clearForwards, environmentsServing, listForwards, recordForward } from "./forwards.repository.js";
import { insertHost, setHostAdminState } from "./hosts.repository.js";

// Which environments a certificate's names reach (issue 15: every host serving a covered name gets it).
describe("environmentsServing: the environments a certificate's names cover", () => {
  let cp: TestControlPlane;
  const ids: Record<string, string> = {};
  const call = async (method: string, url: string, payload?: unknown) => {
    const res = await cp.app.inject({ method: method as "GET", url, headers: { authorization: `Bearer ${cp.adminToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return res.json();
  };

  beforeAll(async () => {
    cp = await testControlPlane("pglite");
    for (const app of ["shop", "blog"]) await call("POST", "/v1/apps", { name: app, repository: "https://git.example.test/x.git" });
    await call("POST", "/v1/apps/shop/environments/live/domains", { hostname: "shop.example.com" });
    await call("POST", "/v1/apps/shop/environments/test/domains", { hostname: "a.b.example.com" });
    await call("POST", "/v1/apps/blog/environments/live/domains", { hostname: "blog.example.org" });
    const rows = await cp.database.db.selectFrom("environments").innerJoin("apps", "apps.id", "environments.app_id").select(["environments.id", "apps.name as app", "environments.name as env"]).execute();
    for (const r of rows) ids[`${r.app}/${r.env}`] = r.id;
  });
  afterAll(async () => {
    await cp?.close();
  });

  const serving = async (names: string[]) => (await environmentsServing(cp.database.db, names, "example.test")).map((id) => Object.keys(ids).find((k) => ids[k] === id)).sort();

  it("an exact name reaches the environment whose custom domain or default host name it is", async () => {
    expect(await serving(["shop.example.com"])).toEqual(["shop/live"]);
    expect(await serving(["blog-test.example.test"])).toEqual(["blog/test"]);
    expect(await serving(["SHOP.example.com", "blog.example.org"])).toEqual(["blog/live", "shop/live"]);
    expect(await serving(["nobody.example.com", "x.blog-test.example.test"])).toEqual([]);
  });

  it("forwards: recorded and re-pointed per host, none on a revoked host, cleared when the environment is placed there again", async () => {
    const db = cp.database.db;
    const host = (n: number) => `00000000-0000-4000-8000-00000000000${n}`;
    for (const n of [1, 2]) await insertHost(db, { id: host(n), name: `h${n}`, labels: {}, credentialHash: `c${n}`, version: "t", capacity: { cpus: 1, memoryBytes: 1, diskBytes: 1 } });
    const env = ids["shop/live"]!;
    await recordForward(db, env, host(1), "10.0.0.2:80");
    await recordForward(db, env, host(2), "10.0.0.3:80");
    await recordForward(db, env, host(1), "10.0.0.9:80");
    expect((await listForwards(db, [env])).map((f) => [f.host_id, f.forward_to])).toEqual([
      [host(1), "10.0.0.9:80"],
      [host(2), "10.0.0.3:80"],
    ]);
    await setHostAdminState(db, host(2), "revoked");
    expect((await listForwards(db, [env])).map((f) => f.host_id)).toEqual([host(1)]);
    await clearForwards(db, [env], host(1));
    expect(await listForwards(db, [env])).toEqual([]);
  });

  it("a wildcard covers exactly one label: custom domains under it, and every default host name under the base domain", async () => {
    expect(await serving(["*.example.com"])).toEqual(["shop/live"]); // a.b.example.com is two labels down
    expect(await serving(["*.b.example.com"])).toEqual(["shop/test"]);
    expect(await serving(["*.example.test"])).toEqual(["blog/live", "blog/test", "shop/live", "shop/test"]);
    // LIKE's wildcards in a name are literal.
    expect(await serving(["*.exam_le.com", "*.%"])).toEqual([]);
  });
});
