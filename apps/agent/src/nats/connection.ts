import { connect } from "@nats-io/transport-node";
import { nkeyAuthenticator, nkeys, type ConnectionOptions, type NatsConnection } from "@nats-io/nats-core";

/**
 * How this agent reaches NATS: the address, and (once the control plane made
 * it this host's user) its nkey seed, which never leaves the agent, and the
 * inbox prefix its user may use. Without a seed it connects anonymously (an
 * external NATS the control plane does not configure).
 */
export interface AgentNats {
  /** One URL, or a cluster's nodes comma-separated (as NATS_URL and the control plane hand them out). */
  url: string;
  seed?: string;
  inboxPrefix?: string;
}

/** A new nkey user seed ("SU…"), kept in the agent's identity file. */
export function createNatsSeed(): string {
  return new TextDecoder().decode(nkeys.createUser().getSeed());
}

/** The public key ("U…") the control plane makes this host's NATS user. */
export function natsPublicKey(seed: string): string {
  return nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
}

/**
 * The servers of a NATS address: `nats://a:4222,nats://b:4222,…` names a cluster's nodes. nats.js
 * connects to any one that answers and, when it dies, reconnects to another (those listed and
 * those the cluster announces), so the agent's consumer carries on against the surviving nodes.
 */
export function natsServers(url: string): string[] {
  return url
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Connection options for every NATS connection of the agent: reconnect for ever, its own identity. */
export function natsOptions(n: AgentNats, name: string): ConnectionOptions {
  return {
    servers: natsServers(n.url),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: true,
    name,
    ...(n.seed ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(n.seed)) } : {}),
    ...(n.inboxPrefix ? { inboxPrefix: n.inboxPrefix } : {}),
  };
}

/**
 * The agent's NATS core connection for requests addressed to this host
 * (runtime logs and shells: one connection serves both servers). Reconnects
 * for ever; the caller drains it at shutdown.
 */
export function connectRequests(n: AgentNats, hostId: string): Promise<NatsConnection> {
  return connect(natsOptions(n, `slipway-agent-requests-${hostId}`));
}

/** One connection with these options, closed at once: throws the server's refusal (tests, diagnostics). */
export async function checkNatsAccess(n: AgentNats): Promise<void> {
  const nc = await connect({ ...natsOptions(n, "slipway-agent-check"), maxReconnectAttempts: 0, waitOnFirstConnect: false, reconnect: false });
  await nc.close();
}
