import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.js";

describe("control plane configuration", () => {
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
  ])("rejects %s=%s naming the variable", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
