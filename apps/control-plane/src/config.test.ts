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
  it.each([
    ["SLIPWAY_HTTP_PORT", "abc"],
    ["SLIPWAY_HTTP_PORT", "70000"],
    ["DATABASE_URL", "mysql://x"],
    ["NATS_URL", "not a url"],
    ["SLIPWAY_BASE_DOMAIN", "Bad_Domain"],
    ["LOG_LEVEL", "loud"],
    ["SLIPWAY_ADMIN_TOKEN", "short"],
    ["SLIPWAY_JOB_ACK_WAIT_SECONDS", "0"],
  ])("rejects %s=%s naming the variable", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
