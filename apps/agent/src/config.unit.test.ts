import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseLabels } from "./config.js";

describe("agent configuration", () => {
  it("has defaults", () => {
    expect(loadConfig({})).toMatchObject({ controlPlane: "127.0.0.1:7701", ingressHttpPort: 8080, ingressBind: "127.0.0.1", jobConcurrency: 4, wakerPort: 0, reconcileIntervalMs: 5000, testPauseBeforeSwitchMs: 0 });
  });
  it("serves no HTTPS unless SLIPWAY_INGRESS_HTTPS_PORT is set, and refuses port 0 for it", () => {
    expect(loadConfig({}).ingressHttpsPort).toBeUndefined();
    expect(loadConfig({ SLIPWAY_INGRESS_HTTPS_PORT: "8443" }).ingressHttpsPort).toBe(8443);
    expect(() => loadConfig({ SLIPWAY_INGRESS_HTTPS_PORT: "0" })).toThrow("SLIPWAY_INGRESS_HTTPS_PORT");
  });
  it("reads the reconcile interval in seconds and the test pause in milliseconds", () => {
    expect(loadConfig({ SLIPWAY_AGENT_RECONCILE_INTERVAL_SECONDS: "2", SLIPWAY_AGENT_TEST_PAUSE_BEFORE_SWITCH_MS: "1500" })).toMatchObject({ reconcileIntervalMs: 2000, testPauseBeforeSwitchMs: 1500 });
  });
  it("has metrics defaults and reads the metrics settings", () => {
    expect(loadConfig({})).toMatchObject({ metricsIntervalMs: 10_000, metricsLogPort: 0 });
    expect(loadConfig({ SLIPWAY_METRICS_INTERVAL_MS: "500", SLIPWAY_AGENT_METRICS_LOG_PORT: "7791" })).toMatchObject({ metricsIntervalMs: 500, metricsLogPort: 7791 });
  });
  it("has log, build cache and disk defaults and reads them", () => {
    expect(loadConfig({})).toMatchObject({ containerLogMaxMb: 10, containerLogMaxFiles: 5, buildCacheMaxMb: 5120, diskMinFreeMb: 2048, pruneIntervalMs: 3_600_000 });
    expect(loadConfig({ SLIPWAY_CONTAINER_LOG_MAX_MB: "1", SLIPWAY_CONTAINER_LOG_MAX_FILES: "2", SLIPWAY_BUILD_CACHE_MAX_MB: "0", SLIPWAY_DISK_MIN_FREE_MB: "100", SLIPWAY_PRUNE_INTERVAL_MINUTES: "0" })).toMatchObject({
      containerLogMaxMb: 1,
      containerLogMaxFiles: 2,
      buildCacheMaxMb: 0,
      diskMinFreeMb: 100,
      pruneIntervalMs: 0,
    });
  });
  it("offers the whole machine unless told what the platform may place here", () => {
    const c = loadConfig({});
    expect(c.allocatableMemoryMb).toBeUndefined();
    expect(c.allocatableCpus).toBeUndefined();
    expect(loadConfig({ SLIPWAY_AGENT_MEMORY_MB: "2048", SLIPWAY_AGENT_CPUS: "2" })).toMatchObject({ allocatableMemoryMb: 2048, allocatableCpus: 2 });
  });
  it("reads the waker port", () => {
    expect(loadConfig({ SLIPWAY_AGENT_WAKER_PORT: "7790" }).wakerPort).toBe(7790);
  });
  it("parses labels", () => {
    expect(parseLabels("zone=eu-1, disk=ssd")).toEqual({ zone: "eu-1", disk: "ssd" });
  });
  it.each([
    ["SLIPWAY_CONTROL_PLANE", "no-port"],
    ["SLIPWAY_INGRESS_HTTP_PORT", "0"],
    ["SLIPWAY_AGENT_LABELS", "novalue"],
    ["NATS_URL", "http://x"],
    ["SLIPWAY_AGENT_WAKER_PORT", "70000"],
    ["SLIPWAY_AGENT_WAKER_PORT", "-1"],
    ["SLIPWAY_METRICS_INTERVAL_MS", "50"],
    ["SLIPWAY_METRICS_INTERVAL_MS", "ten"],
    ["SLIPWAY_AGENT_METRICS_LOG_PORT", "65536"],
    ["SLIPWAY_AGENT_RECONCILE_INTERVAL_SECONDS", "1.5"],
    ["SLIPWAY_AGENT_TEST_PAUSE_BEFORE_SWITCH_MS", "700000"],
    ["SLIPWAY_CONTAINER_LOG_MAX_MB", "0"],
    ["SLIPWAY_CONTAINER_LOG_MAX_FILES", "0.5"],
    ["SLIPWAY_BUILD_CACHE_MAX_MB", "-1"],
    ["SLIPWAY_PRUNE_INTERVAL_MINUTES", "x"],
    ["SLIPWAY_AGENT_MEMORY_MB", "10"],
    ["SLIPWAY_AGENT_CPUS", "0"],
  ])("rejects %s=%s naming the variable", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
