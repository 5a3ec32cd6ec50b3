import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import { testControlPlane, type DbKind, type TestControlPlane } from "../testing/harness.js";
import { insertHost } from "../repositories/hosts.repository.js";
import { findEnvironment, getAppByName } from "../repositories/apps.repository.js";
import { findDeployment, findJobByDeployment } from "../repositories/deployments.repository.js";
import { Lifecycle } from "./lifecycle.service.js";

// The lifecycle module is the one writer of lifecycle state; these drive it through the API and
// through agent reports, and try illegal moves directly.
describe.each<DbKind>(["pglite", "postgres"])("lifecycle on %s", (kind) => {
  let cp: TestControlPlane;
  const lines: Array<Record<string, unknown>> = [];
  const lifecycle = new Lifecycle(createLogger("t", "info", { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) }));
  const auth = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const hostId = "00000000-0000-4000-8000-00000000aaaa";
  const call = (method: "GET" | "POST", url: string, payload?: unknown) => cp.app.inject({ method, url, headers: auth(), ...(payload !== undefined ? { payload } : {}) });
  const env = async (name: string) => (await findEnvironment(cp.database.db, (await getAppByName(cp.database.db, "life")).id, name))!;
  let seq = 0;
  const report = (jobId: string, events: Array<Record<string, unknown>>) =>
    cp.services.reports.apply(hostId, events.map((e) => ({ jobId, seq: ++seq, at: new Date(), ...e }) as never));

  beforeAll(async () => {
    cp = await testControlPlane(kind);
    await insertHost(cp.database.db, { id: hostId, name: "h1", labels: {}, credentialHash: "h1-hash", version: "1", capacity: { cpus: 2, memoryBytes: 1e9, diskBytes: 1e10 } });
    expect((await call("POST", "/v1/apps", { name: "life", repository: "https://x.test/life.git" })).statusCode).toBe(201);
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("moves environment, deployment and job together from queued to succeeded, and a stop through desired and observed", async () => {
    const d = (await call("POST", "/v1/apps/life/environments/test/deployments", {})).json();
    expect((await env("test")).state).toBe("deploying");
    expect((await env("test")).host_id).toBe(hostId);
    const job = (await findJobByDeployment(cp.database.db, d.id))!;
    seq = 0;
    await report(job.id, [{ kind: "step", name: "source", state: "running" }]);
    expect((await findDeployment(cp.database.db, d.id))!.state).toBe("preparing");
    expect((await findJobByDeployment(cp.database.db, d.id))!.state).toBe("running");
    await report(job.id, [
      { kind: "step", name: "switch", state: "running" },
      { kind: "step", name: "switch", state: "succeeded" },
      { kind: "result", state: "succeeded", commit: "c1", image: "slipway/life:c1" },
    ]);
    expect((await findDeployment(cp.database.db, d.id))!.state).toBe("succeeded");
    expect((await findJobByDeployment(cp.database.db, d.id))!.state).toBe("succeeded");
    const e = await env("test");
    expect([e.state, e.observed_state, e.desired_state, e.current_image]).toEqual(["running", "running", "running", "slipway/life:c1"]);
    // The cleanup that follows the switch still reports its step after the result.
    await report(job.id, [{ kind: "step", name: "cleanup", state: "succeeded" }]);
    expect(((await findDeployment(cp.database.db, d.id))!.steps as Array<{ name: string }>).map((s) => s.name)).toContain("cleanup");

    // Stop: desired becomes stopped at once, the state follows what the host reports.
    expect((await call("POST", "/v1/apps/life/environments/test/stop")).statusCode).toBe(202);
    expect([(await env("test")).desired_state, (await env("test")).state]).toEqual(["stopped", "running"]);
    const stopJob = await cp.database.db.selectFrom("jobs").selectAll().where("environment_id", "=", e.id).where("kind", "=", "environment").executeTakeFirstOrThrow();
    seq = 0;
    await report(stopJob.id, [{ kind: "result", state: "succeeded", commit: "", image: "" }]);
    expect([(await env("test")).observed_state, (await env("test")).state]).toEqual(["stopped", "stopped"]);
    expect((await call("GET", "/v1/apps/life/environments/test")).json().state).toBe("stopped");
  });

  it("refuses a deliberately illegal transition with a log line and writes nothing", async () => {
    const db = cp.database.db;
    const d = (await cp.services.deployments.list({ name: "admin", role: "admin", apps: [] } as never, "life", "test"))[0]!;
    const row = (await findDeployment(db, d.id))!;
    lines.length = 0;
    // A succeeded deployment cannot start building again.
    expect(await db.transaction().execute((trx) => lifecycle.advanceDeployment(trx, row, "building", new Date()))).toBe(false);
    expect((await findDeployment(db, d.id))!.state).toBe("succeeded");
    // A stopped environment cannot be observed asleep (only a running one falls asleep).
    const stopped = await env("test");
    await db.transaction().execute((trx) => lifecycle.observe(trx, stopped.id, "sleeping", "test"));
    expect([(await env("test")).state, (await env("test")).observed_state]).toEqual(["stopped", "stopped"]);
    // A finished job cannot run again.
    const job = (await findJobByDeployment(db, d.id))!;
    expect(await db.transaction().execute((trx) => lifecycle.moveJob(trx, job, "running", new Date()))).toBe(false);
    expect((await findJobByDeployment(db, d.id))!.state).toBe("succeeded");
    const refused = lines.filter((l) => String(l.msg).startsWith("refused an illegal"));
    expect(refused.map((l) => [l.machine, l.from, l.to])).toEqual([
      ["deployment", "succeeded", "building"],
      ["environment", "stopped", "sleeping"],
      ["job", "succeeded", "running"],
    ]);
    expect(refused.every((l) => l.level === 40)).toBe(true);
  });
});
