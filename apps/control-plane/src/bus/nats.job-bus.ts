import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { JOBS_STREAM, JOBS_SUBJECT_PREFIX, jobsConsumer, jobsSubject, type Logger } from "@slipway/core";
import type { JobBus } from "./job-bus.js";
import type { NatsAccess } from "./nats-users.js";
import { natsServers } from "./nats-servers.js";

/** Default ack_wait of agents' consumers: an agent that dies mid-job gets it redelivered after this. */
export const JOB_ACK_WAIT_MS = 60_000;

export class NatsJobBus implements JobBus {
  private nc?: NatsConnection;
  private js?: JetStreamClient;
  private jsm?: JetStreamManager;
  private readonly consumers = new Set<string>();
  private streamReady = false;

  private readonly ackWaitMs: number;
  private readonly replicas: number;

  /**
   * `replicas`: of the jobs stream (1 on one server, 3 on a three-node cluster). The hosts'
   * consumers are created without replicas of their own, so JetStream gives them the stream's,
   * also when the stream is scaled later.
   */
  constructor(private readonly access: NatsAccess, private readonly log: Logger, opts: { ackWaitMs?: number; replicas?: number } = {}) {
    this.ackWaitMs = opts.ackWaitMs ?? JOB_ACK_WAIT_MS;
    this.replicas = opts.replicas ?? 1;
  }

  /** Connects, retrying for ever in the background: a NATS outage delays jobs, it never stops the control plane. */
  async connect(): Promise<void> {
    this.nc = await connect({ servers: natsServers(this.access.url), ...(this.access.authenticator ? { authenticator: this.access.authenticator } : {}), maxReconnectAttempts: -1, reconnectTimeWait: 500, waitOnFirstConnect: true, name: "slipway-control-plane" });
    this.js = jetstream(this.nc);
    (async () => {
      for await (const s of this.nc!.status()) {
        if (s.type === "disconnect" || s.type === "reconnect") this.log.info({ nats: s.type }, "nats connection status");
        if (s.type === "reconnect") {
          this.jsm = undefined;
          this.streamReady = false;
          this.consumers.clear();
        }
      }
    })().catch(() => undefined);
  }

  private async manager(): Promise<JetStreamManager> {
    if (!this.nc) throw new Error("nats: not connected");
    if (!this.jsm) this.jsm = await jetstreamManager(this.nc, { timeout: 5000 });
    return this.jsm;
  }

  async ensureStream(): Promise<void> {
    if (this.streamReady) return;
    const jsm = await this.manager();
    const config = {
      name: JOBS_STREAM,
      subjects: [`${JOBS_SUBJECT_PREFIX}.>`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: 2 * 60 * 1_000_000_000,
      num_replicas: this.replicas,
    };
    let existing;
    try {
      existing = await jsm.streams.info(JOBS_STREAM);
    } catch {
      await jsm.streams.add(config);
      this.log.info({ stream: JOBS_STREAM, replicas: this.replicas }, "created jobs stream");
    }
    // JetStream moves a stream between replica counts in place (its messages and consumers kept):
    // a platform that grew from one NATS server to a cluster gets its stream replicated at the next start.
    if (existing && existing.config.num_replicas !== this.replicas) {
      const from = existing.config.num_replicas;
      await jsm.streams.update(JOBS_STREAM, { ...existing.config, num_replicas: this.replicas });
      this.log.info({ stream: JOBS_STREAM, from, replicas: this.replicas }, "changed replicas of jobs stream");
      await this.recreateConsumers(jsm);
    }
    this.streamReady = true;
  }

  /**
   * After a change of the stream's replicas, every host's consumer is made again with the same
   * configuration. Seen with nats-server 2.9.10: a consumer carried over from R1 to R3 acks its
   * messages (nothing is redelivered) but the work queue no longer removes them, so acked jobs pile
   * up in the stream. A new consumer starts from the first message left, which is a job not acked
   * yet: none is lost; one running at this moment is delivered again and its agent ignores the copy
   * (it runs it already, or finds it finished).
   */
  private async recreateConsumers(jsm: JetStreamManager): Promise<void> {
    await this.waitForReplicas(jsm);
    const consumers = [];
    for await (const ci of jsm.consumers.list(JOBS_STREAM)) consumers.push(ci.config);
    for (const config of consumers) {
      const { num_replicas: _inherited, ...own } = config;
      await jsm.consumers.delete(JOBS_STREAM, config.durable_name ?? config.name!).catch(() => undefined);
      await jsm.consumers.add(JOBS_STREAM, own);
    }
    this.consumers.clear();
    this.log.info({ stream: JOBS_STREAM, consumers: consumers.length }, "made the hosts' job consumers again on the stream's new replicas");
  }

  /** Waits (at most 30 s) until the stream has its new replicas and they are current. */
  private async waitForReplicas(jsm: JetStreamManager): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const info = await jsm.streams.info(JOBS_STREAM);
      const current = 1 + (info.cluster?.replicas ?? []).filter((r) => r.current).length;
      if (current >= this.replicas || Date.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async ensureConsumer(hostId: string): Promise<void> {
    if (this.consumers.has(hostId)) return;
    await this.ensureStream();
    const jsm = await this.manager();
    const name = jobsConsumer(hostId);
    const ackWaitNs = this.ackWaitMs * 1_000_000;
    let existing;
    try {
      existing = await jsm.consumers.info(JOBS_STREAM, name);
    } catch {
      await jsm.consumers.add(JOBS_STREAM, {
        durable_name: name,
        filter_subject: jobsSubject(hostId),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: ackWaitNs,
        max_deliver: -1,
        max_ack_pending: 16,
      });
      this.log.info({ hostId, consumer: name, ackWaitMs: this.ackWaitMs }, "created jobs consumer");
    }
    // A changed configuration applies to consumers created before it; agents read ack_wait from the consumer.
    if (existing && existing.config.ack_wait !== ackWaitNs) {
      await jsm.consumers.update(JOBS_STREAM, name, { ack_wait: ackWaitNs });
      this.log.info({ hostId, consumer: name, ackWaitMs: this.ackWaitMs }, "changed ack wait of jobs consumer");
    }
    this.consumers.add(hostId);
  }

  async deleteConsumer(hostId: string): Promise<void> {
    const jsm = await this.manager();
    await jsm.consumers.delete(JOBS_STREAM, jobsConsumer(hostId)).catch(() => undefined);
    this.consumers.delete(hostId);
  }

  async publish(hostId: string, jobId: string, data: Uint8Array): Promise<void> {
    if (!this.js) throw new Error("nats: not connected");
    await this.ensureConsumer(hostId);
    await this.js.publish(jobsSubject(hostId), data, { msgID: jobId, timeout: 5000 });
  }

  async close(): Promise<void> {
    if (this.nc && !this.nc.isClosed()) await this.nc.close();
  }
}
