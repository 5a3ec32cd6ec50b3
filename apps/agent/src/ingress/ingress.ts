/** A server the ingress routes an environment's traffic to. */
export interface BackendTarget {
  /** The container id (or any stable id) this server stands for. */
  id: string;
  host: string;
  port: number;
}

export interface BackendConfig {
  /** Backend name: environmentSlug(app, env), e.g. "shop--live". */
  name: string;
  /** Host names routed to this backend (exact match, case-insensitive, port ignored). */
  hostnames: string[];
  /** Optional HTTP basic auth (password as a crypt(3)-compatible hash or plain, see the adapter). */
  basicAuth?: { username: string; passwordHash: string } | null;
  /** The most servers this backend must hold at once (2 × replicas during a switch). */
  maxServers: number;
}

/**
 * The HTTP ingress of one host (HAProxy). Structure (backends, host names,
 * auth) changes through ensureBackend/removeBackend, which may reload the
 * proxy gracefully; traffic moves only through switchTraffic, which uses the
 * runtime API and never touches client connections. Calls are serialised by
 * the adapter; all methods are idempotent.
 */
export interface Ingress {
  /** Starts (or adopts an already running) proxy. */
  start(): Promise<void>;
  /** Stops the proxy this adapter started. */
  stop(): Promise<void>;
  /** The port on which it serves HTTP. */
  readonly httpPort: number;
  ensureBackend(cfg: BackendConfig): Promise<void>;
  removeBackend(name: string): Promise<void>;
  /**
   * Moves all traffic of the backend to `targets` in one step: the new servers
   * are made ready, then the old ones drained (no new requests; requests in
   * flight complete, waited for up to drainTimeoutMs), then put in maintenance.
   * Returns the targets that were replaced, so the caller can stop them.
   */
  switchTraffic(name: string, targets: BackendTarget[], opts?: { drainTimeoutMs?: number }): Promise<BackendTarget[]>;
  /** The targets currently receiving traffic. */
  current(name: string): Promise<BackendTarget[]>;
  /** Per-backend counters from `show stat`. */
  stats(name: string): Promise<{ requests: number; secondsSinceLastRequest: number | null } | undefined>;
}
