import { homedir, hostname } from "node:os";
import path from "node:path";
import { natsServers } from "./nats/connection.js";
import { ConfigError, HOST_LABEL_KEY_PATTERN, HOST_LABEL_VALUE_PATTERN, intFromEnv as int, logLevelFromEnv } from "@slipway/core";

export { ConfigError };

/** Agent configuration; `loadConfig` is the only reader of process.env. */
export interface AgentConfig {
  /** gRPC address of the control plane, host:port. */
  controlPlane: string;
  joinToken?: string;
  stateDir: string;
  name: string;
  labels: Record<string, string>;
  /** Overrides the NATS URL the control plane hands out at registration (a cluster: every node's, comma-separated). */
  natsUrl?: string;
  ingressHttpPort: number;
  /**
   * Port of the ingress's HTTPS frontend (SLIPWAY_INGRESS_HTTPS_PORT). Unset (the default) = no
   * HTTPS bind at all, so hosts that do not ask for it see no change; 0 is refused (the port is
   * advertised to DNS and load balancers, so it must be fixed).
   */
  ingressHttpsPort?: number;
  ingressBind: string;
  /** host:port where other hosts and load balancers reach this ingress (drains forward to it). */
  ingressAdvertise: string;
  logLevel: string;
  /** Most jobs run at once (jobs of one environment never overlap: the control plane allows one). */
  jobConcurrency: number;
  version: string;
  /** PEM CA bundle to verify the control plane's TLS certificate; unset = plaintext gRPC. */
  grpcTlsCa?: string;
  /** PEM client certificate and key for mTLS to the control plane. */
  grpcTlsCert?: string;
  grpcTlsKey?: string;
  shutdownGraceMs: number;
  /** Port of the waker (HAProxy's fallback for sleeping and stopped environments) on 127.0.0.1; 0 = any free port. */
  wakerPort: number;
  /** How often running environments' routes are checked against their containers' ports (dockerd restarts change them); 0 = only at start. */
  reconcileIntervalMs: number;
  /** Test hook: a deployment waits this long before switching traffic, so a test can stop the agent right there. 0 in production. */
  testPauseBeforeSwitchMs: number;
  /** Test hook: pause this long in the middle of a deployment's switch (new servers ready, old ones draining). */
  testPauseMidSwitchMs: number;
  /** How often container and ingress metrics are sampled and pushed. */
  metricsIntervalMs: number;
  /** UDP port on 127.0.0.1 where HAProxy sends one log line per request; 0 = any free port. */
  metricsLogPort: number;
  /** Containers' logs (Docker's json-file driver): rotated at this size, in MB… */
  containerLogMaxMb: number;
  /** …keeping this many files: a container's log never takes more than size × files. */
  containerLogMaxFiles: number;
  /** What the platform may place on this host (memory in MB, CPU cores); undefined = all of the machine's. */
  allocatableMemoryMb?: number;
  allocatableCpus?: number;
  /** Images kept per environment for rollback: those of its last N successful deployments, the current one included. */
  rollbackImages: number;
  /** Docker's build cache is pruned down to this many MB (the least recently used first). */
  buildCacheMaxMb: number;
  /** Below this much free space (MB) on Docker's data root, the agent prunes before a build. */
  diskMinFreeMb: number;
  /** How often the agent prunes what no environment needs (images, stopped containers, build cache); 0 = only before builds. */
  pruneIntervalMs: number;
}

export const AGENT_VERSION = "0.1.0";

export function parseLabels(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const part of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    const [key, value] = eq < 0 ? [part, undefined] : [part.slice(0, eq), part.slice(eq + 1)];
    if (value === undefined || !new RegExp(HOST_LABEL_KEY_PATTERN).test(key) || !new RegExp(HOST_LABEL_VALUE_PATTERN).test(value)) {
      throw new ConfigError("SLIPWAY_AGENT_LABELS", `'${part}' is not key=value`);
    }
    out[key] = value;
  }
  return out;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<AgentConfig> {
  const controlPlane = env.SLIPWAY_CONTROL_PLANE || "127.0.0.1:7701";
  if (!/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(controlPlane)) {
    throw new ConfigError("SLIPWAY_CONTROL_PLANE", `'${controlPlane}' is not host:port`);
  }
  const natsUrl = env.NATS_URL ? natsServers(env.NATS_URL).join(",") : undefined;
  if (natsUrl === "") throw new ConfigError("NATS_URL", "names no server");
  for (const u of natsUrl?.split(",") ?? []) {
    if (!/^(nats|tls):\/\/\S+$/.test(u)) throw new ConfigError("NATS_URL", `'${u}' is not a nats:// URL (a cluster: every node's URL, comma-separated)`);
  }
  const logLevel = logLevelFromEnv(env);
  const ingressHttpPort = int(env, "SLIPWAY_INGRESS_HTTP_PORT", 8080, 1, 65535);
  const ingressBind = env.SLIPWAY_INGRESS_BIND || "127.0.0.1";
  if (env.SLIPWAY_INGRESS_ADVERTISE && !/^[A-Za-z0-9.-]+:\d{1,5}$/.test(env.SLIPWAY_INGRESS_ADVERTISE)) {
    throw new ConfigError("SLIPWAY_INGRESS_ADVERTISE", `'${env.SLIPWAY_INGRESS_ADVERTISE}' is not host:port`);
  }
  return Object.freeze({
    controlPlane,
    joinToken: env.SLIPWAY_JOIN_TOKEN || undefined,
    stateDir: path.resolve(env.SLIPWAY_AGENT_STATE_DIR || path.join(homedir(), ".slipway", "agent")),
    name: env.SLIPWAY_AGENT_NAME || hostname(),
    labels: parseLabels(env.SLIPWAY_AGENT_LABELS),
    natsUrl,
    ingressHttpPort,
    ...(env.SLIPWAY_INGRESS_HTTPS_PORT ? { ingressHttpsPort: int(env, "SLIPWAY_INGRESS_HTTPS_PORT", 0, 1, 65535) } : {}),
    ingressBind,
    ingressAdvertise: env.SLIPWAY_INGRESS_ADVERTISE || `${ingressBind === "0.0.0.0" || ingressBind === "::" ? "127.0.0.1" : ingressBind}:${ingressHttpPort}`,
    logLevel,
    jobConcurrency: int(env, "SLIPWAY_AGENT_JOB_CONCURRENCY", 4, 1, 64),
    version: AGENT_VERSION,
    grpcTlsCa: env.SLIPWAY_GRPC_TLS_CA || undefined,
    grpcTlsCert: env.SLIPWAY_GRPC_TLS_CERT || undefined,
    grpcTlsKey: env.SLIPWAY_GRPC_TLS_KEY || undefined,
    shutdownGraceMs: int(env, "SLIPWAY_AGENT_SHUTDOWN_GRACE_SECONDS", 30, 0, 3600) * 1000,
    wakerPort: int(env, "SLIPWAY_AGENT_WAKER_PORT", 0, 0, 65535),
    metricsIntervalMs: int(env, "SLIPWAY_METRICS_INTERVAL_MS", 10_000, 100, 3_600_000),
    metricsLogPort: int(env, "SLIPWAY_AGENT_METRICS_LOG_PORT", 0, 0, 65535),
    reconcileIntervalMs: int(env, "SLIPWAY_AGENT_RECONCILE_INTERVAL_SECONDS", 5, 0, 3600) * 1000,
    testPauseBeforeSwitchMs: int(env, "SLIPWAY_AGENT_TEST_PAUSE_BEFORE_SWITCH_MS", 0, 0, 600_000),
    testPauseMidSwitchMs: int(env, "SLIPWAY_AGENT_TEST_PAUSE_MID_SWITCH_MS", 0, 0, 600_000),
    containerLogMaxMb: int(env, "SLIPWAY_CONTAINER_LOG_MAX_MB", 10, 1, 10_240),
    containerLogMaxFiles: int(env, "SLIPWAY_CONTAINER_LOG_MAX_FILES", 5, 1, 100),
    rollbackImages: int(env, "SLIPWAY_ROLLBACK_IMAGES", 5, 1, 50),
    ...(env.SLIPWAY_AGENT_MEMORY_MB ? { allocatableMemoryMb: int(env, "SLIPWAY_AGENT_MEMORY_MB", 0, 64, 16_777_216) } : {}),
    ...(env.SLIPWAY_AGENT_CPUS ? { allocatableCpus: int(env, "SLIPWAY_AGENT_CPUS", 0, 1, 4096) } : {}),
    buildCacheMaxMb: int(env, "SLIPWAY_BUILD_CACHE_MAX_MB", 5120, 0, 10_485_760),
    diskMinFreeMb: int(env, "SLIPWAY_DISK_MIN_FREE_MB", 2048, 0, 10_485_760),
    pruneIntervalMs: int(env, "SLIPWAY_PRUNE_INTERVAL_MINUTES", 60, 0, 10_080) * 60_000,
  });
}
