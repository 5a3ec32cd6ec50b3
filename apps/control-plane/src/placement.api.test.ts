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
    await insertHost(cp.database.db, { id: host(1), name: "h1", labels: { zone: "a", disk: "ssd" }, credentialHash: "c1", version: "t", capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 } });
    await insertHost(cp.database.db, { id: host(2), name: "h2", labels: { zone: "b" }, credentialHash: "c2", version: "t", capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 } });
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

// Issue 12, must show 6: placement by capacity. Each environment requests its limits × replicas;
// a host takes it while its memory, and its cores × the CPU overcommit (8), cover what it already holds.
describe.each<DbKind>(["pglite", "postgres"])("placement by capacity (REST, %s)", (kind) => {
  let cp: TestControlPlane;
  const h = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const call = (method: string, url: string, payload?: unknown) =>
    cp.app.inject({ method: method as "GET", url, headers: h(), ...(payload !== undefined ? { payload: payload as object } : {}) });
  const host = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
  const GiB = 2 ** 30;
  const hostOfDeployment = async (id: string) => (await cp.database.db.selectFrom("deployments").select("host_id").where("id", "=", id).executeTakeFirstOrThrow()).host_id;
  const snapshot = async () => JSON.stringify((await sql`SELECT id, host_id, limits, config_revision FROM environments ORDER BY id`.execute(cp.database.db)).rows) + JSON.stringify((await sql`SELECT id FROM deployments ORDER BY id`.execute(cp.database.db)).rows) + JSON.stringify((await sql`SELECT count(*) AS n FROM jobs`.execute(cp.database.db)).rows);

  beforeAll(async () => {
    cp = await testControlPlane(kind);
    // big: 4 cores (32 with the overcommit), 8 GiB; small: 1 core (8), 2 GiB.
    await insertHost(cp.database.db, { id: host(1), name: "big", labels: {}, credentialHash: "c1", version: "t", capacity: { cpus: 4, memoryBytes: 8 * GiB, diskBytes: 1e12 } });
    await insertHost(cp.database.db, { id: host(2), name: "small", labels: {}, credentialHash: "c2", version: "t", capacity: { cpus: 1, memoryBytes: 2 * GiB, diskBytes: 1e12 } });
    await call("POST", "/v1/apps", { name: "cap", repository: "https://x.test/cap.git" });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("sets an environment's limits as an unapplied change, shows them, and refuses limits out of bounds", async () => {
    const before = (await call("GET", "/v1/apps/cap/environments/test")).json();
    expect(before.limits).toEqual({ memoryMb: 512, cpus: 1, pids: 512 });
    expect(before.limitsDefault).toBe(true);
    const r = await call("PATCH", "/v1/apps/cap/environments/test", { limits: { memoryMb: 3072, cpus: 0.5 } });
    expect(r.statusCode).toBe(200);
    expect(r.json().limits).toEqual({ memoryMb: 3072, cpus: 0.5, pids: 512 });
    expect(r.json().limitsDefault).toBe(false);
    const unchanged = await snapshot();
    for (const limits of [{ memoryMb: 8 }, { memoryMb: 1.5 }, { cpus: 0.001 }, { cpus: 300 }, { pids: 1 }, { pids: "many" }, { swap: 1 }, {}, "512m"]) {
      const bad = await call("PATCH", "/v1/apps/cap/environments/test", { limits });
      expect(bad.statusCode, JSON.stringify(limits)).toBe(400);
      expect(bad.json().error.code).toBe("invalid_request");
    }
    expect(await snapshot()).toBe(unchanged);
    // Activity says what changed.
    const activity = (await call("GET", "/v1/activity?app=cap&env=test")).json() as Array<{ action: string; details: { limits?: unknown } }>;
    expect(activity.find((a) => a.action === "environment.changed")?.details.limits).toEqual({ memoryMb: 3072, cpus: 0.5 });
  });

  it("places on the host with the most room, and shows what each host's environments request", async () => {
    // test asks 3 GiB: only big has room (small has 2 GiB).
    const t = (await call("POST", "/v1/apps/cap/environments/test/deployments", {})).json();
    expect(await hostOfDeployment(t.id)).toBe(host(1));
    // live asks 512 MiB (the default): big would keep 4.5/8 GiB = 56 %, small 1.5/2 GiB = 75 %: small has the most room.
    const l = (await call("POST", "/v1/apps/cap/environments/live/deployments", {})).json();
    expect(await hostOfDeployment(l.id)).toBe(host(2));
    const hosts = (await call("GET", "/v1/hosts")).json() as Array<{ name: string; requested: { memoryBytes: number; cpus: number }; allocatable: { memoryBytes: number; cpus: number } }>;
    const byName = Object.fromEntries(hosts.map((x) => [x.name, x]));
    expect(byName.big).toMatchObject({ requested: { memoryBytes: 3 * GiB, cpus: 0.5 }, allocatable: { memoryBytes: 8 * GiB, cpus: 32 } });
    expect(byName.small).toMatchObject({ requested: { memoryBytes: 0.5 * GiB, cpus: 1 }, allocatable: { memoryBytes: 2 * GiB, cpus: 8 } });
  });

  it("refuses an environment that fits no host with the reason, and writes nothing", async () => {
    expect((await call("POST", "/v1/apps/cap/environments", { name: "huge" })).statusCode).toBe(201);
    expect((await call("PATCH", "/v1/apps/cap/environments/huge", { limits: { memoryMb: 6144 } })).statusCode).toBe(200);
    const before = await snapshot();
    const r = await call("POST", "/v1/apps/cap/environments/huge/deployments", {});
    expect(r.statusCode).toBe(409);
    expect(r.json().error.message).toBe("cap/huge cannot be placed: no host has room for 6144 MiB and 1 CPU (big: 5120 MiB and 31.5 CPU free; small: 1536 MiB and 7 CPU free)");
    expect(r.json().error.details).toEqual({ reason: "no_room" });
    expect(await snapshot()).toBe(before);
    // Within what big has left, it goes there.
    await call("PATCH", "/v1/apps/cap/environments/huge", { limits: { memoryMb: 5120 } });
    const ok = await call("POST", "/v1/apps/cap/environments/huge/deployments", {});
    expect(ok.statusCode).toBe(202);
    expect(await hostOfDeployment(ok.json().id)).toBe(host(1));
  });

  it("keeps a deployed environment on its host while it has room, and moves it when its new limits do not fit there", async () => {
    const db = cp.database.db;
    const live = await getEnvironment(db, await getAppByName(db, "cap"), "live");
    await db.updateTable("deployments").set({ state: "succeeded" }).where("environment_id", "=", live.id).execute();
    await setEnvironmentRow(db, live.id, { current_image: "slipway/cap:abc", last_success_at: new Date() });
    const again = (await call("POST", "/v1/apps/cap/environments/live/deployments", {})).json();
    expect(await hostOfDeployment(again.id)).toBe(host(2));
    await db.updateTable("deployments").set({ state: "succeeded" }).where("environment_id", "=", live.id).execute();
    // 2 GiB is all of small (live itself left out of what small holds): it fits exactly, and stays.
    const patched = await call("PATCH", "/v1/apps/cap/environments/live", { limits: { memoryMb: 2048 } });
    expect(patched.json().status.unappliedChanges).toBe(true);
    const exact = (await call("POST", "/v1/apps/cap/environments/live/deployments", {})).json();
    expect(await hostOfDeployment(exact.id)).toBe(host(2));
    await db.updateTable("deployments").set({ state: "succeeded" }).where("environment_id", "=", live.id).execute();
    // 3 CPU × 3 replicas = 9 > small's 8: it must move, and big (0 MiB left) cannot take 3 GiB either: 409 naming why.
    await call("PATCH", "/v1/apps/cap/environments/live", { limits: { memoryMb: 1024, cpus: 3 }, replicas: 3 });
    const refused = await call("POST", "/v1/apps/cap/environments/live/deployments", {});
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error.message).toBe("cap/live must move: its host small has no room for 3072 MiB and 9 CPU, and no host has room for 3072 MiB and 9 CPU (big: 0 MiB and 30.5 CPU free; small: 2048 MiB and 8 CPU free)");
    // One replica (1 GiB, 3 CPU) fits small: it stays.
    await call("PATCH", "/v1/apps/cap/environments/live", { replicas: 1 });
    const stays = (await call("POST", "/v1/apps/cap/environments/live/deployments", {})).json();
    expect(await hostOfDeployment(stays.id)).toBe(host(2));
  });
});
