import { connect } from "@nats-io/transport-node";
import { natsOptions, type AgentNats } from "../nats/connection.js";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import { JobMessage } from "@slipway/proto";
import { JOBS_PULL, type Logger } from "@slipway/core";

/** Runs one job; resolves when its final state has been reported (then the message is acked). */
export type JobHandler = (job: JobMessage, signal: AbortSignal) => Promise<"ack" | { nakDelayMs: number } | "term">;

/** The longest pause between two in-progress acks of a running job (the default ack_wait is 60 s). */
const MAX_WORKING_INTERVAL_MS = 15_000;

/** In-progress acks three times per ack_wait, so one lost ack never lets JetStream redeliver a running job. */
export function workingIntervalMs(ackWaitNs: number | undefined): number {
  if (!ackWaitNs || ackWaitNs <= 0) return MAX_WORKING_INTERVAL_MS;
  return Math.max(200, Math.min(MAX_WORKING_INTERVAL_MS, Math.floor(ackWaitNs / 1_000_000 / 3)));
}

/**
 * Consumes this host's durable pull consumer. Jobs run concurrently up to
 * `concurrency`; a message is acked only after the handler reports the final
 * state, kept alive with in-progress acks meanwhile, and nak'ed with a delay
 * when the handler hits a transient failure. Shutdown: stop pulling, wait up to
 * the grace period for running jobs, then abort them (their messages are
 * redelivered to the next agent start).
 */
export class JobConsumer {
  private nc?: NatsConnection;
  private messages?: ConsumerMessages;
  private readonly running = new Map<string, AbortController>();
  private stopped = false;
  private loop?: Promise<void>;
  /** Set from the consumer's ack_wait, which the control plane configures. */
  private workingMs = MAX_WORKING_INTERVAL_MS;

  constructor(
    private readonly opts: { nats: AgentNats; stream: string; consumer: string; concurrency: number; log: Logger },
    private readonly handler: JobHandler,
  ) {}

  async start(): Promise<void> {
    this.nc = await connect(natsOptions(this.opts.nats, `slipway-agent-${this.opts.consumer}`));
    this.loop = this.consumeForever();
  }

  private async consumeForever(): Promise<void> {
    const js = jetstream(this.nc!);
    while (!this.stopped) {
      try {
        const consumer = await js.consumers.get(this.opts.stream, this.opts.consumer);
        this.workingMs = workingIntervalMs((await consumer.info(true)).config.ack_wait);
        this.messages = await consumer.consume({ max_messages: this.opts.concurrency, ...JOBS_PULL });
        this.opts.log.info({ consumer: this.opts.consumer, workingIntervalMs: this.workingMs }, "consuming jobs");
        for await (const m of this.messages) {
          while (this.running.size >= this.opts.concurrency && !this.stopped) await new Promise((r) => setTimeout(r, 50));
          if (this.stopped) break;
          void this.handle(m);
        }
      } catch (err) {
        if (this.stopped) break;
        this.opts.log.warn({ err: (err as Error).message }, "job consumer interrupted; retrying in 2 s");
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  private async handle(m: JsMsg): Promise<void> {
    let job: JobMessage;
    try {
      job = JobMessage.decode(m.data);
    } catch {
      this.opts.log.error({ seq: m.seq }, "undecodable job message; terminating it");
      m.term();
      return;
    }
    const log = this.opts.log.child({ jobId: job.jobId, deploymentId: job.deploymentId });
    if (this.running.has(job.jobId)) {
      log.info("job redelivered while still running here; ignoring the copy");
      return;
    }
    const ac = new AbortController();
    this.running.set(job.jobId, ac);
    const working = setInterval(() => m.working(), this.workingMs);
    try {
      log.info({ kind: job.kind, redelivered: m.redelivered }, "job received");
      const outcome = await this.handler(job, ac.signal);
      if (outcome === "ack") m.ack();
      else if (outcome === "term") m.term();
      else m.nak(outcome.nakDelayMs);
    } catch (err) {
      log.error({ err }, "job handler failed; redelivering later");
      m.nak(5000);
    } finally {
      clearInterval(working);
      this.running.delete(job.jobId);
    }
  }

  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    await this.messages?.close().catch(() => undefined);
    const until = Date.now() + graceMs;
    while (this.running.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    for (const ac of this.running.values()) ac.abort();
    while (this.running.size > 0) await new Promise((r) => setTimeout(r, 50));
    await this.loop?.catch(() => undefined);
    if (this.nc && !this.nc.isClosed()) await this.nc.close();
  }
}
