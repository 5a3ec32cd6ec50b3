import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testControlPlane, type DbKind, type TestControlPlane } from "./testing/harness.js";

// The REST contract of API.md, over both embedded PGlite and PostgreSQL.
describe.each<DbKind>(["pglite", "postgres"])("REST API on %s", (kind) => {
  let cp: TestControlPlane;
  const auth = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const count = async (table: "apps" | "deployments" | "jobs" | "environments" | "api_tokens") =>
    Number((await cp.database.db.selectFrom(table).select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n);

  beforeAll(async () => {
    cp = await testControlPlane(kind);
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("creates an app with test and live environments", async () => {
    const res = await cp.app.inject({ method: "POST", url: "/v1/apps", headers: auth(), payload: { name: "shop", repository: "https://git.example.test/shop.git" } });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body.environments.map((e: { name: string }) => e.name)).toEqual(["test", "live"]);
    expect(body.environments[0]).toMatchObject({
      branch: "main",
      state: "not_deployed",
      status: { message: "Server not deployed yet" },
      url: "http://shop-test.example.test/",
      replicas: 1,
      sleepAfterSeconds: 900,
    });
    expect(body.environments[1].sleepAfterSeconds).toBeNull();
    expect(body.settings.startupProbe).toEqual({ path: "/", acceptedStatuses: "200-499", startupTimeoutSeconds: 60, probeTimeoutSeconds: 10, maxRetries: 300 });
  });

  it("refuses bad input with the documented codes and writes nothing", async () => {
    const apps = await count("apps");
    const envs = await count("environments");
    const cases: Array<[string, string, unknown, Record<string, string>, number, string]> = [
      ["POST", "/v1/apps", { name: "Bad_Name", repository: "https://x.test/r.git" }, auth(), 400, "invalid_request"],
      ["POST", "/v1/apps", { name: "-x", repository: "https://x.test/r.git" }, auth(), 400, "invalid_request"],
      ["POST", "/v1/apps", { name: "okname", repository: "not a url" }, auth(), 400, "invalid_request"],
      ["POST", "/v1/apps", { name: "okname" }, auth(), 400, "invalid_request"],
      ["POST", "/v1/apps", { name: "okname", repository: "https://x.test/r.git", extra: 1 }, auth(), 400, "invalid_request"],
      ["POST", "/v1/apps", { name: "okname", repository: "https://x.test/r.git", settings: { startupProbe: { acceptedStatuses: "600" } } }, auth(), 400, "invalid_request"],
      ["POST", "/v1/apps", { name: "okname", repository: "https://x.test/r.git" }, {}, 401, "unauthenticated"],
      ["POST", "/v1/apps", { name: "okname", repository: "https://x.test/r.git" }, { authorization: "Bearer wrong-token" }, 401, "unauthenticated"],
      ["POST", "/v1/apps", { name: "okname", repository: "https://x.test/r.git" }, { authorization: "Basic abc" }, 401, "unauthenticated"],
      ["POST", "/v1/apps", { name: "shop", repository: "https://x.test/r.git" }, auth(), 409, "conflict"],
      ["GET", "/v1/apps/nope", undefined, auth(), 404, "not_found"],
      ["GET", "/v1/apps/shop/environments/qa", undefined, auth(), 404, "not_found"],
      ["POST", "/v1/apps/nope/environments/test/deployments", {}, auth(), 404, "not_found"],
      ["POST", "/v1/apps/shop/environments/test/deployments", { build: "sometimes" }, auth(), 400, "invalid_request"],
      ["POST", "/v1/apps/shop/environments/test/deployments", { build: "reuse" }, auth(), 409, "conflict"],
      ["PATCH", "/v1/apps/shop/environments/test", { branch: "bad..branch" }, auth(), 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/environments/test", { replicas: 3 }, auth(), 400, "invalid_request"],
      ["PATCH", "/v1/apps/shop/settings", { webPort: 70000 }, auth(), 400, "invalid_request"],
      ["GET", "/v1/deployments/00000000-0000-4000-8000-000000000000", undefined, auth(), 404, "not_found"],
      ["GET", "/v1/deployments/not-a-uuid", undefined, auth(), 400, "invalid_request"],
      ["GET", "/v1/nothing-here", undefined, auth(), 404, "not_found"],
    ];
    for (const [method, url, payload, headers, status, code] of cases) {
      const res = await cp.app.inject({ method: method as "GET", url, headers, ...(payload !== undefined ? { payload: payload as object } : {}) });
      expect({ method, url, status: res.statusCode, code: res.json().error?.code }).toEqual({ method, url, status, code });
      expect(typeof res.json().error.message).toBe("string");
    }
    const malformed = await cp.app.inject({ method: "POST", url: "/v1/apps", headers: { ...auth(), "content-type": "application/json" }, payload: "{not json" });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.code).toBe("invalid_request");
    expect(await count("apps")).toBe(apps);
    expect(await count("environments")).toBe(envs);
    expect(await count("deployments")).toBe(0);
  });

  it("names the invalid field in the error details", async () => {
    const res = await cp.app.inject({ method: "PATCH", url: "/v1/apps/shop/settings", headers: auth(), payload: { startupProbe: { probeTimeoutSeconds: 0 } } });
    expect(res.statusCode).toBe(400);
    expect(Object.keys(res.json().error.details)).toContain("startupProbe.probeTimeoutSeconds");
  });

  it("limits deployer tokens to their apps", async () => {
    await cp.app.inject({ method: "POST", url: "/v1/apps", headers: auth(), payload: { name: "other", repository: "https://x.test/o.git" } });
    const t = await cp.app.inject({ method: "POST", url: "/v1/tokens", headers: auth(), payload: { name: "ci", role: "deployer", apps: ["shop"] } });
    expect(t.statusCode).toBe(201);
    const deployer = { authorization: `Bearer ${t.json().token}` };
    expect((await cp.app.inject({ method: "GET", url: "/v1/apps/shop", headers: deployer })).statusCode).toBe(200);
    const denied = await cp.app.inject({ method: "GET", url: "/v1/apps/other", headers: deployer });
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error.code).toBe("forbidden");
    expect((await cp.app.inject({ method: "POST", url: "/v1/apps", headers: deployer, payload: { name: "mine", repository: "https://x.test/m.git" } })).statusCode).toBe(403);
    expect((await cp.app.inject({ method: "GET", url: "/v1/apps", headers: deployer })).json().map((a: { name: string }) => a.name)).toEqual(["shop"]);
  });

  it("writes a deployment and its job in one transaction, and refuses a second active one", async () => {
    const res = await cp.app.inject({ method: "POST", url: "/v1/apps/shop/environments/test/deployments", headers: auth(), payload: {} });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toMatchObject({ state: "queued", build: "auto", app: "shop", environment: "test" });
    const job = await cp.database.db.selectFrom("jobs").selectAll().where("deployment_id", "=", res.json().id).executeTakeFirstOrThrow();
    expect(job.state).toBe("queued");
    expect(job.published_at).toBeNull();
    expect(cp.published).toBeGreaterThan(0);
    const again = await cp.app.inject({ method: "POST", url: "/v1/apps/shop/environments/test/deployments", headers: auth(), payload: {} });
    expect(again.statusCode).toBe(409);
    expect(await count("jobs")).toBe(1);
    const env = await cp.app.inject({ method: "GET", url: "/v1/apps/shop/environments/test", headers: auth() });
    expect(env.json().state).toBe("deploying");
    const list = await cp.app.inject({ method: "GET", url: "/v1/apps/shop/environments/test/deployments", headers: auth() });
    expect(list.json()).toHaveLength(1);
    const cancel = await cp.app.inject({ method: "POST", url: `/v1/deployments/${res.json().id}/cancel`, headers: auth() });
    expect(cancel.statusCode).toBe(202);
    expect(cancel.json().state).toBe("cancelled");
    const envAfter = await cp.app.inject({ method: "GET", url: "/v1/apps/shop/environments/test", headers: auth() });
    expect(envAfter.json().state).toBe("not_deployed");
  });

  it("serves the OpenAPI document at /docs", async () => {
    const res = await cp.app.inject({ method: "GET", url: "/docs/json" });
    expect(res.statusCode).toBe(200);
    expect(Object.keys(res.json().paths)).toContain("/v1/apps/{app}/environments/{env}/deployments");
  });

  it("exposes platform series on /metrics without a token", async () => {
    const res = await cp.app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("text/plain");
    expect(res.body).toContain("# TYPE slipway_environments gauge");
    expect(res.body).toMatch(/^slipway_environments\{state="not_deployed"\} \d+$/m);
    expect(res.body).toMatch(/^slipway_deployments_total\{state="cancelled"\} 1$/m);
  });

  it("records activity", async () => {
    const res = await cp.app.inject({ method: "GET", url: "/v1/activity?app=shop", headers: auth() });
    expect(res.json().map((a: { action: string }) => a.action)).toEqual(expect.arrayContaining(["app.created", "deployment.requested"]));
  });

  it("pages an environment's deployments newest first with before=<the last id of a page>, without a gap or a repeat", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await cp.app.inject({ method: "POST", url: "/v1/apps/shop/environments/live/deployments", headers: auth(), payload: {} });
      expect(res.statusCode).toBe(202);
      ids.unshift(res.json().id);
      expect((await cp.app.inject({ method: "POST", url: `/v1/deployments/${res.json().id}/cancel`, headers: auth() })).statusCode).toBe(202);
    }
    const page = async (query: string) => {
      const res = await cp.app.inject({ method: "GET", url: `/v1/apps/shop/environments/live/deployments?${query}`, headers: auth() });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as Array<{ id: string }>).map((d) => d.id);
    };
    const first = await page("limit=2");
    const second = await page(`limit=2&before=${first[1]}`);
    const third = await page(`limit=2&before=${second[1]}`);
    expect([...first, ...second, ...third]).toEqual(ids);
    expect(third).toHaveLength(1);
    // A deployment of another environment is not a place in this list: 400, naming the parameter.
    const other = await cp.app.inject({ method: "POST", url: "/v1/apps/shop/environments/test/deployments", headers: auth(), payload: {} });
    await cp.app.inject({ method: "POST", url: `/v1/deployments/${other.json().id}/cancel`, headers: auth() });
    const refused = await cp.app.inject({ method: "GET", url: `/v1/apps/shop/environments/live/deployments?before=${other.json().id}`, headers: auth() });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.details).toEqual({ before: "not a deployment of this environment" });
  });
});
