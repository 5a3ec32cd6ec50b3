import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, isLoopbackHost, loadConfig, plaintextListenerWarnings } from "./config.js";

describe("control plane configuration", () => {
  it("leaves ACME off unless a directory or a contact is set: no CA is contacted by default", () => {
    expect(loadConfig({}).acme).toBeUndefined();
    expect(loadConfig({ SLIPWAY_ACME_CHALLENGE_PORT: "8080" }).acme).toBeUndefined();
    const le = loadConfig({ SLIPWAY_ACME_EMAIL: "ops@example.com" }).acme!;
    expect(le).toEqual({ directoryUrl: "https://acme-v02.api.letsencrypt.org/directory", email: "ops@example.com", challengePort: 80, tickIntervalMs: 60_000, retryMinMs: 300_000 });
    const test = loadConfig({ SLIPWAY_ACME_DIRECTORY: "https://localhost:14000/dir", SLIPWAY_ACME_CHALLENGE_PORT: "18080", SLIPWAY_ACME_CHALLENGE_ADDRESS: "127.0.0.1", SLIPWAY_ACME_INTERVAL_MS: "500", SLIPWAY_ACME_RETRY_SECONDS: "2" }).acme!;
    expect(test).toEqual({ directoryUrl: "https://localhost:14000/dir", challengePort: 18080, challengeAddress: "127.0.0.1", tickIntervalMs: 500, retryMinMs: 2000 });
  });

  it("refuses an ACME directory that is not https, a bad contact and a challenge address that is not an IP", () => {
    expect(() => loadConfig({ SLIPWAY_ACME_DIRECTORY: "http://localhost:14000/dir" })).toThrow(/SLIPWAY_ACME_DIRECTORY.*https/);
    expect(() => loadConfig({ SLIPWAY_ACME_EMAIL: "not-an-address" })).toThrow(ConfigError);
    expect(() => loadConfig({ SLIPWAY_ACME_DIRECTORY: "https://localhost:14000/dir", SLIPWAY_ACME_CHALLENGE_ADDRESS: "ingress.local" })).toThrow(/SLIPWAY_ACME_CHALLENGE_ADDRESS/);
    expect(() => loadConfig({ SLIPWAY_ACME_DIRECTORY: "https://localhost:14000/dir", SLIPWAY_ACME_CHALLENGE_PORT: "0" })).toThrow(/SLIPWAY_ACME_CHALLENGE_PORT/);
  });

  it("DNS-01 and the default domain's wildcard: an executable hook, a base domain of the operator's, the propagation wait", () => {
    const dir = "https://localhost:14000/dir";
    const c = loadConfig({ SLIPWAY_ACME_DIRECTORY: dir, SLIPWAY_ACME_DNS_HOOK: "/bin/true", SLIPWAY_ACME_WILDCARD: "1", SLIPWAY_BASE_DOMAIN: "apps.example.com" }).acme!;
    expect(c).toMatchObject({ dnsHook: "/bin/true", dnsPropagationMs: 60_000, wildcard: "*.apps.example.com" });
    expect(loadConfig({ SLIPWAY_ACME_DIRECTORY: dir, SLIPWAY_ACME_DNS_HOOK: "/bin/true", SLIPWAY_ACME_DNS_PROPAGATION_SECONDS: "0" }).acme).toMatchObject({ dnsPropagationMs: 0 });
    expect(loadConfig({ SLIPWAY_ACME_DIRECTORY: dir }).acme!.wildcard).toBeUndefined();
    expect(() => loadConfig({ SLIPWAY_ACME_DIRECTORY: dir, SLIPWAY_ACME_DNS_HOOK: "hook.sh" })).toThrow(/SLIPWAY_ACME_DNS_HOOK.*absolute/);
    expect(() => loadConfig({ SLIPWAY_ACME_DIRECTORY: dir, SLIPWAY_ACME_DNS_HOOK: "/nonexistent/hook" })).toThrow(/SLIPWAY_ACME_DNS_HOOK.*not an executable/);
    expect(() => loadConfig({ SLIPWAY_ACME_DIRECTORY: dir, SLIPWAY_ACME_WILDCARD: "1", SLIPWAY_BASE_DOMAIN: "apps.example.com" })).toThrow(/SLIPWAY_ACME_WILDCARD.*SLIPWAY_ACME_DNS_HOOK/);
    expect(() => loadConfig({ SLIPWAY_ACME_DIRECTORY: dir, SLIPWAY_ACME_DNS_HOOK: "/bin/true", SLIPWAY_ACME_WILDCARD: "1" })).toThrow(/no certificate authority issues \*\.localhost/);
  });

  it("serves agents from their own thread with PostgreSQL, never with the embedded PGlite", () => {
    const pg = { DATABASE_URL: "postgres://localhost/slipway" };
    expect(loadConfig({}).agentThread).toBe(false);
    expect(loadConfig(pg).agentThread).toBe(true);
    expect(loadConfig({ ...pg, SLIPWAY_AGENT_THREAD: "off" }).agentThread).toBe(false);
    expect(loadConfig({ ...pg, SLIPWAY_AGENT_THREAD: "on" }).agentThread).toBe(true);
    expect(() => loadConfig({ SLIPWAY_AGENT_THREAD: "on" })).toThrow(/SLIPWAY_AGENT_THREAD.*DATABASE_URL/);
    expect(() => loadConfig({ ...pg, SLIPWAY_AGENT_THREAD: "yes" })).toThrow(/SLIPWAY_AGENT_THREAD.*auto, on or off/);
  });

  it("calls a host offline after 3 missed heartbeats unless told otherwise", () => {
    expect(loadConfig({})).toMatchObject({ heartbeatIntervalMs: 5000, heartbeatMissLimit: 3 });
    expect(loadConfig({ SLIPWAY_HEARTBEAT_MISS_LIMIT: "6" }).heartbeatMissLimit).toBe(6);
    expect(() => loadConfig({ SLIPWAY_HEARTBEAT_MISS_LIMIT: "1" })).toThrow(/SLIPWAY_HEARTBEAT_MISS_LIMIT/);
    expect(() => loadConfig({ SLIPWAY_HEARTBEAT_MISS_LIMIT: "three" })).toThrow(/SLIPWAY_HEARTBEAT_MISS_LIMIT/);
  });

  it("has embedded defaults", () => {
    const c = loadConfig({});
    expect(c.databaseUrl).toBeUndefined();
    expect(c.natsUrl).toBeUndefined();
    expect(c).toMatchObject({ httpPort: 7700, grpcPort: 7701, baseDomain: "localhost", heartbeatIntervalMs: 5000, embeddedNatsPort: 7702, jobAckWaitMs: 60_000 });
    expect(Object.isFrozen(c)).toBe(true);
  });
  it("keeps metrics for a week unless told otherwise", () => {
    expect(loadConfig({}).metricsRetentionMs).toBe(168 * 3_600_000);
    expect(loadConfig({ SLIPWAY_METRICS_RETENTION_HOURS: "24" }).metricsRetentionMs).toBe(24 * 3_600_000);
  });
  it("serves the web dashboard from SLIPWAY_WEB_DIR when set (absolute), else from the installed package", () => {
    expect(loadConfig({}).webDir).toBeUndefined();
    expect(loadConfig({ SLIPWAY_WEB_DIR: "/srv/slipway-web" }).webDir).toBe("/srv/slipway-web");
    expect(loadConfig({ SLIPWAY_WEB_DIR: "web/dist" }).webDir).toBe(path.resolve("web/dist"));
  });
  it("keeps browser sessions 12 hours after their last use unless told otherwise", () => {
    expect(loadConfig({}).sessionTtlMs).toBe(12 * 3_600_000);
    expect(loadConfig({ SLIPWAY_SESSION_TTL_HOURS: "1" }).sessionTtlMs).toBe(3_600_000);
  });
  it.each([
    ["SLIPWAY_HTTP_PORT", "abc"],
    ["SLIPWAY_HTTP_PORT", "70000"],
    ["DATABASE_URL", "mysql://x"],
    ["NATS_URL", "not a url"],
    ["SLIPWAY_BASE_DOMAIN", "Bad_Domain"],
    ["LOG_LEVEL", "loud"],
    ["SLIPWAY_ADMIN_TOKEN", "short"],
    ["SLIPWAY_METRICS_RETENTION_HOURS", "0"],
    ["SLIPWAY_METRICS_RETENTION_HOURS", "1.5"],
    ["SLIPWAY_JOB_ACK_WAIT_SECONDS", "0"],
    ["SLIPWAY_SESSION_TTL_HOURS", "0"],
    ["SLIPWAY_SESSION_TTL_HOURS", "721"],
    ["SLIPWAY_HTTP_TLS_CERT", "/etc/slipway/api.crt"],
  ])("rejects %s=%s naming the variable", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  it("reads the REST API's TLS certificate and key, which go together", () => {
    expect(loadConfig({ SLIPWAY_HTTP_TLS_CERT: "/c.pem", SLIPWAY_HTTP_TLS_KEY: "/k.pem" })).toMatchObject({ httpTlsCert: "/c.pem", httpTlsKey: "/k.pem" });
    expect(() => loadConfig({ SLIPWAY_HTTP_TLS_KEY: "/k.pem" })).toThrow("SLIPWAY_HTTP_TLS_CERT");
  });

  it("manages an external NATS's users only with a users file and a reload command, which go together", () => {
    const external = { NATS_URL: "nats://nats.internal:4222" };
    expect(loadConfig(external).natsUsersFile).toBeUndefined();
    const managed = loadConfig({ ...external, SLIPWAY_NATS_USERS_FILE: "/etc/nats/slipway-users.conf", SLIPWAY_NATS_RELOAD_COMMAND: "nats-server --signal reload=/run/nats.pid" });
    expect(managed).toMatchObject({ natsUsersFile: "/etc/nats/slipway-users.conf", natsReloadCommand: "nats-server --signal reload=/run/nats.pid" });
    expect(() => loadConfig({ ...external, SLIPWAY_NATS_USERS_FILE: "/etc/nats/u.conf" })).toThrow("SLIPWAY_NATS_RELOAD_COMMAND");
    expect(() => loadConfig({ ...external, SLIPWAY_NATS_RELOAD_COMMAND: "true" })).toThrow("SLIPWAY_NATS_USERS_FILE");
    // The embedded server's users are always managed: a users file makes no sense without NATS_URL.
    expect(() => loadConfig({ SLIPWAY_NATS_USERS_FILE: "/u.conf", SLIPWAY_NATS_RELOAD_COMMAND: "true" })).toThrow("SLIPWAY_NATS_USERS_FILE");
    expect(loadConfig({ SLIPWAY_DATA_DIR: "/srv/cp" }).natsSeedFile).toBe("/srv/cp/nats-control-plane.nk");
  });

  it("reads the default limits (live's default to the others) and the CPU overcommit", () => {
    expect(loadConfig({}).resources).toEqual({ defaults: { memoryMb: 512, cpus: 1, pids: 512 }, liveDefaults: { memoryMb: 512, cpus: 1, pids: 512 }, cpuOvercommit: 8 });
    const c = loadConfig({ SLIPWAY_DEFAULT_LIMITS: "memoryMb=256,cpus=0.5", SLIPWAY_DEFAULT_LIVE_LIMITS: "memoryMb=1024", SLIPWAY_CPU_OVERCOMMIT: "4" });
    expect(c.resources).toEqual({ defaults: { memoryMb: 256, cpus: 0.5, pids: 512 }, liveDefaults: { memoryMb: 1024, cpus: 0.5, pids: 512 }, cpuOvercommit: 4 });
    expect(() => loadConfig({ SLIPWAY_DEFAULT_LIMITS: "memoryMb=4" })).toThrow("SLIPWAY_DEFAULT_LIMITS");
    expect(() => loadConfig({ SLIPWAY_DEFAULT_LIVE_LIMITS: "ram=1g" })).toThrow("SLIPWAY_DEFAULT_LIVE_LIMITS");
    expect(() => loadConfig({ SLIPWAY_CPU_OVERCOMMIT: "0.5" })).toThrow("SLIPWAY_CPU_OVERCOMMIT");
  });

  it.each([
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["localhost", true],
    ["::1", true],
    ["[::1]", true],
    ["0.0.0.0", false],
    ["::", false],
    ["", false],
    ["10.0.0.5", false],
    ["cp.example.com", false],
  ])("%s is loopback: %s", (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });

  describe("warns about plain-text listeners beyond loopback", () => {
    const warnings = (env: NodeJS.ProcessEnv) => plaintextListenerWarnings(loadConfig(env));
    it("none on the loopback defaults", () => {
      expect(warnings({})).toEqual([]);
    });
    it("one for the REST API on every interface without TLS, naming the variables that fix it", () => {
      const w = warnings({ SLIPWAY_HTTP_HOST: "0.0.0.0" });
      expect(w).toHaveLength(1);
      expect(w[0]).toMatch(/^INSECURE: the REST API listens on 0\.0\.0\.0:7700 .*WITHOUT TLS/);
      expect(w[0]).toContain("SLIPWAY_HTTP_TLS_CERT");
      expect(warnings({ SLIPWAY_HTTP_HOST: "0.0.0.0", SLIPWAY_HTTP_TLS_CERT: "/c", SLIPWAY_HTTP_TLS_KEY: "/k" })).toEqual([]);
    });
    it("one for gRPC on a public address without TLS", () => {
      const w = warnings({ SLIPWAY_GRPC_HOST: "10.0.0.5", SLIPWAY_GRPC_PORT: "9000" });
      expect(w).toHaveLength(1);
      expect(w[0]).toMatch(/^INSECURE: the gRPC AgentService listens on 10\.0\.0\.5:9000 .*WITHOUT TLS/);
      expect(w[0]).toContain("SLIPWAY_GRPC_TLS_CERT");
      expect(warnings({ SLIPWAY_GRPC_HOST: "10.0.0.5", SLIPWAY_GRPC_TLS_CERT: "/c", SLIPWAY_GRPC_TLS_KEY: "/k" })).toEqual([]);
    });
    it("both when both are exposed", () => {
      expect(warnings({ SLIPWAY_HTTP_HOST: "::", SLIPWAY_GRPC_HOST: "0.0.0.0" })).toHaveLength(2);
    });
  });
});
