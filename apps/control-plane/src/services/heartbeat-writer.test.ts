import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, UnauthenticatedError } from "@slipway/core";
import { setEnvironmentRow, testControlPlane, type DbKind, type TestControlPlane } from "../testing/harness.js";
import { insertHost, setHostAdminState } from "../repositories/hosts.repository.js";
import { getAppByName, getEnvironment } from "../repositories/apps.repository.js";
import { Lifecycle } from "./lifecycle.service.js";
import { HeartbeatWriter } from "./heartbeat-writer.js";
import type { HeartbeatInput } from "./host.service.js";

const beat = (cpu: number, environments: HeartbeatInput["environments"] = []): HeartbeatInput => ({
  version: "9.9.9",
  capacity: { cpus: 2, memoryBytes: 4e9, diskBytes: 1e11 },
  load: { cpu, memoryUsedBytes: 1e9, diskUsedBytes: 1e10, containers: 3 },
  environments,
});

// Heartbeats of many hosts are written together; every agent still gets its own answer.
describe.each<DbKind>(["pglite", "postgres"])("heartbeat batches on %s", (kind) => {
  let cp: TestControlPlane;
  const admin = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const host = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

  beforeAll(async () => {
    cp = await testControlPlane(kind);
    const db = cp.database.db;
    for (let i = 1; i <= 3; i++) await insertHost(db, { id: host(i), name: `h${i}`, labels: {}, credentialHash: `hash-${i}`, version: "0", capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 } });
    await setHostAdminState(db, host(3), "revoked");
    await cp.app.inject({ method: "POST", url: "/v1/apps", headers: admin(), payload: { name: "beats", repository: "https://x.test/r.git" } });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("one flush answers each host with its own cancellations, refuses a revoked host, and applies observed states", async () => {
    const db = cp.database.db;
    const app = await getAppByName(db, "beats");
    const test = await getEnvironment(db, app, "test");
    const live = await getEnvironment(db, app, "live");
    // Both deployed on host 1: live serves, test gets a deployment below.
    await setEnvironmentRow(db, test.id, { host_id: host(1), state: "running", current_image: "slipway/beats:1", observed_state: "running" });
    await setEnvironmentRow(db, live.id, { host_id: host(1), state: "running", current_image: "slipway/beats:1", observed_state: "running" });
    // A deployment of test on host 1 whose cancellation was requested while its job runs.
    await db.updateTable("hosts").set({ admin_state: "cordoned" }).where("id", "=", host(2)).execute();
    const d = (await cp.app.inject({ method: "POST", url: "/v1/apps/beats/environments/test/deployments", headers: admin(), payload: {} })).json();
    const job = await db.selectFrom("jobs").selectAll().where("deployment_id", "=", d.id).executeTakeFirstOrThrow();
    expect(job.host_id).toBe(host(1));
    await db.updateTable("jobs").set({ state: "running" }).where("id", "=", job.id).execute();
    await db.updateTable("deployments").set({ cancel_requested_at: new Date() }).where("id", "=", d.id).execute();
    expect((await getEnvironment(db, app, "test")).state).toBe("deploying");

    const writer = new HeartbeatWriter(db, createLogger("t", "silent"), 50, new Lifecycle(createLogger("t", "silent")));
    const answers = await Promise.allSettled([
      writer.submit(host(1), { ...beat(0.5, [{ environmentId: test.id, state: "stopped" }, { environmentId: live.id, state: "sleeping" }]), ingressAddress: "10.0.0.1:443" }),
      // Host 2 claims host 1's environment: an agent speaks only for its own.
      writer.submit(host(2), beat(0.25, [{ environmentId: live.id, state: "stopped" }])),
      writer.submit(host(3), beat(0.75)),
    ]);
    expect(answers[0]).toEqual({ status: "fulfilled", value: { cancelRequested: [job.id] } });
    expect(answers[1]).toEqual({ status: "fulfilled", value: { cancelRequested: [] } });
    expect(answers[2].status).toBe("rejected");
    expect((answers[2] as PromiseRejectedResult).reason).toBeInstanceOf(UnauthenticatedError);

    const rows = await db.selectFrom("hosts").select(["id", "version", "load", "capacity", "ingress_address", "last_heartbeat_at"]).orderBy("id").execute();
    expect(rows.map((r) => [r.version, (r.load as { cpu: number }).cpu, r.ingress_address])).toEqual([["9.9.9", 0.5, "10.0.0.1:443"], ["9.9.9", 0.25, null], ["0", 0, null]]);
    expect(rows[0]!.load).toEqual(beat(0.5).load);
    expect(rows[1]!.capacity).toEqual(beat(0.25).capacity);
    // A beat without an address keeps the one recorded.
    await writer.submit(host(1), beat(0.6));
    expect((await db.selectFrom("hosts").select("ingress_address").where("id", "=", host(1)).executeTakeFirstOrThrow()).ingress_address).toBe("10.0.0.1:443");
    expect((await getEnvironment(db, app, "live")).state).toBe("sleeping");
    // A deployment owns the state while it runs.
    expect((await getEnvironment(db, app, "test")).state).toBe("deploying");
  });

  it("writes a burst of beats in a few flushes and drains what is buffered", async () => {
    const db = cp.database.db;
    const n = 300;
    for (let i = 10; i < 10 + n; i++) await insertHost(db, { id: host(i), name: `b${i}`, labels: {}, credentialHash: `hash-${i}`, version: "0", capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 } });
    let transactions = 0;
    const counting = new Proxy(db, { get: (t, p, r) => (p === "transaction" ? () => (transactions++, t.transaction()) : Reflect.get(t, p, r)) });
    const writer = new HeartbeatWriter(counting, createLogger("t", "silent"), 1_000, new Lifecycle(createLogger("t", "silent")));
    const pending = Array.from({ length: n }, (_, i) => writer.submit(host(10 + i), beat(i / n)));
    await writer.drain();
    expect((await Promise.all(pending)).every((a) => a.cancelRequested.length === 0)).toBe(true);
    expect(transactions).toBe(1);
    const updated = await db.selectFrom("hosts").select((eb) => eb.fn.countAll().as("n")).where("version", "=", "9.9.9").where("name", "like", "b%").executeTakeFirstOrThrow();
    expect(Number(updated.n)).toBe(n);
  });
});
