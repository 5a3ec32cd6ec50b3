import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testControlPlane, type DbKind, type TestControlPlane } from "./testing/harness.js";
import { insertHost } from "./repositories/hosts.repository.js";

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
});
