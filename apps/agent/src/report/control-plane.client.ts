import { readFileSync } from "node:fs";
import { credentials, Metadata, type ClientDuplexStream } from "@grpc/grpc-js";
import {
  AgentServiceClient,
  type GetJobSpecResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JobEvent,
  type MetricsBatch,
  type PushMetricsResponse,
  type ConfigureNatsResponse,
  type RegisterRequest,
  type RegisterResponse,
  type ReportJobEventsResponse,
} from "@slipway/proto";

/** Events per ReportJobEvents stream: well below the control plane's limit per stream (10,000). */
export const REPORT_EVENTS_PER_STREAM = 1000;

/**
 * The agent's side of the AgentService. The credential travels as per-call
 * metadata (not call credentials as well: grpc-js refuses two values).
 */
export class ControlPlaneClient {
  private readonly client: AgentServiceClient;
  private credential?: string;

  constructor(address: string, opts: { tlsCaFile?: string; tlsCertFile?: string; tlsKeyFile?: string } = {}) {
    const creds = opts.tlsCaFile
      ? credentials.createSsl(
          readFileSync(opts.tlsCaFile),
          opts.tlsKeyFile ? readFileSync(opts.tlsKeyFile) : null,
          opts.tlsCertFile ? readFileSync(opts.tlsCertFile) : null,
        )
      : credentials.createInsecure();
    this.client = new AgentServiceClient(address, creds, { "grpc.keepalive_time_ms": 20_000 });
  }

  setCredential(credential: string): void {
    this.credential = credential;
  }

  private md(): Metadata {
    const md = new Metadata();
    if (this.credential) md.set("authorization", `Bearer ${this.credential}`);
    return md;
  }

  private deadline(ms: number): Date {
    return new Date(Date.now() + ms);
  }

  register(req: RegisterRequest): Promise<RegisterResponse> {
    return new Promise((resolve, reject) =>
      this.client.register(req, new Metadata(), { deadline: this.deadline(15_000) }, (err, res) => (err ? reject(err) : resolve(res!))),
    );
  }

  /** Makes `publicKey` this host's NATS user; resolves once the NATS server enforces it. */
  configureNats(publicKey: string): Promise<ConfigureNatsResponse> {
    return new Promise((resolve, reject) =>
      this.client.configureNats({ publicKey }, this.md(), { deadline: this.deadline(30_000) }, (err, res) => (err ? reject(err) : resolve(res!))),
    );
  }

  getJobSpec(jobId: string): Promise<GetJobSpecResponse> {
    return new Promise((resolve, reject) =>
      this.client.getJobSpec({ jobId }, this.md(), { deadline: this.deadline(15_000) }, (err, res) => (err ? reject(err) : resolve(res!))),
    );
  }

  /**
   * Sends a batch of events; resolves with what the control plane stored. A batch longer than
   * REPORT_EVENTS_PER_STREAM goes out on several streams, one after the other (the control plane
   * ends a stream of more than 10,000 messages), and the answers are merged.
   */
  async reportJobEvents(events: JobEvent[]): Promise<ReportJobEventsResponse> {
    const merged: ReportJobEventsResponse = { acked: {}, cancelRequested: [] };
    for (let i = 0; i < events.length || i === 0; i += REPORT_EVENTS_PER_STREAM) {
      const res = await this.reportStream(events.slice(i, i + REPORT_EVENTS_PER_STREAM));
      Object.assign(merged.acked, res.acked);
      for (const id of res.cancelRequested) if (!merged.cancelRequested.includes(id)) merged.cancelRequested.push(id);
    }
    return merged;
  }

  private reportStream(events: JobEvent[]): Promise<ReportJobEventsResponse> {
    return new Promise((resolve, reject) => {
      const call = this.client.reportJobEvents(this.md(), { deadline: this.deadline(30_000) }, (err, res) => (err ? reject(err) : resolve(res!)));
      for (const e of events) call.write(e);
      call.end();
    });
  }

  /** Sends one batch of metrics samples on a client stream; resolves once the control plane stored them. */
  pushMetrics(batch: MetricsBatch): Promise<PushMetricsResponse> {
    return new Promise((resolve, reject) => {
      const call = this.client.pushMetrics(this.md(), { deadline: this.deadline(15_000) }, (err, res) => (err ? reject(err) : resolve(res!)));
      call.write(batch);
      call.end();
    });
  }

  heartbeat(): ClientDuplexStream<HeartbeatRequest, HeartbeatResponse> {
    return this.client.heartbeat(this.md());
  }

  close(): void {
    this.client.close();
  }
}
