/**
 * A load generator process of the fleet benchmark: simulates many agents
 * speaking the real protocols, each with its own connections, as a real agent
 * process would have them:
 *   - its own gRPC channel (a separate HTTP/2 connection: local subchannel
 *     pool; 20 s keepalive like apps/agent), Register with its own join token,
 *     then one Heartbeat stream with a beat every interval at a fixed phase;
 *   - its own NATS connection consuming its durable pull consumer like
 *     apps/agent/src/jobs/job-consumer.ts (consumers.get + consume with
 *     max_messages = the agent's default job concurrency, 4).
 * A job message is acked at once; then GetJobSpec (as the agent does before
 * running a job) and one ReportJobEvents call with a `result: succeeded`
 * event, so the deployment ends.
 *
 * Driven by the parent over IPC (fleet-protocol.ts). Started by fleet.bench.ts
 * through `bash -c 'ulimit -n …; exec node fleet-worker.js'`.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { credentials, Metadata, type ClientDuplexStream } from "@grpc/grpc-js";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import { JOBS_PULL } from "@slipway/core";
import { AgentServiceClient, JobMessage, type HeartbeatRequest, type HeartbeatResponse } from "@slipway/proto";
import { collectGarbage, monoMs, type AgentSeed, type FromWorker, type ToWorker, type WorkerStats } from "./fleet-protocol.js";

const GRPC_ADDRESS = process.env.FLEET_GRPC_ADDRESS!;
const NATS_URL_OVERRIDE = process.env.FLEET_NATS_URL || undefined;
const GET_SPEC = process.env.FLEET_GET_SPEC !== "0";
const JOB_CONCURRENCY = 4;
/** Golden-ratio sequence: any number of agents gets evenly spread phases, and new ones interleave with old ones. */
const PHI = 0.6180339887498949;

const send = (m: FromWorker) => process.send!(m);
const bump = (rec: Record<string, number>, key: string) => (rec[key] = (rec[key] ?? 0) + 1);

let stats = freshStats();
function freshStats(): Omit<WorkerStats, "agents" | "hbOverdue" | "loopDelayP99Ms" | "loopDelayMaxMs" | "rssBytes"> {
  return { hbSent: 0, hbAnswered: 0, hbRtt: [], hbErrors: {}, hbLate: 0, jobsReceived: 0, jobsReported: 0, jobErrors: {}, natsNotices: {} };
}
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

class SimAgent {
  hostId = "";
  private credential = "";
  private client: AgentServiceClient;
  private md = new Metadata();
  private stream?: ClientDuplexStream<HeartbeatRequest, HeartbeatResponse>;
  /** Send times of beats not answered yet (answers come in order on the stream). */
  private pending: number[] = [];
  private timer?: NodeJS.Timeout;
  /** Where in each heartbeat interval this agent beats (spread evenly over the fleet). */
  private phaseMs = 0;
  /** When the next beat is due (the clock's milliseconds). */
  private nextBeatAt: number | undefined;
  private nc?: NatsConnection;
  private messages?: ConsumerMessages;
  private stopped = false;
  private intervalMs = 5000;
  private readonly cpuLoad: number;

  constructor(private readonly seed: AgentSeed) {
    // A separate connection per agent, as separate agent processes would have.
    this.client = new AgentServiceClient(GRPC_ADDRESS, credentials.createInsecure(), { "grpc.keepalive_time_ms": 20_000, "grpc.use_local_subchannel_pool": 1 });
    this.cpuLoad = 0.05 + ((seed.idx * 0.37) % 1) * 0.5;
  }

  /** Register, then the NATS consumer; returns the two durations. */
  async start(): Promise<{ registerMs: number; consumeMs: number }> {
    const t0 = monoMs();
    const res = await new Promise<import("@slipway/proto").RegisterResponse>((resolve, reject) =>
      this.client.register(
        {
          joinToken: this.seed.joinToken,
          hostname: `fleet-sim-${this.seed.idx}`,
          labels: { fleet: "sim" },
          capacity: { cpus: 4, memoryBytes: 8 * 2 ** 30, diskBytes: 100 * 2 ** 30 },
          version: "fleet-sim",
          ingressAddress: `127.0.0.1:${10_000 + (this.seed.idx % 50_000)}`,
        },
        new Metadata(),
        { deadline: new Date(Date.now() + 60_000) },
        (err, r) => (err ? reject(err) : resolve(r!)),
      ),
    );
    const t1 = monoMs();
    this.hostId = res.hostId;
    this.credential = res.credential;
    this.intervalMs = res.heartbeatIntervalMs || 5000;
    this.md.set("authorization", `Bearer ${this.credential}`);
    this.nc = await connect({ servers: NATS_URL_OVERRIDE ?? res.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 500, waitOnFirstConnect: true, name: `slipway-agent-${res.jobsConsumer}` });
    const js = jetstream(this.nc);
    const consumer = await js.consumers.get(res.jobsStream, res.jobsConsumer);
    this.messages = await consumer.consume({ max_messages: JOB_CONCURRENCY, ...JOBS_PULL });
    void this.consumeLoop(this.messages);
    void this.watchNotices(this.messages);
    const t2 = monoMs();
    this.phaseMs = ((this.seed.idx * PHI) % 1) * this.intervalMs;
    this.scheduleBeat();
    return { registerMs: t1 - t0, consumeMs: t2 - t1 };
  }

  /**
   * The next beat at this agent's own phase of the interval (the clock's), whenever the last one
   * ran. Not setInterval: Node reschedules an interval from the moment its callback ran, so every
   * agent whose beat came due during a pause of this process's event loop (a major GC) would beat
   * in the same instant from then on, and each pause would gather more of the fleet into bursts
   * every interval. Real agents, each with its own process, never line up that way; a late beat
   * here runs once, late, and the next one is back at its phase.
   */
  private scheduleBeat(): void {
    if (this.stopped) return;
    const now = Date.now();
    // One interval after the last due time; later than that already (a long pause): the next time at its phase.
    this.nextBeatAt = this.nextBeatAt === undefined ? undefined : this.nextBeatAt + this.intervalMs;
    if (this.nextBeatAt === undefined || this.nextBeatAt <= now) this.nextBeatAt = now + ((((this.phaseMs - now) % this.intervalMs) + this.intervalMs) % this.intervalMs);
    this.timer = setTimeout(() => {
      this.beat();
      this.scheduleBeat();
    }, this.nextBeatAt - now);
  }

  private open(): ClientDuplexStream<HeartbeatRequest, HeartbeatResponse> {
    const s = this.client.heartbeat(this.md);
    s.on("data", () => {
      const sentAt = this.pending.shift();
      if (sentAt === undefined) return;
      const rtt = monoMs() - sentAt;
      stats.hbAnswered++;
      stats.hbRtt.push(rtt);
      if (rtt > this.intervalMs) stats.hbLate++;
    });
    const broken = (why: string) => {
      if (this.stream !== s) return;
      this.stream = undefined;
      this.pending = [];
      if (!this.stopped) bump(stats.hbErrors, why);
    };
    s.on("error", (err: Error & { code?: number }) => broken(`status ${err.code}: ${err.message.slice(0, 120)}`));
    s.on("end", () => broken("stream ended by the control plane"));
    return s;
  }

  private beat(): void {
    if (this.stopped) return;
    // A broken stream is reopened at the next beat (the real agent waits 1 s).
    this.stream ??= this.open();
    this.pending.push(monoMs());
    stats.hbSent++;
    this.stream.write({
      version: "fleet-sim",
      cpuLoad: this.cpuLoad,
      memoryUsedBytes: 2 * 2 ** 30,
      diskUsedBytes: 10 * 2 ** 30,
      diskFreeBytes: 90 * 2 ** 30,
      capacity: { cpus: 4, memoryBytes: 8 * 2 ** 30, diskBytes: 100 * 2 ** 30 },
      containers: [],
      environments: [],
      incidents: [],
      ingressAddress: `127.0.0.1:${10_000 + (this.seed.idx % 50_000)}`,
      // As a real agent: the served certificates only when they changed (never, here).
      servedCertificates: [],
      servedCertificatesReported: false,
    });
  }

  oldestPending(now: number): number {
    return this.pending.length ? now - this.pending[0]! : 0;
  }

  overdue(now: number): number {
    return this.pending.filter((t) => now - t > this.intervalMs).length;
  }

  private async consumeLoop(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const m of messages) void this.handle(m);
    } catch (err) {
      if (!this.stopped) bump(stats.jobErrors, `consume loop: ${(err as Error).message.slice(0, 120)}`);
    }
  }

  private async watchNotices(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const s of messages.status()) bump(stats.natsNotices, s.type);
    } catch {
      // closed
    }
  }

  private async handle(m: JsMsg): Promise<void> {
    const at = monoMs();
    stats.jobsReceived++;
    let job: JobMessage;
    try {
      job = JobMessage.decode(m.data);
    } catch {
      m.term();
      bump(stats.jobErrors, "undecodable job message");
      return;
    }
    send({ t: "rx", deploymentId: job.deploymentId, jobId: job.jobId, hostId: this.hostId, at, redelivered: m.redelivered });
    m.ack();
    try {
      if (GET_SPEC) {
        await new Promise<void>((resolve, reject) =>
          this.client.getJobSpec({ jobId: job.jobId }, this.md, { deadline: new Date(Date.now() + 30_000) }, (err) => (err ? reject(err) : resolve())),
        );
      }
      await new Promise<void>((resolve, reject) => {
        const call = this.client.reportJobEvents(this.md, { deadline: new Date(Date.now() + 30_000) }, (err) => (err ? reject(err) : resolve()));
        call.write({ jobId: job.jobId, seq: 1, at: new Date(), event: { $case: "result", value: { state: "succeeded", commit: "", image: "", imageDigest: "" } } });
        call.end();
      });
      stats.jobsReported++;
      send({ t: "done", deploymentId: job.deploymentId, at: monoMs(), ok: true });
    } catch (err) {
      const msg = (err as Error).message.slice(0, 120);
      bump(stats.jobErrors, msg);
      send({ t: "done", deploymentId: job.deploymentId, at: monoMs(), ok: false, error: msg });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.stream?.end();
    await this.messages?.close().catch(() => undefined);
    if (this.nc && !this.nc.isClosed()) await this.nc.close().catch(() => undefined);
    this.client.close();
  }
}

const agents: SimAgent[] = [];
let halted = false;

async function add(seeds: AgentSeed[], concurrency: number): Promise<void> {
  const errors: Record<string, number> = {};
  const registerMs: number[] = [];
  const consumeMs: number[] = [];
  let ok = 0;
  let next = 0;
  halted = false;
  const lane = async () => {
    while (next < seeds.length && !halted) {
      const seed = seeds[next++]!;
      const a = new SimAgent(seed);
      try {
        const r = await a.start();
        registerMs.push(r.registerMs);
        consumeMs.push(r.consumeMs);
        agents.push(a);
        ok++;
      } catch (err) {
        bump(errors, (err as Error).message.slice(0, 160));
        await a.stop().catch(() => undefined);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, seeds.length) }, lane));
  send({ t: "added", ok, failed: next - ok, errors, registerMs, consumeMs });
}

function readStats(): WorkerStats {
  const now = monoMs();
  const s: WorkerStats = {
    ...stats,
    agents: agents.length,
    hbOverdue: agents.reduce((n, a) => n + a.overdue(now), 0),
    loopDelayP99Ms: loop.percentile(99) / 1e6,
    loopDelayMaxMs: loop.max / 1e6,
    rssBytes: process.memoryUsage().rss,
  };
  stats = freshStats();
  loop.reset();
  return s;
}

async function stopAll(): Promise<void> {
  const all = agents.splice(0);
  await Promise.race([Promise.allSettled(all.map((a) => a.stop())), new Promise((r) => setTimeout(r, 5000))]);
  send({ t: "stopped" });
  setTimeout(() => process.exit(0), 100);
}

process.on("message", (m: ToWorker) => {
  if (m.t === "add") void add(m.agents, m.concurrency);
  else if (m.t === "stats") send({ t: "stats", stats: readStats() });
  else if (m.t === "halt") halted = true;
  else if (m.t === "probe") {
    const now = monoMs();
    send({ t: "probe", oldestPendingMs: agents.reduce((mx, a) => Math.max(mx, a.oldestPending(now)), 0) });
  }
  else if (m.t === "gc") void collectGarbage().then((ms) => send({ t: "gc", ms }));
  else if (m.t === "stop") void stopAll();
});
// The parent went away (crash, SIGKILL): do not linger.
process.on("disconnect", () => process.exit(0));
send({ t: "ready" });
