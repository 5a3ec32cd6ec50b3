import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { testControlPlane, type TestControlPlane } from "./testing/harness.js";
import { MASK, basicAuthDigest } from "./services/environment.service.js";

// Environments as users expect them, at the REST edge over real PostgreSQL.
describe("environments, variables, domains and basic auth (REST)", () => {
  let cp: TestControlPlane;
  const h = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const call = (method: string, url: string, payload?: unknown, headers = h()) =>
    cp.app.inject({ method: method as "GET", url, headers, ...(payload !== undefined ? { payload: payload as object } : {}) });
  const dump = async () => JSON.stringify((await sql`SELECT * FROM environment_variables`.execute(cp.database.db)).rows) + JSON.stringify((await sql`SELECT * FROM jobs`.execute(cp.database.db)).rows) + JSON.stringify((await sql`SELECT * FROM environments`.execute(cp.database.db)).rows);

  beforeAll(async () => {
    cp = await testControlPlane("postgres");
    await call("POST", "/v1/apps", { name: "shop", repository: "https://x.test/shop.git" });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("adds environments from scratch and based on another", async () => {
    await call("PATCH", "/v1/apps/shop/environments/test", { branch: "develop", sleepAfterSeconds: 600, limits: { memoryMb: 256 }, autoDeploy: false });
    await call("PUT", "/v1/apps/shop/environments/test/variables", { API_KEY: "k-123", FEATURE: "on" });
    const qa = await call("POST", "/v1/apps/shop/environments", { name: "qa", basedOn: "test" });
    expect(qa.statusCode).toBe(201);
    expect(qa.json()).toMatchObject({ name: "qa", branch: "develop", sleepAfterSeconds: 600, replicas: 1, state: "not_deployed", domains: ["shop-qa.example.test"], autoDeploy: false, limitsDefault: false, limits: { memoryMb: 256 } });
    expect((await call("GET", "/v1/apps/shop/environments/qa/variables?reveal=true")).json()).toEqual({ API_KEY: "k-123", FEATURE: "on" });
    const dev = await call("POST", "/v1/apps/shop/environments", { name: "dev", branch: "feature/x" });
    expect(dev.json()).toMatchObject({ name: "dev", branch: "feature/x", sleepAfterSeconds: 900, autoDeploy: true, limitsDefault: true });
    expect((await call("GET", "/v1/apps/shop/environments")).json().map((e: { name: string }) => e.name)).toEqual(["test", "live", "qa", "dev"]);
  });

  it("lets no deployer copy live's secrets into an environment of their own (based on live: admins only), and a copy of live does not deploy on push", async () => {
    await call("PUT", "/v1/apps/shop/environments/live/variables", { LIVE_SECRET: "s3cr3t-live" });
    const created = await call("POST", "/v1/tokens", { name: "deployer-shop", role: "deployer", apps: ["shop"] });
    const deployer = { authorization: `Bearer ${created.json().token as string}` };
    const before = await dump();
    // The attack: a deployer may open a shell outside live; an environment based on live would carry live's variables there.
    const copy = await call("POST", "/v1/apps/shop/environments", { name: "peek", basedOn: "live" }, deployer);
    expect(copy.statusCode).toBe(403);
    expect(copy.json().error.message).toMatch(/live/);
    expect(await dump()).toBe(before);
    // A deployer may still base an environment on test; an admin may base one on live, which keeps live's "no deploy on push".
    expect((await call("POST", "/v1/apps/shop/environments", { name: "peek", basedOn: "test" }, deployer)).statusCode).toBe(201);
    const staging = await call("POST", "/v1/apps/shop/environments", { name: "staging", basedOn: "live" });
    expect(staging.statusCode).toBe(201);
    expect(staging.json().autoDeploy).toBe(false);
    for (const env of ["peek", "staging"]) expect((await call("DELETE", `/v1/apps/shop/environments/${env}?confirm=${env}`)).statusCode).toBe(202);
  });

  it("refuses bad environment requests and changes nothing", async () => {
    const cases: Array<[string, string, unknown, number, string]> = [
      ["POST", "/v1/apps/shop/environments", { name: "qa" }, 409, "conflict"],
      ["POST", "/v1/apps/shop/environments", { name: "Bad Name" }, 400, "invalid_request"],
      ["POST", "/v1/apps/shop/environments", { name: "x", basedOn: "nope" }, 404, "not_found"],
      ["DELETE", "/v1/apps/shop/environments/live?confirm=live", undefined, 409, "conflict"],
      ["DELETE", "/v1/apps/shop/environments/test?confirm=test", undefined, 409, "conflict"],
      ["DELETE", "/v1/apps/shop/environments/qa", undefined, 422, "precondition_failed"],
      ["DELETE", "/v1/apps/shop/environments/qa?confirm=dev", undefined, 422, "precondition_failed"],
      ["DELETE", "/v1/apps/shop?confirm=wrong", undefined, 422, "precondition_failed"],
      ["PATCH", "/v1/apps/shop/environments/live", { sleepAfterSeconds: 60 }, 400, "invalid_request"],
      // 0 is not "never" (that is null): refused, not coerced to null.
      ["PATCH", "/v1/apps/shop/environments/test", { sleepAfterSeconds: 0 }, 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/environments/qa", { replicas: 2 }, 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/environments/qa", { basicAuth: { username: "a:b", password: "longenough" } }, 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/environments/qa", { basicAuth: { username: "ann", password: "short" } }, 400, "invalid_request"],
      // HSTS without the redirect, out of range, unknown or empty: refused, nothing changed.
      ["PATCH", "/v1/apps/shop/environments/qa", { https: { hstsMaxAgeSeconds: 600 } }, 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/environments/qa", { https: { redirect: true, hstsMaxAgeSeconds: -1 } }, 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/environments/qa", { https: { redirect: true, hstsMaxAgeSeconds: 63_072_001 } }, 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/environments/qa", { https: { redirect: "yes" } }, 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/environments/qa", { https: { preload: true } }, 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/environments/qa", { https: {} }, 400, "invalid_request"],
      ["POST", "/v1/apps/shop/environments/qa/stop", undefined, 409, "conflict"],
      ["POST", "/v1/apps/shop/environments/qa/start", undefined, 409, "conflict"],
    ];
    const before = await dump();
    for (const [method, url, payload, status, code] of cases) {
      const res = await call(method, url, payload);
      expect({ method, url, status: res.statusCode, code: res.json().error?.code }).toEqual({ method, url, status, code });
    }
    expect(await dump()).toBe(before);
  });

  it("stores variables encrypted, masks them, and reveals them only to admins", async () => {
    await call("PATCH", "/v1/apps/shop/environments/test/variables", { DB_PASSWORD: "s3cr3t-plain-value", FEATURE: null });
    const listed = (await call("GET", "/v1/apps/shop/environments/test/variables")).json();
    expect(listed).toEqual({ API_KEY: MASK, DB_PASSWORD: MASK });
    expect((await call("GET", "/v1/apps/shop/environments/test/variables?reveal=true")).json()).toEqual({ API_KEY: "k-123", DB_PASSWORD: "s3cr3t-plain-value" });
    // Sending a listing back unchanged keeps the stored values.
    await call("PUT", "/v1/apps/shop/environments/test/variables", listed);
    expect((await call("GET", "/v1/apps/shop/environments/test/variables?reveal=true")).json()).toEqual({ API_KEY: "k-123", DB_PASSWORD: "s3cr3t-plain-value" });
    const deployer = (await call("POST", "/v1/tokens", { name: "ci", role: "deployer", apps: ["shop"] })).json().token;
    const denied = await call("GET", "/v1/apps/shop/environments/test/variables?reveal=true", undefined, { authorization: `Bearer ${deployer}` });
    expect(denied.statusCode).toBe(403);
    expect((await call("GET", "/v1/apps/shop/environments/test/variables", undefined, { authorization: `Bearer ${deployer}` })).statusCode).toBe(200);
    // A deployment freezes its spec into the jobs table: still no plain value anywhere in the database.
    expect((await call("POST", "/v1/apps/shop/environments/test/deployments", {})).statusCode).toBe(202);
    const everything = await dump();
    expect(everything).not.toContain("s3cr3t-plain-value");
    expect(everything).not.toContain("k-123");
    for (const bad of [{ "1ABC": "x" }, { "A-B": "x" }, { "": "x" }]) {
      expect((await call("PATCH", "/v1/apps/shop/environments/test/variables", bad)).statusCode).toBe(400);
    }
    expect((await call("PUT", "/v1/apps/shop/environments/test/variables", { A: null })).statusCode).toBe(400);
    expect((await call("PATCH", "/v1/apps/shop/environments/test/variables", { OBJ: { nested: true } })).statusCode).toBe(400);
  });

  it("counts a variable change as an unapplied change", async () => {
    const activity = (await call("GET", "/v1/activity?app=shop&env=test")).json();
    const change = activity.find((a: { action: string }) => a.action === "variables.changed");
    expect(change.details.keys).toEqual(expect.arrayContaining(["DB_PASSWORD", "FEATURE"]));
    expect(JSON.stringify(activity)).not.toContain("s3cr3t");
  });

  it("keeps custom domains unique across the platform and away from the base domain", async () => {
    await call("POST", "/v1/apps", { name: "blog", repository: "https://x.test/blog.git" });
    const ok = await call("POST", "/v1/apps/shop/environments/live/domains", { hostname: "WWW.Shop.Example.COM" });
    expect(ok.statusCode).toBe(201);
    expect(ok.json().domains).toEqual(["shop-live.example.test", "www.shop.example.com"]);
    expect((await call("POST", "/v1/apps/blog/environments/live/domains", { hostname: "www.shop.example.com" })).statusCode).toBe(409);
    expect((await call("POST", "/v1/apps/shop/environments/test/domains", { hostname: "www.shop.example.com" })).statusCode).toBe(409);
    expect((await call("POST", "/v1/apps/blog/environments/live/domains", { hostname: "blog-live.example.test" })).statusCode).toBe(400);
    expect((await call("POST", "/v1/apps/blog/environments/live/domains", { hostname: "not a host" })).statusCode).toBe(400);
    expect((await call("DELETE", "/v1/apps/blog/environments/live/domains/www.shop.example.com")).statusCode).toBe(404);
    expect((await call("DELETE", "/v1/apps/shop/environments/live/domains/www.shop.example.com")).json().domains).toEqual(["shop-live.example.test"]);
    expect((await call("POST", "/v1/apps/blog/environments/live/domains", { hostname: "www.shop.example.com" })).statusCode).toBe(201);
  });

  it("stores basic auth as a digest, never the password", async () => {
    const res = await call("PATCH", "/v1/apps/shop/environments/qa", { basicAuth: { username: "ann", password: "correct horse" } });
    expect(res.json().basicAuth).toEqual({ username: "ann" });
    const row = await cp.database.db.selectFrom("environments").selectAll().where("name", "=", "qa").executeTakeFirstOrThrow();
    expect(row.basic_auth_digest).toBe(basicAuthDigest("ann", "correct horse"));
    expect(await dump()).not.toContain("correct horse");
    expect((await call("PATCH", "/v1/apps/shop/environments/qa", { basicAuth: null })).json().basicAuth).toBeNull();
  });

  it("sets the HTTPS redirect and HSTS, shown in the view; HSTS alone is refused and names the field", async () => {
    expect((await call("GET", "/v1/apps/shop/environments/qa")).json().https).toEqual({ redirect: false, hstsMaxAgeSeconds: 0 });
    const alone = await call("PATCH", "/v1/apps/shop/environments/qa", { https: { hstsMaxAgeSeconds: 600 } });
    expect(alone.json().error.details).toEqual({ "https.hstsMaxAgeSeconds": "needs https.redirect" });
    const on = await call("PATCH", "/v1/apps/shop/environments/qa", { https: { redirect: true, hstsMaxAgeSeconds: 31_536_000 } });
    expect(on.statusCode).toBe(200);
    expect(on.json().https).toEqual({ redirect: true, hstsMaxAgeSeconds: 31_536_000 });
    // Turning the redirect off while HSTS stays set is the same mistake.
    expect((await call("PATCH", "/v1/apps/shop/environments/qa", { https: { redirect: false } })).statusCode).toBe(400);
    const off = await call("PATCH", "/v1/apps/shop/environments/qa", { https: { redirect: false, hstsMaxAgeSeconds: 0 } });
    expect(off.json().https).toEqual({ redirect: false, hstsMaxAgeSeconds: 0 });
    const activity = (await call("GET", "/v1/activity?app=shop&env=qa")).json() as Array<{ action: string; details: unknown }>;
    expect(activity.filter((a) => a.action === "environment.https_changed").map((a) => a.details)).toEqual([
      { redirect: false, hstsMaxAgeSeconds: 0 },
      { redirect: true, hstsMaxAgeSeconds: 31_536_000 },
    ]);
  });

  it("removes a custom environment with its records", async () => {
    const res = await call("DELETE", "/v1/apps/shop/environments/dev?confirm=dev");
    expect(res.statusCode).toBe(202);
    expect((await call("GET", "/v1/apps/shop/environments/dev")).statusCode).toBe(404);
    const again = await call("POST", "/v1/apps/shop/environments", { name: "dev" });
    expect(again.statusCode).toBe(201);
  });
});
