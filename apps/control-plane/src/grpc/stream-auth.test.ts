import { once } from "node:events";
import v8 from "node:v8";
import vm from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials, Metadata, status, type Server, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import { AgentServiceClient, type HeartbeatRequest, type JobEvent, type MetricsBatch } from "@slipway/proto";
import { createLogger } from "@slipway/core";
import { testControlPlane, type TestControlPlane } from "../testing/harness.js";
import { agentServiceImpl, startGrpcServer, MAX_MESSAGE_BYTES, STREAM_MESSAGE_LIMITS } from "./agent.grpc.js";
import type { JobBus } from "../bus/job-bus.js";
import { recordHeartbeat } from "../repositories/hosts.repository.js";

const noBus: JobBus = { ensureStream: async () => {}, ensureConsumer: async () => {}, deleteConsumer: async () => {}, publish: async () => {}, close: async () => {} };

// The server runs in this process: its memory is this process's memory. A collection before each
// reading counts only what is still referenced (an unbounded buffer is; garbage is not).
v8.setFlagsFromString("--expose-gc");
const gc = (globalThis as { gc?: () => void }).gc ?? (vm.runInNewContext("gc") as (() => void) | undefined);
const MB = 1024 * 1024;
// Without a collector to call, live data cannot be told from garbage: a generous bound then.
const GROWTH_LIMIT = gc ? 20 * MB : 60 * MB;

async function liveBytes(): Promise<{ heap: number; rss: number }> {
  for (let i = 0; i < 2; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
}

interface Writable<T> {
  write(m: T): boolean;
  once(event: "drain", fn: () => void): unknown;
  on(event: "status", fn: (s: StatusObject) => void): unknown;
  on(event: "error", fn: (e: ServiceError) => void): unknown;
  cancel(): void;
}

interface FloodResult {
  /** The status the call ended with; undefined when it was still open after everything was sent. */
  code?: number;
  /** From the first message written to the status. */
  msToStatus?: number;
  sentBytes: number;
  /** Live memory growth of this process while the attack was at its peak. */
  heapGrowth: number;
  rssGrowth: number;
}

/**
 * Streams `totalBytes` in messages of `messageBytes` without ever ending the stream, as fast
 * as the server takes them (respecting flow control, so the client itself buffers nothing),
 * until the server ends the call. Memory is read while the call is at its peak: still open
 * (whatever the server buffered is still referenced), or just ended.
 */
async function flood<T>(open: () => Writable<T>, message: (i: number) => T, messageBytes: number, totalBytes: number): Promise<FloodResult> {
  const before = await liveBytes();
  const call = open();
  let ended: { code: number; at: number } | undefined;
  const statusArrived = new Promise<void>((resolve) =>
    call.on("status", (s) => {
      ended ??= { code: s.code, at: Date.now() };
      resolve();
    }),
  );
  call.on("error", () => undefined);
  let firstAt: number | undefined;
  let sentBytes = 0;
  for (let i = 0; sentBytes < totalBytes && !ended; i++) {
    firstAt ??= Date.now();
    const more = call.write(message(i));
    sentBytes += messageBytes;
    if (!more) await Promise.race([new Promise<void>((r) => call.once("drain", r)), statusArrived]);
  }
  const peak = await liveBytes();
  if (!ended) call.cancel();
  await statusArrived;
  const result: FloodResult = { sentBytes, heapGrowth: peak.heap - before.heap, rssGrowth: peak.rss - before.rss };
  if (ended && ended.code !== status.CANCELLED) {
    result.code = ended.code;
    result.msToStatus = ended.at - firstAt!;
  }
  return result;
}

const FLOOD = 100 * MB;
const CHUNK = 64 * 1024;
const text = "x".repeat(CHUNK);
const anonymous = () => new Metadata();
const forged = () => {
  const md = new Metadata();
  md.set("authorization", "Bearer slwagent_forged-credential");
  return md;
};

// Finding 5 of issue 11: client streams were authenticated only at their end, with everything
// before buffered, so an anonymous client that streamed and never ended exhausted the memory.
describe("gRPC streams from a client without a valid credential", () => {
  let cp: TestControlPlane;
  let server: Server;
  let client: AgentServiceClient;
  const deadline = () => ({ deadline: new Date(Date.now() + 60_000) });

  beforeAll(async () => {
    cp = await testControlPlane("pglite");
    const started = await startGrpcServer(
      agentServiceImpl({ hosts: cp.services.hosts, reports: cp.services.reports, bus: noBus, log: createLogger("t", "silent"), natsPublicUrl: () => "nats://127.0.0.1:4222", heartbeatIntervalMs: 5000, unseal: (v) => cp.services.environments.unseal(v), dataSpec: (s) => cp.services.data.dataSpec(s), repositoryUrl: (r, c) => cp.services.apps.repositoryUrlForGit(r, c) }),
      { host: "127.0.0.1", port: 0 },
    );
    server = started.server;
    client = new AgentServiceClient(`127.0.0.1:${started.port}`, credentials.createInsecure(), { "grpc.max_send_message_length": -1 });
  });
  afterAll(async () => {
    client?.close();
    server?.forceShutdown();
    await cp?.close();
  });

  const expectCutOff = (r: FloodResult) => {
    // Logged so a run shows the margin, not only pass or fail.
    console.log(`cut off: status ${r.code} after ${r.msToStatus} ms, ${(r.sentBytes / MB).toFixed(2)} MB sent, live memory +${(r.heapGrowth / MB).toFixed(1)} MB, rss +${(r.rssGrowth / MB).toFixed(1)} MB (gc: ${gc ? "yes" : "no"})`);
    expect(r.code).toBe(status.UNAUTHENTICATED);
    // "At once" as volume, not time (a loaded machine may take a second to look the credential up):
    // the status comes while the first flow-control windows are in flight (1 MB here), not after the 100 MB.
    expect(r.sentBytes).toBeLessThan(10 * MB);
    expect(r.msToStatus).toBeLessThan(15_000); // and not at the call's deadline (60 s)
    expect(r.heapGrowth).toBeLessThan(GROWTH_LIMIT);
  };

  it("ReportJobEvents: an anonymous 100 MB stream is cut off at once and nothing piles up", async () => {
    const event = (i: number): JobEvent => ({ jobId: "00000000-0000-4000-8000-000000000000", seq: i + 1, event: { $case: "log", value: { text } } });
    expectCutOff(await flood(() => client.reportJobEvents(anonymous(), deadline(), () => undefined), event, CHUNK, FLOOD));
    expectCutOff(await flood(() => client.reportJobEvents(forged(), deadline(), () => undefined), event, CHUNK, FLOOD));
  });

  it("PushMetrics: an anonymous 100 MB stream is cut off at once and nothing piles up", async () => {
    const batch = (): MetricsBatch => ({ samples: [{ at: new Date(), intervalMs: 10_000, containers: [{ containerId: text, app: "a", environment: "e", cpuPercent: 1, memoryBytes: 1n, memoryLimitBytes: 1n }], traffic: [] }] });
    expectCutOff(await flood(() => client.pushMetrics(anonymous(), deadline(), () => undefined), batch, CHUNK, FLOOD));
  });

  it("Heartbeat: an anonymous 100 MB stream is cut off at once and nothing piles up", async () => {
    const beat = (): HeartbeatRequest => ({ version: text, cpuLoad: 0, memoryUsedBytes: 0n, diskUsedBytes: 0n, diskFreeBytes: 0n, containers: [], environments: [], ingressAddress: "", incidents: [], servedCertificates: [], servedCertificatesReported: false });
    expectCutOff(await flood(() => client.heartbeat(anonymous(), deadline()), beat, CHUNK, FLOOD));
    expectCutOff(await flood(() => client.heartbeat(forged(), deadline()), beat, CHUNK, FLOOD));
  });

  describe("an agent with a valid credential", () => {
    let credential = "";
    const md = () => {
      const m = new Metadata();
      m.set("authorization", `Bearer ${credential}`);
      return m;
    };
    beforeAll(async () => {
      const token = (await cp.app.inject({ method: "POST", url: "/v1/join-tokens", headers: { authorization: `Bearer ${cp.adminToken}` } })).json().token as string;
      credential = await new Promise<string>((resolve, reject) =>
        client.register({ joinToken: token, hostname: "flood-host", labels: {}, version: "t" }, (err, res) => (err ? reject(err) : resolve(res!.credential))),
      );
    });

    const pushMany = (n: number, batch: MetricsBatch) =>
      new Promise<{ code: number; accepted?: number }>((resolve) => {
        const call = client.pushMetrics(md(), deadline(), (err, res) => resolve(err ? { code: err.code } : { code: status.OK, accepted: res!.accepted }));
        for (let i = 0; i < n; i++) call.write(batch);
        call.end();
      });

    it("may send up to the per-stream message limit; one more ends the stream with RESOURCE_EXHAUSTED", async () => {
      const empty: MetricsBatch = { samples: [] };
      expect(await pushMany(STREAM_MESSAGE_LIMITS.pushMetrics, empty)).toEqual({ code: status.OK, accepted: 0 });
      expect((await pushMany(STREAM_MESSAGE_LIMITS.pushMetrics + 1, empty)).code).toBe(status.RESOURCE_EXHAUSTED);
    });

    it("a message larger than the per-message limit ends the stream with RESOURCE_EXHAUSTED", async () => {
      const huge: MetricsBatch = { samples: [{ at: new Date(), intervalMs: 10_000, containers: [{ containerId: "y".repeat(MAX_MESSAGE_BYTES + 1), app: "a", environment: "e", cpuPercent: 1, memoryBytes: 1n, memoryLimitBytes: 1n }], traffic: [] }] };
      expect((await pushMany(1, huge)).code).toBe(status.RESOURCE_EXHAUSTED);
    });

    it("a report stream is applied as it arrives: more events than one chunk all stored, in order", async () => {
      const hostId = (await cp.services.hosts.authenticateAgent(`Bearer ${credential}`)).id;
      await cp.database.db.updateTable("hosts").set({ last_heartbeat_at: new Date(0) }).where("id", "!=", hostId).execute();
      await recordHeartbeat(cp.database.db, hostId, { at: new Date(), version: "t", capacity: { cpus: 4, memoryBytes: 16 * 2 ** 30, diskBytes: 2 ** 40 }, load: { cpu: 0, memoryUsedBytes: 0, diskUsedBytes: 0, containers: 0 } });
      await cp.app.inject({ method: "POST", url: "/v1/apps", headers: { authorization: `Bearer ${cp.adminToken}` }, payload: { name: "chunked", repository: "https://x.test/r.git" } });
      const d = (await cp.app.inject({ method: "POST", url: "/v1/apps/chunked/environments/test/deployments", headers: { authorization: `Bearer ${cp.adminToken}` }, payload: {} })).json();
      const job = await cp.database.db.selectFrom("jobs").selectAll().where("deployment_id", "=", d.id).executeTakeFirstOrThrow();
      expect(job.host_id).toBe(hostId);
      const n = 1234;
      const res = await new Promise<{ acked: Record<string, number> }>((resolve, reject) => {
        const call = client.reportJobEvents(md(), deadline(), (err, r) => (err ? reject(err) : resolve(r!)));
        for (let i = 1; i <= n; i++) call.write({ jobId: job.id, seq: i, event: { $case: "log", value: { text: `line ${i}` } } });
        call.end();
      });
      expect(res.acked[job.id]).toBe(n);
      const log = await cp.app.inject({ method: "GET", url: `/v1/deployments/${d.id}/log`, headers: { authorization: `Bearer ${cp.adminToken}` } });
      expect(log.body).toBe(Array.from({ length: n }, (_, i) => `line ${i + 1}\n`).join(""));
    });

    it("a heartbeat stream is answered beat by beat", async () => {
      const call = client.heartbeat(md(), deadline());
      const beat: HeartbeatRequest = { version: "t", cpuLoad: 0, memoryUsedBytes: 0n, diskUsedBytes: 0n, diskFreeBytes: 0n, containers: [], environments: [], ingressAddress: "", incidents: [], servedCertificates: [], servedCertificatesReported: false };
      call.write(beat);
      await once(call, "data");
      call.write(beat);
      await once(call, "data");
      call.end();
      await once(call, "status");
    });
  });
});
