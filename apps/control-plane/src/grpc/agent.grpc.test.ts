import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials, Metadata, status, type Server } from "@grpc/grpc-js";
import { AgentServiceClient, type ConfigureNatsResponse, type GetJobSpecResponse, type JobEvent, type ReportJobEventsResponse } from "@slipway/proto";
import { createLogger, hostInboxPrefix } from "@slipway/core";
import { nkeys } from "@nats-io/nats-core";
import { testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { agentServiceImpl, startGrpcServer } from "./agent.grpc.js";
import type { JobBus } from "../bus/job-bus.js";
import { recordHeartbeat } from "../repositories/hosts.repository.js";

const noBus: JobBus = { ensureStream: async () => {}, ensureConsumer: async () => {}, deleteConsumer: async () => {}, publish: async () => {}, close: async () => {} };

function md(credential?: string): Metadata {
  const m = new Metadata();
  if (credential) m.set("authorization", `Bearer ${credential}`);
  return m;
}

// Agents authenticate with a one-time join token, then their own credential, and see only their own jobs.
describe("gRPC AgentService authentication", () => {
  let cp: TestControlPlane;
  let server: Server;
  let client: AgentServiceClient;

  const register = async (joinToken: string, hostname: string) =>
    new Promise<{ hostId: string; credential: string }>((resolve, reject) =>
      client.register({ joinToken, hostname, labels: {}, version: "test" }, (err, res) => (err ? reject(err) : resolve(res!))),
    );
  const joinToken = async () => (await cp.app.inject({ method: "POST", url: "/v1/join-tokens", headers: { authorization: `Bearer ${cp.adminToken}` } })).json().token as string;
  const getSpec = (jobId: string, credential?: string) =>
    new Promise<GetJobSpecResponse>((resolve, reject) => client.getJobSpec({ jobId }, md(credential), (err, res) => (err ? reject(err) : resolve(res!))));
  const report = (events: JobEvent[], credential?: string) =>
    new Promise<ReportJobEventsResponse>((resolve, reject) => {
      // A client stream: its own deadline, so a server that never answers fails here (DEADLINE_EXCEEDED), not at the test's timeout.
      const call = client.reportJobEvents(md(credential), { deadline: new Date(Date.now() + 10_000) }, (err, res) => (err ? reject(err) : resolve(res!)));
      events.forEach((e) => call.write(e));
      call.end();
    });

  const configureNats = (publicKey: string, credential?: string) =>
    new Promise<ConfigureNatsResponse>((resolve, reject) => client.configureNats({ publicKey }, md(credential), (err, res) => (err ? reject(err) : resolve(res!))));
  let syncs = 0;

  beforeAll(async () => {
    cp = await testControlPlane("pglite");
    const started = await startGrpcServer(
      agentServiceImpl({ hosts: cp.services.hosts, reports: cp.services.reports, bus: noBus, log: createLogger("t", "silent"), natsPublicUrl: () => "nats://127.0.0.1:4222", natsUsers: { sync: async () => void syncs++ }, heartbeatIntervalMs: 5000, unseal: (v) => cp.services.environments.unseal(v), repositoryAccess: async (_app, r, c) => ({ url: cp.services.apps.repositoryUrlForGit(r, c) }), dataSpec: (s) => cp.services.data.dataSpec(s) }),
      { host: "127.0.0.1", port: 0 },
    );
    server = started.server;
    client = new AgentServiceClient(`127.0.0.1:${started.port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    server?.forceShutdown();
    await cp?.close();
  });

  it("a join token registers one host once", async () => {
    const token = await joinToken();
    const a = await register(token, "host-a");
    expect(a.hostId).toMatch(/[0-9a-f-]{36}/);
    expect(a.credential).toMatch(/^slwagent_/);
    await expect(register(token, "host-a-again")).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(register("slwjoin_made-up", "host-x")).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
  });

  it("refuses a missing, wrong or revoked credential, and another host's jobs", async () => {
    const a = await register(await joinToken(), "host-a");
    const b = await register(await joinToken(), "host-b");
    await recordHeartbeat(cp.database.db, a.hostId, { at: new Date(), version: "t", capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 }, load: { cpu: 0, memoryUsedBytes: 0, diskUsedBytes: 0, containers: 0 } });
    await cp.database.db.updateTable("hosts").set({ last_heartbeat_at: new Date(0) }).where("id", "!=", a.hostId).execute();
    await cp.app.inject({ method: "POST", url: "/v1/apps", headers: { authorization: `Bearer ${cp.adminToken}` }, payload: { name: "grpcapp", repository: "https://x.test/r.git" } });
    const d = (await cp.app.inject({ method: "POST", url: "/v1/apps/grpcapp/environments/test/deployments", headers: { authorization: `Bearer ${cp.adminToken}` }, payload: {} })).json();
    const job = await cp.database.db.selectFrom("jobs").selectAll().where("deployment_id", "=", d.id).executeTakeFirstOrThrow();
    expect(job.host_id).toBe(a.hostId);

    const spec = await getSpec(job.id, a.credential);
    expect(spec.state).toBe("queued");
    expect(spec.spec?.$case).toBe("deploy");

    await expect(getSpec(job.id)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(getSpec(job.id, "slwagent_wrong")).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(getSpec(job.id, b.credential)).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    await expect(report([{ jobId: job.id, seq: 1, event: { $case: "log", value: { text: "forged" } } }], b.credential)).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    const logs = await cp.database.db.selectFrom("deployment_logs").selectAll().where("deployment_id", "=", d.id).execute();
    expect(logs).toHaveLength(0);

    await cp.app.inject({ method: "POST", url: `/v1/hosts/${a.hostId}/cordon`, headers: { authorization: `Bearer ${cp.adminToken}` } });
    await cp.database.db.updateTable("hosts").set({ admin_state: "revoked" }).where("id", "=", a.hostId).execute();
    await expect(getSpec(job.id, a.credential)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
  });

  it("applies a retried batch of events once", async () => {
    const a = await register(await joinToken(), "host-c");
    await cp.database.db.updateTable("hosts").set({ last_heartbeat_at: new Date(0) }).where("id", "!=", a.hostId).execute();
    await cp.app.inject({ method: "POST", url: "/v1/apps", headers: { authorization: `Bearer ${cp.adminToken}` }, payload: { name: "dedupe", repository: "https://x.test/r.git" } });
    const d = (await cp.app.inject({ method: "POST", url: "/v1/apps/dedupe/environments/test/deployments", headers: { authorization: `Bearer ${cp.adminToken}` }, payload: {} })).json();
    const job = await cp.database.db.selectFrom("jobs").selectAll().where("deployment_id", "=", d.id).executeTakeFirstOrThrow();
    const batch: JobEvent[] = [
      { jobId: job.id, seq: 1, event: { $case: "step", value: { name: "source", state: "running" } } },
      { jobId: job.id, seq: 2, event: { $case: "log", value: { text: "line one" } } },
      { jobId: job.id, seq: 3, event: { $case: "log", value: { text: "line two" } } },
    ];
    expect((await report(batch, a.credential)).acked[job.id]).toBe(3);
    expect((await report(batch, a.credential)).acked[job.id]).toBe(3);
    const log = await cp.app.inject({ method: "GET", url: `/v1/deployments/${d.id}/log`, headers: { authorization: `Bearer ${cp.adminToken}` } });
    expect(log.body).toBe("line one\nline two\n");
    const dep = await cp.app.inject({ method: "GET", url: `/v1/deployments/${d.id}`, headers: { authorization: `Bearer ${cp.adminToken}` } });
    expect(dep.json().state).toBe("preparing");
    expect((await getSpec(job.id, a.credential)).lastSeq).toBe(3);
  });

  it("makes an agent's nkey its host's NATS user: once per key, never another host's key, never for a revoked host", async () => {
    const a = await register(await joinToken(), "nats-a");
    const b = await register(await joinToken(), "nats-b");
    const keyA = nkeys.createUser().getPublicKey();
    const before = syncs;
    const res = await configureNats(keyA, a.credential);
    expect(res).toEqual({ natsUrl: "nats://127.0.0.1:4222", inboxPrefix: hostInboxPrefix(a.hostId), perHostUsers: true });
    expect(syncs).toBe(before + 1);
    const row = () => cp.database.db.selectFrom("hosts").select(["id", "nats_public_key"]).where("id", "in", [a.hostId, b.hostId]).orderBy("name").execute();
    expect((await row()).map((h) => h.nats_public_key)).toEqual([keyA, null]);
    // The same key again (every agent start) changes nothing.
    await configureNats(keyA, a.credential);
    // Refused, nothing written: no credential, a key that is not an nkey user key, A's key for B.
    await expect(configureNats(keyA)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    for (const bad of ["", "not-a-key", nkeys.createAccount().getPublicKey(), keyA.slice(0, -1) + (keyA.endsWith("A") ? "B" : "A"), new TextDecoder().decode(nkeys.createUser().getSeed())]) {
      await expect(configureNats(bad, b.credential), bad).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    }
    await expect(configureNats(keyA, b.credential)).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, details: expect.stringMatching(/belongs to another host/) });
    expect((await row()).map((h) => h.nats_public_key)).toEqual([keyA, null]);
    // A replaced key (the agent's state was lost) is recorded in the activity feed.
    const keyA2 = nkeys.createUser().getPublicKey();
    await configureNats(keyA2, a.credential);
    expect((await row()).map((h) => h.nats_public_key)).toEqual([keyA2, null]);
    const activity = await cp.database.db.selectFrom("activity").select(["action", "details"]).where("action", "=", "host.nats_key_replaced").execute();
    expect(activity.map((x) => x.details)).toEqual([{ hostId: a.hostId, publicKey: keyA2 }]);
    await cp.app.inject({ method: "POST", url: `/v1/hosts/${a.hostId}/revoke`, headers: { authorization: `Bearer ${cp.adminToken}` } });
    await expect(configureNats(nkeys.createUser().getPublicKey(), a.credential)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
  });
});
