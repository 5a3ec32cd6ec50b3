import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setEnvironmentRow, testControlPlane, type DbKind, type TestControlPlane } from "./testing/harness.js";
import { insertHost } from "./repositories/hosts.repository.js";
import { recordActivity } from "./repositories/activity.repository.js";
import { getAppByName, getEnvironment } from "./repositories/apps.repository.js";

// What the dashboard's Fleet and Activity pages read beyond the first API (issue 14): a host's
// admin state beside its derived state, a drain's outcome (moved, left, failed with the reason,
// done), and older pages of the activity feed (`before`).
describe.each<DbKind>(["pglite", "postgres"])("fleet and activity for the dashboard (REST, %s)", (kind) => {
  let cp: TestControlPlane;
  const call = (method: string, url: string, payload?: unknown, token?: string) =>
    cp.app.inject({ method: method as "GET", url, headers: { authorization: `Bearer ${token ?? cp.adminToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
  const host = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
  const capacity = { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 };

  beforeAll(async () => {
    cp = await testControlPlane(kind);
    await insertHost(cp.database.db, { id: host(1), name: "h1", labels: {}, credentialHash: "c1", version: "t", capacity });
    await insertHost(cp.database.db, { id: host(2), name: "h2", labels: {}, credentialHash: "c2", version: "t", capacity });
    await call("POST", "/v1/apps", { name: "shop", repository: "https://x.test/shop.git" });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("shows a host's admin state beside its state", async () => {
    expect((await call("GET", `/v1/hosts/${host(1)}`)).json()).toMatchObject({ state: "online", adminState: "active" });
    expect((await call("POST", `/v1/hosts/${host(2)}/cordon`)).json()).toMatchObject({ state: "cordoned", adminState: "cordoned" });
    const listed = (await call("GET", "/v1/hosts")).json() as Array<{ id: string; adminState: string }>;
    expect(listed.find((h) => h.id === host(2))?.adminState).toBe("cordoned");
    // Offline wins in `state`; the admin state still says it is cordoned.
    await cp.database.db.updateTable("hosts").set({ last_heartbeat_at: new Date(Date.now() - 60_000) }).where("id", "=", host(2)).execute();
    expect((await call("GET", `/v1/hosts/${host(2)}`)).json()).toMatchObject({ state: "offline", adminState: "cordoned" });
    await cp.database.db.updateTable("hosts").set({ last_heartbeat_at: new Date() }).where("id", "=", host(2)).execute();
    expect((await call("POST", `/v1/hosts/${host(2)}/uncordon`)).json()).toMatchObject({ state: "online", adminState: "active" });
    // A host that never drained says so.
    expect((await call("GET", `/v1/hosts/${host(2)}/drain`)).json()).toMatchObject({ state: "not_draining", startedAt: null, environments: 0, moved: 0, failed: [] });
    expect((await call("GET", `/v1/hosts/00000000-0000-4000-8000-000000000099/drain`)).statusCode).toBe(404);
  });

  it("reports a drain's progress: moving, then failed with the deployment's reason, then done with what it moved", async () => {
    const db = cp.database.db;
    const shop = await getAppByName(db, "shop");
    for (const e of ["test", "live"]) await setEnvironmentRow(db, (await getEnvironment(db, shop, e)).id, { host_id: host(1), current_image: "slipway/shop:abc" });
    const started = await call("POST", `/v1/hosts/${host(1)}/drain`);
    expect(started.statusCode).toBe(202);
    expect(started.json()).toMatchObject({ state: "running", environments: 2, moving: 2, moved: 0, failed: [] });
    expect(Date.parse(started.json().startedAt)).toBeGreaterThan(Date.now() - 60_000);

    const moveOf = async (env: string) =>
      db.selectFrom("deployments").select("id").where("environment_id", "=", (await getEnvironment(db, shop, env)).id).where("moved_from_host_id", "=", host(1)).executeTakeFirstOrThrow();
    const test = await moveOf("test");
    const live = await moveOf("live");
    // test moved (the lifecycle places it on host 2 on success), live's move failed.
    await db.updateTable("deployments").set({ state: "succeeded", finished_at: new Date() }).where("id", "=", test.id).execute();
    await setEnvironmentRow(db, (await getEnvironment(db, shop, "test")).id, { host_id: host(2) });
    expect((await call("GET", `/v1/hosts/${host(1)}/drain`)).json()).toMatchObject({ state: "running", environments: 1, moving: 1, moved: 1 });
    await db.updateTable("deployments").set({ state: "failed", finished_at: new Date(), error: JSON.stringify({ type: "probe", message: "the startup probe never answered" }) as never }).where("id", "=", live.id).execute();
    const failed = (await call("GET", `/v1/hosts/${host(1)}/drain`)).json();
    expect(failed).toMatchObject({ state: "failed", environments: 1, moving: 0, moved: 1 });
    expect(failed.failed).toEqual([{ app: "shop", environment: "live", deployment: live.id, state: "failed", reason: "the startup probe never answered" }]);

    // Live moved after all (a deployment of its own): nothing is left, the drain is done.
    await setEnvironmentRow(db, (await getEnvironment(db, shop, "live")).id, { host_id: host(2) });
    expect((await call("GET", `/v1/hosts/${host(1)}/drain`)).json()).toMatchObject({ state: "done", environments: 0, moving: 0, moved: 1, failed: [], remaining: [] });
    // Uncordoned, the host no longer drains.
    await call("POST", `/v1/hosts/${host(1)}/uncordon`);
    expect((await call("GET", `/v1/hosts/${host(1)}/drain`)).json().state).toBe("not_draining");
  });

  it("pages the activity feed to older entries with before, newest first, filtered and authorised as before", async () => {
    const db = cp.database.db;
    for (let i = 0; i < 5; i++) await recordActivity(db, { actor: "test", app: "shop", environment: "qa", action: `test.step${i}` });
    const first = (await call("GET", "/v1/activity?app=shop&env=qa&limit=2")).json() as Array<{ id: number; action: string }>;
    expect(first.map((e) => e.action)).toEqual(["test.step4", "test.step3"]);
    const second = (await call("GET", `/v1/activity?app=shop&env=qa&limit=2&before=${first[1]!.id}`)).json() as Array<{ id: number; action: string }>;
    expect(second.map((e) => e.action)).toEqual(["test.step2", "test.step1"]);
    const last = (await call("GET", `/v1/activity?app=shop&env=qa&limit=2&before=${second[1]!.id}`)).json() as Array<{ action: string }>;
    expect(last.map((e) => e.action)).toEqual(["test.step0"]);
    expect((await call("GET", `/v1/activity?app=shop&env=qa&before=${second[1]!.id}&limit=10`)).json()).toHaveLength(1);
    // The whole feed pages the same way.
    const all = (await call("GET", `/v1/activity?limit=1&before=${first[0]!.id}`)).json() as Array<{ action: string }>;
    expect(all.map((e) => e.action)).toEqual(["test.step3"]);
    for (const bad of ["0", "-1", "x", "1.5"]) {
      const r = await call("GET", `/v1/activity?app=shop&before=${bad}`);
      expect(r.statusCode, bad).toBe(400);
      expect(r.json().error.details).toHaveProperty("before");
    }
    // A viewer pages its app's feed, and still not another's nor the whole feed.
    const viewer = (await call("POST", "/v1/tokens", { name: "viewer-shop", role: "viewer", apps: ["shop"] })).json().token as string;
    expect((await call("GET", `/v1/activity?app=shop&before=${first[0]!.id}&limit=1`, undefined, viewer)).json()).toHaveLength(1);
    expect((await call("GET", `/v1/activity?before=${first[0]!.id}`, undefined, viewer)).statusCode).toBe(403);
    expect((await call("GET", `/v1/activity?app=other&before=${first[0]!.id}`, undefined, viewer)).statusCode).toBe(403);
  });
});
