import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { setEnvironmentRow, testControlPlane, type DbKind, type TestControlPlane } from "./testing/harness.js";
import { insertHost } from "./repositories/hosts.repository.js";
import { getAppByName, getEnvironment } from "./repositories/apps.repository.js";

// Label constraints: an environment runs only on hosts with all its `hostLabels`.
describe.each<DbKind>(["pglite", "postgres"])("placement by host labels (REST, %s)", (kind) => {
  let cp: TestControlPlane;
  const h = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const call = (method: string, url: string, payload?: unknown) =>
    cp.app.inject({ method: method as "GET", url, headers: h(), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const host = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
  const deploymentOf = async (id: string) => cp.database.db.selectFrom("deployments").select(["host_id", "moved_from_host_id"]).where("id", "=", id).executeTakeFirstOrThrow();
  const snapshot = async () => JSON.stringify((await sql`SELECT id, host_id, host_labels, config_revision FROM environments ORDER BY id`.execute(cp.database.db)).rows) + JSON.stringify((await sql`SELECT id FROM deployments ORDER BY id`.execute(cp.database.db)).rows);

  beforeAll(async () => {
    cp = await testControlPlane(kind);
    // Host 1 (zone a, ssd) is busier than host 2 (zone b): without constraints host 2 would be chosen.
    await insertHost(cp.database.db, { id: host(1), name: "h1", labels: { zone: "a", disk: "ssd" }, credentialHash: "c1", version: "t", capacity: { cpus: 1, memoryBytes: 1, diskBytes: 1 } });
    await insertHost(cp.database.db, { id: host(2), name: "h2", labels: { zone: "b" }, credentialHash: "c2", version: "t", capacity: { cpus: 1, memoryBytes: 1, diskBytes: 1 } });
    await call("POST", "/v1/apps", { name: "busy", repository: "https://x.test/busy.git" });
    const app = await getAppByName(cp.database.db, "busy");
    for (const e of ["test", "live"]) await setEnvironmentRow(cp.database.db, (await getEnvironment(cp.database.db, app, e)).id, { host_id: host(1) });
    await call("POST", "/v1/apps", { name: "shop", repository: "https://x.test/shop.git" });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("places an environment only on a host with all its labels, even a busier one", async () => {
    const qa = await call("POST", "/v1/apps/shop/environments", { name: "qa", hostLabels: { zone: "a", disk: "ssd" } });
    expect(qa.statusCode).toBe(201);
    expect(qa.json().hostLabels).toEqual({ zone: "a", disk: "ssd" });
    const d = (await call("POST", "/v1/apps/shop/environments/qa/deployments", {})).json();
    expect(await deploymentOf(d.id)).toEqual({ host_id: host(1), moved_from_host_id: null });
    expect((await call("GET", "/v1/apps/shop/environments/qa")).json().host).toBe(host(1));
    // Without constraints: the least loaded host.
    const t = (await call("POST", "/v1/apps/shop/environments/test/deployments", {})).json();
    expect((await deploymentOf(t.id)).host_id).toBe(host(2));
    // Based on another environment: its constraints are copied.
    expect((await call("POST", "/v1/apps/shop/environments", { name: "qa2", basedOn: "qa" })).json().hostLabels).toEqual({ zone: "a", disk: "ssd" });
  });

  it("moves the environment at its next deployment when new labels no longer match its host", async () => {
    const db = cp.database.db;
    const qa = await getEnvironment(db, await getAppByName(db, "shop"), "qa");
    // As if the first deployment had succeeded on host 1.
    await db.updateTable("deployments").set({ state: "succeeded" }).where("environment_id", "=", qa.id).execute();
    await setEnvironmentRow(db, qa.id, { current_image: "slipway/shop:abc", deployed_config_revision: qa.config_revision, last_success_at: new Date() });
    const patched = await call("PATCH", "/v1/apps/shop/environments/qa", { hostLabels: { zone: "b" } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().hostLabels).toEqual({ zone: "b" });
    expect(patched.json().host).toBe(host(1));
    expect(patched.json().status.unappliedChanges).toBe(true);
    const d = (await call("POST", "/v1/apps/shop/environments/qa/deployments", {})).json();
    // An ordinary deployment on host 2; host 1 hands the traffic over when it succeeds.
    expect(await deploymentOf(d.id)).toEqual({ host_id: host(2), moved_from_host_id: host(1) });
  });

  it("refuses a deployment that must move when no host matches, and bad labels, changing nothing", async () => {
    const db = cp.database.db;
    const qa = await getEnvironment(db, await getAppByName(db, "shop"), "qa");
    await db.updateTable("deployments").set({ state: "succeeded" }).where("environment_id", "=", qa.id).execute();
    await call("PATCH", "/v1/apps/shop/environments/qa", { hostLabels: { zone: "c" } });
    const before = await snapshot();
    const r = await call("POST", "/v1/apps/shop/environments/qa/deployments", {});
    expect(r.statusCode).toBe(409);
    expect(r.json().error.message).toMatch(/lacks the labels zone=c, and no online, active host has them/);
    for (const [method, url, body] of [
      ["PATCH", "/v1/apps/shop/environments/qa", { hostLabels: { "bad key": "x" } }],
      ["PATCH", "/v1/apps/shop/environments/qa", { hostLabels: { zone: "no spaces" } }],
      ["PATCH", "/v1/apps/shop/environments/qa", { hostLabels: ["zone=a"] }],
      ["POST", "/v1/apps/shop/environments", { name: "qa3", hostLabels: { zone: { nested: "x" } } }],
      ["POST", "/v1/apps/shop/environments", { name: "qa4", hostLabels: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])) }],
    ] as const) {
      const res = await call(method, url, body);
      expect(res.statusCode, `${method} ${JSON.stringify(body)}`).toBe(400);
      expect(res.json().error.code).toBe("invalid_request");
    }
    expect(await snapshot()).toBe(before);
  });

  it("leaves the environment in place while it matches, and a drain honours its labels", async () => {
    await call("PATCH", "/v1/apps/shop/environments/qa", { hostLabels: {} });
    const db = cp.database.db;
    const qa = await getEnvironment(db, await getAppByName(db, "shop"), "qa");
    await db.updateTable("deployments").set({ state: "succeeded" }).where("environment_id", "=", qa.id).execute();
    const d = (await call("POST", "/v1/apps/shop/environments/qa/deployments", {})).json();
    expect(await deploymentOf(d.id)).toEqual({ host_id: host(1), moved_from_host_id: null });
    await db.updateTable("deployments").set({ state: "succeeded" }).where("environment_id", "=", qa.id).execute();

    // qa2 (zone=a, disk=ssd) runs on host 1, the only such host: draining host 1 is refused as a whole.
    const qa2 = await getEnvironment(db, await getAppByName(db, "shop"), "qa2");
    await setEnvironmentRow(db, qa2.id, { host_id: host(1), current_image: "slipway/shop:abc" });
    const before = await snapshot();
    const r = await call("POST", `/v1/hosts/${host(1)}/drain`);
    expect(r.statusCode).toBe(409);
    expect(r.json().error.message).toMatch(/no other online, active host with the labels disk=ssd,zone=a can take shop\/qa2; nothing was drained/);
    expect(await snapshot()).toBe(before);
    expect((await call("GET", `/v1/hosts/${host(1)}`)).json().state).toBe("online");
    // Without the constraint it can go: every environment on host 1 gets a move to host 2.
    await call("PATCH", "/v1/apps/shop/environments/qa2", { hostLabels: {} });
    const movesBefore = await db.selectFrom("deployments").select("id").where("moved_from_host_id", "=", host(1)).execute();
    expect((await call("POST", `/v1/hosts/${host(1)}/drain`)).statusCode).toBe(202);
    const moves = await db.selectFrom("deployments").innerJoin("environments", "environments.id", "deployments.environment_id").select(["environments.name", "deployments.host_id"]).where("moved_from_host_id", "=", host(1)).where("deployments.id", "not in", movesBefore.map((m) => m.id)).orderBy("environments.name").execute();
    expect(moves).toEqual([{ name: "qa", host_id: host(2) }, { name: "qa2", host_id: host(2) }]);
    // The busy app's environments never ran: they are simply unplaced, for their next deployment to place them.
    expect((await call("GET", "/v1/apps/busy/environments/test")).json().host).toBeNull();
  });
});
