import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setEnvironmentRow, testControlPlane, type DbKind, type TestControlPlane } from "./testing/harness.js";
import { getAppByName, getEnvironment } from "./repositories/apps.repository.js";
import { insertHost } from "./repositories/hosts.repository.js";
import { lockPlacementDecisions } from "./repositories/deployments.repository.js";

// Placement reads the room hosts have, then writes its choice: requests deciding at once (on one
// replica's pool or on several replicas: each on its own connection) must not both take the last room.
describe.each<DbKind>(["postgres", "pglite"])("placement of deployments requested at once (REST, %s)", (kind) => {
  let cp: TestControlPlane;
  const call = (method: string, url: string, payload?: unknown) =>
    cp.app.inject({ method: method as "GET", url, headers: { authorization: `Bearer ${cp.adminToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
  const host = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

  beforeAll(async () => {
    cp = await testControlPlane(kind);
    // Room for two environments at the default request (512 MiB, 1 CPU) on each host: four in all.
    for (const n of [1, 2]) await insertHost(cp.database.db, { id: host(n), name: `h${n}`, labels: {}, credentialHash: `c${n}`, version: "t", capacity: { cpus: 4, memoryBytes: 2 ** 30, diskBytes: 2 ** 40 } });
    for (const a of ["a", "b", "c", "d"]) expect((await call("POST", "/v1/apps", { name: a, repository: `https://x.test/${a}.git` })).statusCode).toBe(201);
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("eight environments deployed at once onto room for four: four placed, within each host's room, four refused naming the room", async () => {
    const targets = ["a", "b", "c", "d"].flatMap((a) => [`/v1/apps/${a}/environments/test/deployments`, `/v1/apps/${a}/environments/live/deployments`]);
    const results = await Promise.all(targets.map((url) => call("POST", url, {})));
    const created = results.filter((r) => r.statusCode === 202);
    const refused = results.filter((r) => r.statusCode !== 202);
    expect(created.length).toBe(4);
    expect(refused.map((r) => r.statusCode)).toEqual([409, 409, 409, 409]);
    for (const r of refused) expect(r.json().error.message).toMatch(/cannot be placed: no host has room for 512 MiB and 1 CPU/);
    const placed = await cp.database.db.selectFrom("environments").select("host_id").where("host_id", "is not", null).execute();
    const perHost = new Map<string, number>();
    for (const e of placed) perHost.set(e.host_id!, (perHost.get(e.host_id!) ?? 0) + 1);
    expect([...perHost.entries()].sort()).toEqual([
      [host(1), 2],
      [host(2), 2],
    ]);
    // Each created deployment's job is queued for the host its environment was placed on.
    const jobs = await cp.database.db.selectFrom("jobs").innerJoin("environments", "environments.id", "jobs.environment_id").select(["jobs.host_id", "environments.host_id as env_host"]).execute();
    expect(jobs.length).toBe(4);
    for (const j of jobs) expect(j.host_id).toBe(j.env_host);
  });

  it.runIf(kind === "postgres")("a deployment of an environment that stays on its host does not wait for another replica's placement decision", async () => {
    const db = cp.database.db;
    // One of the four environments the first test placed (which four is up to the race); its deployment is over.
    const placed = await db
      .selectFrom("environments")
      .innerJoin("apps", "apps.id", "environments.app_id")
      .select(["environments.id", "environments.name", "environments.host_id", "apps.name as app"])
      .where("environments.host_id", "is not", null)
      .orderBy("apps.name")
      .orderBy("environments.name")
      .executeTakeFirstOrThrow();
    await db.updateTable("deployments").set({ state: "succeeded", finished_at: new Date() }).where("environment_id", "=", placed.id).execute();
    await db.updateTable("jobs").set({ state: "succeeded" }).where("environment_id", "=", placed.id).execute();
    // Another replica (a connection of its own) is placing something: it holds the placement lock.
    let released = false;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = () => ((released = true), r())));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const other = db.transaction().execute(async (trx) => {
      await lockPlacementDecisions(trx);
      locked();
      await held;
    });
    await isLocked;
    // Held until the request has answered (30 s at most: a request that waits for it fails the test
    // below instead of hanging it).
    const timer = setTimeout(() => release(), 30_000);
    try {
      const r = await call("POST", `/v1/apps/${placed.app}/environments/${placed.name}/deployments`, {});
      expect(r.statusCode, r.body).toBe(202);
      // Before: it queued behind the lock (with 5,000 hosts every request queued behind the one before).
      expect(released, "the request waited for the other replica's placement lock").toBe(false);
      expect(await db.selectFrom("deployments").select("host_id").where("id", "=", r.json().id).executeTakeFirstOrThrow()).toEqual({ host_id: placed.host_id });
    } finally {
      clearTimeout(timer);
      release();
      await other;
    }
  });

  it("a move in flight holds its room on the target host: a later environment is refused rather than overfill it", async () => {
    const db = cp.database.db;
    // Two more hosts with room for two each, told apart by a label.
    await insertHost(db, { id: host(3), name: "h3", labels: { pool: "m" }, credentialHash: "c3", version: "t", capacity: { cpus: 4, memoryBytes: 2 ** 30, diskBytes: 2 ** 40 } });
    await insertHost(db, { id: host(4), name: "h4", labels: { pool: "n" }, credentialHash: "c4", version: "t", capacity: { cpus: 4, memoryBytes: 2 ** 30, diskBytes: 2 ** 40 } });
    for (const a of ["m", "n"]) expect((await call("POST", "/v1/apps", { name: a, repository: `https://x.test/${a}.git` })).statusCode).toBe(201);
    // m/test serves on h4; its labels now ask for pool m, so its next deployment moves it to h3.
    const moving = await getEnvironment(db, await getAppByName(db, "m"), "test");
    await setEnvironmentRow(db, moving.id, { host_id: host(4), current_image: "slipway/m:1", deployed_config_revision: moving.config_revision, last_success_at: new Date() });
    for (const [a, e] of [["m", "test"], ["m", "live"], ["n", "test"]]) expect((await call("PATCH", `/v1/apps/${a}/environments/${e}`, { hostLabels: { pool: "m" } })).statusCode).toBe(200);
    const move = await call("POST", "/v1/apps/m/environments/test/deployments", {});
    expect(move.statusCode).toBe(202);
    expect(await db.selectFrom("deployments").select(["host_id", "moved_from_host_id"]).where("id", "=", move.json().id).executeTakeFirstOrThrow()).toEqual({ host_id: host(3), moved_from_host_id: host(4) });
    // h3: the move takes one place, m/live the other; n/test finds no room although nothing is placed on h3 yet but m/live.
    expect((await call("POST", "/v1/apps/m/environments/live/deployments", {})).statusCode).toBe(202);
    const refused = await call("POST", "/v1/apps/n/environments/test/deployments", {});
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error.message).toMatch(/n\/test cannot be placed: no host has room for 512 MiB and 1 CPU \(h3: 0 MiB/);
  });

  it("a drain plans its moves together: two environments are never sent to the last room of one host (409, nothing drained)", async () => {
    const db = cp.database.db;
    // h5 runs x/test and x/live; h6, the only other host with their labels, has room for one.
    await insertHost(db, { id: host(5), name: "h5", labels: { pool: "x" }, credentialHash: "c5", version: "t", capacity: { cpus: 4, memoryBytes: 2 ** 30, diskBytes: 2 ** 40 } });
    await insertHost(db, { id: host(6), name: "h6", labels: { pool: "x" }, credentialHash: "c6", version: "t", capacity: { cpus: 4, memoryBytes: 2 ** 29, diskBytes: 2 ** 40 } });
    expect((await call("POST", "/v1/apps", { name: "x", repository: "https://x.test/x.git" })).statusCode).toBe(201);
    for (const e of ["test", "live"]) {
      expect((await call("PATCH", `/v1/apps/x/environments/${e}`, { hostLabels: { pool: "x" } })).statusCode).toBe(200);
      const env = await getEnvironment(db, await getAppByName(db, "x"), e);
      await setEnvironmentRow(db, env.id, { host_id: host(5), current_image: `slipway/x-${e}:1`, deployed_config_revision: env.config_revision, last_success_at: new Date() });
    }
    const drain = await call("POST", `/v1/hosts/${host(5)}/drain`, {});
    expect(drain.statusCode).toBe(409);
    expect(drain.json().error.message).toMatch(/^no other host can take x\/(test|live): no host has room for 512 MiB and 1 CPU \(h6: 0 MiB.*; nothing was drained$/);
    expect((await db.selectFrom("hosts").select("admin_state").where("id", "=", host(5)).executeTakeFirstOrThrow()).admin_state).toBe("active");
    const moves = await db.selectFrom("deployments").select("id").where("moved_from_host_id", "=", host(5)).execute();
    expect(moves).toEqual([]);
  });
});
