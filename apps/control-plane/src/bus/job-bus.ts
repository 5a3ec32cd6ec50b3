/**
 * Where jobs go. The NATS adapter publishes to JetStream with the job id as
 * message id, so publishing the same job twice stores it once.
 */
export interface JobBus {
  /** Creates the jobs stream when missing. Idempotent. */
  ensureStream(): Promise<void>;
  /** Creates the host's durable pull consumer when missing. Idempotent. */
  ensureConsumer(hostId: string): Promise<void>;
  /** Deletes the host's consumer (revocation): its agent can fetch no more jobs. Missing is fine. */
  deleteConsumer(hostId: string): Promise<void>;
  /** Publishes one job message; resolves once JetStream stored it. Throws when NATS is unreachable. */
  publish(hostId: string, jobId: string, data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}
