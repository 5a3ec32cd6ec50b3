import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";

/**
 * The agent's NATS core connection for requests addressed to this host
 * (runtime logs and shells: one connection serves both servers). Reconnects
 * for ever; the caller drains it at shutdown.
 */
export function connectRequests(natsUrl: string, hostId: string): Promise<NatsConnection> {
  return connect({ servers: natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 500, waitOnFirstConnect: true, name: `slipway-agent-requests-${hostId}` });
}
