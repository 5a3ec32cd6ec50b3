/** A certificate to serve (TlsStore's input): the leaf first, then its chain; the key in PEM. */
export interface CertificateInput {
  hostnames: string[];
  certPem: string;
  keyPem: string;
}

/** A certificate the ingress serves (as TlsStore lists it). */
export interface InstalledCertificate {
  /** File name without `.pem`: the first of its host names, sorted. */
  name: string;
  path: string;
  hostnames: string[];
  /** Uppercase hex, no leading zeros, as HAProxy serves it. */
  serial: string;
  notAfter: Date;
}

/** A server the ingress routes an environment's traffic to. */
export interface BackendTarget {
  /** The container id (or any stable id) this server stands for. */
  id: string;
  host: string;
  port: number;
}

/**
 * Activity of one backend. Both figures err on the busy side, so that an
 * environment is never put to sleep because counters were reset (reload).
 */
export interface BackendStats {
  /** Requests since the proxy's current worker started. */
  requests: number;
  /** Seconds since the last request; at most the current worker's uptime. */
  secondsSinceLastRequest: number | null;
  /** Open sessions (in-flight requests, WebSocket and other tunnels); at least 1 while an older worker still holds connections. */
  sessions: number;
}

export interface BackendConfig {
  /**
   * Backend name: the environment's slug, core's environmentSlug(environmentId), e.g.
   * "env-0f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b" (older agents recorded "<app>--<env>").
   */
  name: string;
  /** The basic auth realm browsers show, for people (`<app>-<env>`); default derived from the name. */
  realm?: string;
  /** Host names routed to this backend (exact match, case-insensitive, port ignored). */
  hostnames: string[];
  /**
   * Optional HTTP basic auth, checked by digest: `digest` is the hex sha256 of
   * the Authorization header value, sha256("Basic " + base64(user:password)),
   * so the password never reaches the agent. Requests without the matching
   * header get 401 with a `WWW-Authenticate: Basic realm="<realm>"`.
   */
  basicAuth?: { username: string; digest: string } | null;
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
export interface SwitchOptions {
  drainTimeoutMs?: number;
  testPauseMidSwitchMs?: number;
}

/**
 * The certificates served on the ingress's HTTPS port (TlsStore in the agent). install replaces
 * the certificate of exactly the same host names (no reload) and refuses names another
 * certificate serves; remove takes exactly the host names a certificate was installed for.
 */
export interface IngressTls {
  install(input: CertificateInput): Promise<InstalledCertificate>;
  remove(hostnames: string[]): Promise<boolean>;
  /** The installed certificates (not the default one) with the serial and expiry served. */
  list(): Promise<InstalledCertificate[]>;
  /** Moves with every install or removal (what is served may have changed). */
  readonly generation: number;
}

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
   * Resolves only once no process of the proxy that can still take a request
   * (e.g. the previous worker after a reload, on a connection it keeps) routes
   * the backend's host names otherwise, so a deployment that reports success
   * is served at its host names.
   * `testPauseMidSwitchMs` (fault tests only) pauses once the new servers are
   * ready and the old ones draining.
   */
  switchTraffic(name: string, targets: BackendTarget[], opts?: SwitchOptions): Promise<BackendTarget[]>;
  /** The targets currently receiving traffic. */
  current(name: string): Promise<BackendTarget[]>;
  /** Per-backend counters; undefined when there is no such backend. */
  stats(name: string): Promise<BackendStats | undefined>;
  /** The HTTPS port; undefined when HTTPS is off on this host (SLIPWAY_INGRESS_HTTPS_PORT unset). */
  readonly httpsPort: number | undefined;
  /** The certificates served on the HTTPS port; undefined when HTTPS is off. */
  readonly tls: IngressTls | undefined;
  /**
   * Answers HTTP-01 challenges (`/.well-known/acme-challenge/<token>` → `<token>.<thumbprint>`,
   * on HTTP, any host name) with this ACME account thumbprint; reloads only when it changes.
   */
  setAcmeThumbprint(thumbprint: string): Promise<void>;
  /**
   * Which of a backend's host names are redirected from HTTP to HTTPS (308), each with its HSTS
   * max-age in seconds (0 = no Strict-Transport-Security on its HTTPS responses); the others are
   * served over HTTP as before. Runtime only, no reload; a backend not here: nothing.
   */
  setHttpsHosts(backend: string, hosts: Record<string, number>): Promise<void>;
}
