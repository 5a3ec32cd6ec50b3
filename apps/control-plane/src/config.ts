import { accessSync, constants as fsConstants } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { ConfigError, InvalidRequestError, intFromEnv as int, logLevelFromEnv, parseLimits, type ResourceLimits } from "@slipway/core";
import { isIP } from "node:net";
import { DEFAULT_RESOURCE_POLICY, type ResourcePolicy } from "./services/resource-policy.js";
import { acmeSettingsFromEnv } from "./tls/acme-settings.js";
import type { AcmeConfig } from "./tls/certificate.service.js";
import { parseNatsServers } from "./bus/nats-servers.js";

export { ConfigError };

/** Control plane configuration; `loadConfig` is the only reader of process.env. */
export interface ControlPlaneConfig {
  dataDir: string;
  /** PostgreSQL DSN; undefined = embedded PGlite in `<dataDir>/pglite`. */
  databaseUrl?: string;
  /**
   * NATS server, or a cluster's nodes comma-separated (bus/nats-servers.ts); undefined = a
   * `nats-server -js` started on loopback with its store in the data dir (always one node).
   */
  natsUrl?: string;
  /** NATS address(es) handed to agents at registration (defaults to natsUrl / the embedded server). */
  natsPublicUrl?: string;
  /** Replicas of the jobs stream (and so of its consumers): 1, or 3 on a three-node cluster. Applied at start when it differs. */
  natsReplicas: number;
  httpHost: string;
  httpPort: number;
  /** PEM files for the REST API's TLS (certificate chain and key); unset = plain HTTP. */
  httpTlsCert?: string;
  httpTlsKey?: string;
  grpcHost: string;
  grpcPort: number;
  /**
   * The agents' gRPC server runs in its own thread (a worker with its own database pool and NATS
   * connection), so beats from thousands of agents never queue a REST request's round trips
   * behind them on one event loop. PostgreSQL only (PGlite lives in the main thread).
   */
  agentThread: boolean;
  baseDomain: string;
  adminToken?: string;
  logLevel: string;
  heartbeatIntervalMs: number;
  /** Missed heartbeats after which a host is offline. */
  heartbeatMissLimit: number;
  /** Heartbeats are written together: a beat waits at most this long for its batch. */
  heartbeatFlushMs: number;
  joinTokenTtlMs: number;
  publishIntervalMs: number;
  natsServerBin: string;
  /**
   * With an external NATS (natsUrl set): a file the nats-server's configuration includes, which the
   * control plane keeps filled with one user per host (bus/nats-users.ts), and the command that makes
   * the server reload it. Unset = the external server is not configured by the control plane (agents
   * then share whatever access it grants: a warning at start).
   */
  natsUsersFile?: string;
  natsReloadCommand?: string;
  /** The control plane's own NATS nkey seed (created on first use); replicas sharing one NATS share it. */
  natsSeedFile: string;
  /** Port of the embedded nats-server (0 = any free port); stable so agents reconnect after a restart. */
  embeddedNatsPort: number;
  /** Port the ingress of every agent serves HTTP on, used to build environment URLs (0 = omit). */
  ingressPublicPort: number;
  /** Scheme of environment URLs. */
  ingressScheme: "http" | "https";
  /** Base64 of the 32-byte key that encrypts secrets at rest; undefined = `<dataDir>/secret.key`. */
  secretKey?: string;
  /** Admin DSN of the PostgreSQL cluster that holds the environments' databases (reachable from agents). */
  databaseAdminUrl: string;
  /** Host name containers use for that cluster (resolved to the host gateway in every container). */
  databaseHostForContainers: string;
  /** Prefix of the environments' database and role names. */
  databaseNamePrefix: string;
  /** S3 endpoint for media and backups; undefined = the embedded s3rver. */
  s3Endpoint?: string;
  /** The S3 endpoint as containers reach it; default: the embedded server through the host gateway. */
  s3EndpointForContainers?: string;
  s3Region: string;
  s3AccessKeyId?: string;
  s3SecretAccessKey?: string;
  s3MediaBucket: string;
  s3BackupBucket: string;
  /**
   * How environments' containers reach their media: "shared" = every container gets the platform's
   * key (a single-user S3 server such as the embedded one); "radosgw" = each environment its own
   * user and bucket on a Ceph Object Gateway (SLIPWAY_S3_ENDPOINT, whose keys must be a user with the
   * admin flag and the users=*;buckets=* caps).
   */
  s3Provider: "shared" | "radosgw";
  /** Where backups live when not on the media endpoint (default: the media endpoint and keys). */
  s3BackupEndpoint?: string;
  s3BackupAccessKeyId?: string;
  s3BackupSecretAccessKey?: string;
  embeddedS3Port: number;
  /** The embedded backup store (a second s3rver on loopback only: containers cannot reach it). */
  embeddedS3BackupPort: number;
  embeddedS3Bind: string;
  /** PEM files for gRPC TLS (server certificate and key); with grpcTlsClientCa, agents must present a certificate (mTLS). */
  grpcTlsCert?: string;
  grpcTlsKey?: string;
  grpcTlsClientCa?: string;
  /** How often the scheduler looks for due backups. */
  backupSchedulerIntervalMs: number;
  /**
   * Time to live of the "scheduler" lease in PostgreSQL (issue 16): the singletons (backup
   * scheduler, pruning, certificate renewal) run on the replica holding it; it is renewed every
   * third of this, other replicas try to take it as often, so a killed holder's work resumes
   * elsewhere within about 4/3 of it.
   */
  leaseTtlMs: number;
  /** How often an app's repository is fetched in the background unless the app sets its own (seconds; 0 = never: webhooks only). */
  gitPollSeconds: number;
  /** The API's address as git hosts reach it (webhook URLs); default: the address a request came to. */
  publicUrl?: string;
  /** Successful deployments per environment that can be rolled back to (the agents keep their images: the agent's SLIPWAY_ROLLBACK_IMAGES). */
  rollbackImages: number;
  /** Bytes a database archive uploaded through the API may have (POST …/backups/upload). */
  backupUploadMaxBytes: number;
  /** How long environment metrics (per minute) are kept. */
  metricsRetentionMs: number;
  /** The built web dashboard (index.html and assets/); undefined = @slipway/web's dist installed beside the control plane. */
  webDir?: string;
  /** How long a browser session lasts after its last use (never beyond its token's expiry). */
  sessionTtlMs: number;
  /** ack_wait of the agents' job consumers: how long after an agent dies mid-job the job is redelivered. */
  jobAckWaitMs: number;
  /** Limits of environments that set none, live's, and the CPU overcommit of placement. */
  resources: ResourcePolicy;
  /**
   * Automatic HTTPS for custom domains (issue 15); undefined = off (no certificate is ordered, no
   * CA is contacted). On when SLIPWAY_ACME_DIRECTORY or SLIPWAY_ACME_EMAIL is set: see acmeConfig.
   */
  acme?: AcmeConfig;
}

const defaults = {
  httpHost: "127.0.0.1",
  httpPort: 7700,
  grpcHost: "127.0.0.1",
  grpcPort: 7701,
  baseDomain: "localhost",
  logLevel: "info",
  heartbeatIntervalMs: 5000,
  heartbeatMissLimit: 3,
  heartbeatFlushMs: 100,
  joinTokenTtlMs: 3_600_000,
  publishIntervalMs: 1000,
  natsServerBin: "nats-server",
  embeddedNatsPort: 7702,
  ingressPublicPort: 8080,
  ingressScheme: "http" as const,
};

function url(env: NodeJS.ProcessEnv, name: string, protocols: string[]): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(name, `'${raw.replace(/\/\/[^@]*@/, "//***@")}' is not a URL`);
  }
  if (!protocols.includes(u.protocol)) throw new ConfigError(name, `protocol must be one of ${protocols.join(", ")}`);
  return raw;
}

/** One NATS URL or a cluster's, comma-separated (bus/nats-servers.ts). */
function natsUrls(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const parsed = parseNatsServers(raw, ["nats:", "tls:"]);
  if ("error" in parsed) throw new ConfigError(name, `${parsed.error} (one nats:// URL, or a cluster's nodes comma-separated)`);
  return parsed.list;
}

/** SLIPWAY_AGENT_THREAD: on by default with PostgreSQL; never with the embedded PGlite. */
function agentThread(env: NodeJS.ProcessEnv): boolean {
  const v = env.SLIPWAY_AGENT_THREAD || "auto";
  if (!["auto", "on", "off"].includes(v)) throw new ConfigError("SLIPWAY_AGENT_THREAD", `'${v}' must be auto, on or off`);
  if (v === "on" && !env.DATABASE_URL) throw new ConfigError("SLIPWAY_AGENT_THREAD", "on needs DATABASE_URL (the embedded PGlite cannot be shared with a thread)");
  return v === "on" || (v === "auto" && Boolean(env.DATABASE_URL));
}

function dbPrefix(env: NodeJS.ProcessEnv): string {
  const v = env.SLIPWAY_DATABASE_NAME_PREFIX || "slw";
  if (!/^[a-z][a-z0-9_]{0,15}$/.test(v)) throw new ConfigError("SLIPWAY_DATABASE_NAME_PREFIX", `'${v}' must be 1-16 of a-z, 0-9 and _, starting with a letter`);
  return v;
}

function bucket(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const v = env[name] || fallback;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(v)) throw new ConfigError(name, `'${v}' is not an S3 bucket name`);
  return v;
}

function limits(env: NodeJS.ProcessEnv, name: string, base: ResourceLimits): ResourceLimits {
  const raw = env[name];
  if (!raw) return base;
  try {
    return { ...base, ...parseLimits(raw, name) };
  } catch (err) {
    if (err instanceof InvalidRequestError) throw new ConfigError(name, err.message.replace(`${name}: `, "").replace(`${name}.`, ""));
    throw err;
  }
}

function resources(env: NodeJS.ProcessEnv): ResourcePolicy {
  const defaults = limits(env, "SLIPWAY_DEFAULT_LIMITS", DEFAULT_RESOURCE_POLICY.defaults);
  const overcommit = Number(env.SLIPWAY_CPU_OVERCOMMIT || DEFAULT_RESOURCE_POLICY.cpuOvercommit);
  if (!Number.isFinite(overcommit) || overcommit < 1 || overcommit > 100) throw new ConfigError("SLIPWAY_CPU_OVERCOMMIT", "must be a number from 1 to 100");
  return { defaults, liveDefaults: limits(env, "SLIPWAY_DEFAULT_LIVE_LIMITS", defaults), cpuOvercommit: overcommit };
}

/** Reads and validates the configuration once; throws ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<ControlPlaneConfig> {
  const baseDomain = env.SLIPWAY_BASE_DOMAIN || defaults.baseDomain;
  if (!/^[a-z0-9]([a-z0-9.-]{0,200}[a-z0-9])?$/.test(baseDomain)) {
    throw new ConfigError("SLIPWAY_BASE_DOMAIN", `'${baseDomain}' is not a domain name`);
  }
  const logLevel = logLevelFromEnv(env, defaults.logLevel);
  const adminToken = env.SLIPWAY_ADMIN_TOKEN || undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError("SLIPWAY_ADMIN_TOKEN", "must be at least 16 characters");
  }
  const secretKey = env.SLIPWAY_SECRET_KEY || undefined;
  if (secretKey !== undefined && Buffer.from(secretKey, "base64").length !== 32) {
    throw new ConfigError("SLIPWAY_SECRET_KEY", "must be the base64 encoding of 32 bytes (e.g. openssl rand -base64 32)");
  }
  if (env.SLIPWAY_S3_ENDPOINT && (!env.SLIPWAY_S3_ACCESS_KEY_ID || !env.SLIPWAY_S3_SECRET_ACCESS_KEY)) {
    throw new ConfigError("SLIPWAY_S3_ACCESS_KEY_ID", "SLIPWAY_S3_ENDPOINT needs SLIPWAY_S3_ACCESS_KEY_ID and SLIPWAY_S3_SECRET_ACCESS_KEY");
  }
  const s3Provider = env.SLIPWAY_S3_PROVIDER || "shared";
  if (s3Provider !== "shared" && s3Provider !== "radosgw") throw new ConfigError("SLIPWAY_S3_PROVIDER", "must be shared or radosgw");
  if (s3Provider === "radosgw" && !env.SLIPWAY_S3_ENDPOINT) {
    throw new ConfigError("SLIPWAY_S3_PROVIDER", "radosgw needs SLIPWAY_S3_ENDPOINT (the Object Gateway) and the keys of a platform user with the admin flag and the users=*;buckets=* caps");
  }
  if (env.SLIPWAY_S3_BACKUP_ENDPOINT && (!env.SLIPWAY_S3_BACKUP_ACCESS_KEY_ID || !env.SLIPWAY_S3_BACKUP_SECRET_ACCESS_KEY)) {
    throw new ConfigError("SLIPWAY_S3_BACKUP_ACCESS_KEY_ID", "SLIPWAY_S3_BACKUP_ENDPOINT needs SLIPWAY_S3_BACKUP_ACCESS_KEY_ID and SLIPWAY_S3_BACKUP_SECRET_ACCESS_KEY");
  }
  if (Boolean(env.SLIPWAY_GRPC_TLS_CERT) !== Boolean(env.SLIPWAY_GRPC_TLS_KEY)) {
    throw new ConfigError("SLIPWAY_GRPC_TLS_CERT", "SLIPWAY_GRPC_TLS_CERT and SLIPWAY_GRPC_TLS_KEY go together");
  }
  if (Boolean(env.SLIPWAY_HTTP_TLS_CERT) !== Boolean(env.SLIPWAY_HTTP_TLS_KEY)) {
    throw new ConfigError("SLIPWAY_HTTP_TLS_CERT", "SLIPWAY_HTTP_TLS_CERT and SLIPWAY_HTTP_TLS_KEY go together");
  }
  if (env.SLIPWAY_NATS_USERS_FILE && !env.NATS_URL) {
    throw new ConfigError("SLIPWAY_NATS_USERS_FILE", "is for an external NATS (NATS_URL); the embedded server's users are always managed");
  }
  if (Boolean(env.SLIPWAY_NATS_USERS_FILE) !== Boolean(env.SLIPWAY_NATS_RELOAD_COMMAND)) {
    throw new ConfigError("SLIPWAY_NATS_USERS_FILE", "SLIPWAY_NATS_USERS_FILE and SLIPWAY_NATS_RELOAD_COMMAND go together (e.g. 'nats-server --signal reload=/var/run/nats-server.pid')");
  }
  if (env.SLIPWAY_GRPC_TLS_CLIENT_CA && !env.SLIPWAY_GRPC_TLS_CERT) {
    throw new ConfigError("SLIPWAY_GRPC_TLS_CLIENT_CA", "client certificates (mTLS) need SLIPWAY_GRPC_TLS_CERT and SLIPWAY_GRPC_TLS_KEY");
  }
  // JetStream's limit is 5; the embedded server is one node, where only 1 can be placed.
  const natsReplicas = int(env, "SLIPWAY_NATS_REPLICAS", 1, 1, 5);
  if (natsReplicas > 1 && !env.NATS_URL) {
    throw new ConfigError("SLIPWAY_NATS_REPLICAS", "needs a NATS cluster (NATS_URL with every node's address); the embedded NATS is one node");
  }
  const scheme = env.SLIPWAY_INGRESS_SCHEME || defaults.ingressScheme;
  if (scheme !== "http" && scheme !== "https") throw new ConfigError("SLIPWAY_INGRESS_SCHEME", "must be http or https");
  const dataDir = path.resolve(env.SLIPWAY_DATA_DIR || path.join(homedir(), ".slipway", "control-plane"));
  return Object.freeze({
    dataDir,
    databaseUrl: url(env, "DATABASE_URL", ["postgres:", "postgresql:"]),
    natsUrl: natsUrls(env, "NATS_URL"),
    natsPublicUrl: natsUrls(env, "SLIPWAY_NATS_PUBLIC_URL"),
    natsReplicas,
    httpHost: env.SLIPWAY_HTTP_HOST || defaults.httpHost,
    httpPort: int(env, "SLIPWAY_HTTP_PORT", defaults.httpPort, 0, 65535),
    httpTlsCert: env.SLIPWAY_HTTP_TLS_CERT || undefined,
    httpTlsKey: env.SLIPWAY_HTTP_TLS_KEY || undefined,
    grpcHost: env.SLIPWAY_GRPC_HOST || defaults.grpcHost,
    grpcPort: int(env, "SLIPWAY_GRPC_PORT", defaults.grpcPort, 0, 65535),
    agentThread: agentThread(env),
    baseDomain,
    adminToken,
    logLevel,
    heartbeatIntervalMs: int(env, "SLIPWAY_HEARTBEAT_INTERVAL_MS", defaults.heartbeatIntervalMs, 100, 600_000),
    heartbeatMissLimit: int(env, "SLIPWAY_HEARTBEAT_MISS_LIMIT", defaults.heartbeatMissLimit, 2, 100),
    heartbeatFlushMs: int(env, "SLIPWAY_HEARTBEAT_FLUSH_MS", defaults.heartbeatFlushMs, 0, 5_000),
    joinTokenTtlMs: int(env, "SLIPWAY_JOIN_TOKEN_TTL_SECONDS", defaults.joinTokenTtlMs / 1000, 60, 30 * 86400) * 1000,
    publishIntervalMs: defaults.publishIntervalMs,
    natsServerBin: env.SLIPWAY_NATS_SERVER_BIN || defaults.natsServerBin,
    natsUsersFile: env.SLIPWAY_NATS_USERS_FILE ? path.resolve(env.SLIPWAY_NATS_USERS_FILE) : undefined,
    natsReloadCommand: env.SLIPWAY_NATS_RELOAD_COMMAND || undefined,
    natsSeedFile: path.resolve(env.SLIPWAY_NATS_SEED_FILE || path.join(dataDir, "nats-control-plane.nk")),
    embeddedNatsPort: int(env, "SLIPWAY_EMBEDDED_NATS_PORT", defaults.embeddedNatsPort, 0, 65535),
    ingressPublicPort: int(env, "SLIPWAY_INGRESS_PUBLIC_PORT", defaults.ingressPublicPort, 0, 65535),
    ingressScheme: scheme,
    secretKey,
    databaseAdminUrl: url(env, "SLIPWAY_DATABASE_ADMIN_URL", ["postgres:", "postgresql:"]) ?? "postgres://postgres@127.0.0.1:5432/postgres",
    databaseHostForContainers: env.SLIPWAY_DATABASE_HOST_FOR_CONTAINERS || "host.docker.internal",
    databaseNamePrefix: dbPrefix(env),
    s3Endpoint: url(env, "SLIPWAY_S3_ENDPOINT", ["http:", "https:"]),
    s3EndpointForContainers: url(env, "SLIPWAY_S3_ENDPOINT_FOR_CONTAINERS", ["http:", "https:"]),
    s3Region: env.SLIPWAY_S3_REGION || "us-east-1",
    s3AccessKeyId: env.SLIPWAY_S3_ACCESS_KEY_ID || undefined,
    s3SecretAccessKey: env.SLIPWAY_S3_SECRET_ACCESS_KEY || undefined,
    s3MediaBucket: bucket(env, "SLIPWAY_S3_MEDIA_BUCKET", "slipway-media"),
    s3BackupBucket: bucket(env, "SLIPWAY_S3_BACKUP_BUCKET", "slipway-backups"),
    s3Provider,
    s3BackupEndpoint: url(env, "SLIPWAY_S3_BACKUP_ENDPOINT", ["http:", "https:"]),
    s3BackupAccessKeyId: env.SLIPWAY_S3_BACKUP_ACCESS_KEY_ID || undefined,
    s3BackupSecretAccessKey: env.SLIPWAY_S3_BACKUP_SECRET_ACCESS_KEY || undefined,
    embeddedS3Port: int(env, "SLIPWAY_EMBEDDED_S3_PORT", 7703, 0, 65535),
    embeddedS3BackupPort: int(env, "SLIPWAY_EMBEDDED_S3_BACKUP_PORT", 7704, 0, 65535),
    embeddedS3Bind: env.SLIPWAY_EMBEDDED_S3_BIND || "0.0.0.0",
    grpcTlsCert: env.SLIPWAY_GRPC_TLS_CERT || undefined,
    grpcTlsKey: env.SLIPWAY_GRPC_TLS_KEY || undefined,
    grpcTlsClientCa: env.SLIPWAY_GRPC_TLS_CLIENT_CA || undefined,
    backupSchedulerIntervalMs: int(env, "SLIPWAY_BACKUP_SCHEDULER_INTERVAL_SECONDS", 60, 1, 86400) * 1000,
    leaseTtlMs: int(env, "SLIPWAY_LEASE_TTL_MS", 6000, 300, 600_000),
    gitPollSeconds: int(env, "SLIPWAY_GIT_POLL_SECONDS", 60, 0, 86400),
    publicUrl: url(env, "SLIPWAY_PUBLIC_URL", ["http:", "https:"]),
    rollbackImages: int(env, "SLIPWAY_ROLLBACK_IMAGES", 5, 1, 100),
    // At most 10,000 multipart parts of 8 MiB (object-store.ts): 80,000 MiB.
    backupUploadMaxBytes: int(env, "SLIPWAY_BACKUP_UPLOAD_MAX_MB", 10240, 1, 80_000) * 1024 * 1024,
    metricsRetentionMs: int(env, "SLIPWAY_METRICS_RETENTION_HOURS", 168, 1, 24 * 366) * 3_600_000,
    webDir: env.SLIPWAY_WEB_DIR ? path.resolve(env.SLIPWAY_WEB_DIR) : undefined,
    sessionTtlMs: int(env, "SLIPWAY_SESSION_TTL_HOURS", 12, 1, 24 * 30) * 3_600_000,
    jobAckWaitMs: int(env, "SLIPWAY_JOB_ACK_WAIT_SECONDS", 60, 1, 3600) * 1000,
    resources: resources(env),
    acme: acmeConfig(env),
  });
}

/**
 * ACME is off unless the operator asks for it, so a test, a CI run or a developer's machine never
 * contacts Let's Encrypt: SLIPWAY_ACME_DIRECTORY (any ACME directory; Let's Encrypt staging for a
 * trial) or SLIPWAY_ACME_EMAIL (the contact; alone it means Let's Encrypt production) turns it on.
 * - SLIPWAY_ACME_CHALLENGE_PORT (default 80): where the pre-check asks the challenge path (the CA
 *   always validates on 80; another port is for tests or a port-forwarding front).
 * - SLIPWAY_ACME_CHALLENGE_ADDRESS: connect the pre-check to this IP instead of the name's DNS
 *   record (tests with names that do not resolve; the CA still uses DNS).
 * - SLIPWAY_ACME_INTERVAL_MS (default 60000): how often domains are looked at (issue, renew, retry).
 * - SLIPWAY_ACME_RETRY_SECONDS (default 300): the first wait after a failure (it doubles to 1 h).
 * - SLIPWAY_ACME_DNS_HOOK: an executable run as `<hook> present|cleanup <record> <value>` to publish
 *   the TXT record of a DNS-01 challenge at the operator's DNS provider (wildcard names).
 * - SLIPWAY_ACME_DNS_PROPAGATION_SECONDS (default 60): the wait after `present` before the CA looks.
 * - SLIPWAY_ACME_WILDCARD=1: hold a certificate for `*.<SLIPWAY_BASE_DOMAIN>` (DNS-01; needs the
 *   hook), served for every environment's default host name.
 */
export function acmeConfig(env: NodeJS.ProcessEnv): AcmeConfig | undefined {
  if (!env.SLIPWAY_ACME_DIRECTORY?.trim() && !env.SLIPWAY_ACME_EMAIL?.trim()) return undefined;
  let settings;
  try {
    settings = acmeSettingsFromEnv(env);
  } catch (err) {
    throw new ConfigError(/SLIPWAY_ACME_DIRECTORY/.test((err as Error).message) ? "SLIPWAY_ACME_DIRECTORY" : "SLIPWAY_ACME_EMAIL", (err as Error).message);
  }
  const address = env.SLIPWAY_ACME_CHALLENGE_ADDRESS?.trim() || undefined;
  if (address !== undefined && isIP(address) === 0) throw new ConfigError("SLIPWAY_ACME_CHALLENGE_ADDRESS", `'${address}' is not an IP address`);
  const dnsHook = env.SLIPWAY_ACME_DNS_HOOK?.trim() || undefined;
  if (dnsHook !== undefined) {
    if (!path.isAbsolute(dnsHook)) throw new ConfigError("SLIPWAY_ACME_DNS_HOOK", `'${dnsHook}' must be an absolute path to an executable`);
    try {
      accessSync(dnsHook, fsConstants.X_OK);
    } catch {
      throw new ConfigError("SLIPWAY_ACME_DNS_HOOK", `'${dnsHook}' is not an executable file`);
    }
  }
  const wildcardOn = /^(1|true|yes|on)$/i.test(env.SLIPWAY_ACME_WILDCARD?.trim() ?? "");
  const baseDomain = env.SLIPWAY_BASE_DOMAIN || defaults.baseDomain;
  if (wildcardOn && !dnsHook) throw new ConfigError("SLIPWAY_ACME_WILDCARD", "a wildcard certificate is validated over DNS: set SLIPWAY_ACME_DNS_HOOK too");
  if (wildcardOn && !baseDomain.includes(".")) throw new ConfigError("SLIPWAY_ACME_WILDCARD", `no certificate authority issues *.${baseDomain}: set SLIPWAY_BASE_DOMAIN to a domain of yours`);
  return Object.freeze({
    ...settings,
    challengePort: int(env, "SLIPWAY_ACME_CHALLENGE_PORT", 80, 1, 65535),
    ...(dnsHook ? { dnsHook, dnsPropagationMs: int(env, "SLIPWAY_ACME_DNS_PROPAGATION_SECONDS", 60, 0, 3600) * 1000 } : {}),
    ...(wildcardOn ? { wildcard: `*.${baseDomain}` } : {}),
    ...(address ? { challengeAddress: address } : {}),
    tickIntervalMs: int(env, "SLIPWAY_ACME_INTERVAL_MS", 60_000, 100, 3_600_000),
    retryMinMs: int(env, "SLIPWAY_ACME_RETRY_SECONDS", 300, 1, 86_400) * 1000,
  });
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/**
 * What is wrong with how the control plane listens: one message per listener reachable beyond
 * loopback that speaks plain text (an empty host or 0.0.0.0 is every interface). Logged as
 * warnings at start; API tokens, agent credentials and job specs with their secrets cross
 * those listeners.
 */
export function plaintextListenerWarnings(c: Pick<ControlPlaneConfig, "httpHost" | "httpPort" | "httpTlsCert" | "grpcHost" | "grpcPort" | "grpcTlsCert">): string[] {
  const out: string[] = [];
  if (!c.httpTlsCert && !isLoopbackHost(c.httpHost)) {
    out.push(
      `INSECURE: the REST API listens on ${c.httpHost}:${c.httpPort} beyond loopback WITHOUT TLS: API tokens, variables and shell sessions cross the network in plain text. ` +
        "Set SLIPWAY_HTTP_TLS_CERT and SLIPWAY_HTTP_TLS_KEY, or bind SLIPWAY_HTTP_HOST to 127.0.0.1 behind a TLS-terminating proxy.",
    );
  }
  if (!c.grpcTlsCert && !isLoopbackHost(c.grpcHost)) {
    out.push(
      `INSECURE: the gRPC AgentService listens on ${c.grpcHost}:${c.grpcPort} beyond loopback WITHOUT TLS: agent credentials and job specs with their secrets (variables, database passwords, repository credentials) cross the network in plain text. ` +
        "Set SLIPWAY_GRPC_TLS_CERT and SLIPWAY_GRPC_TLS_KEY (and SLIPWAY_GRPC_TLS_CLIENT_CA for mTLS).",
    );
  }
  return out;
}
