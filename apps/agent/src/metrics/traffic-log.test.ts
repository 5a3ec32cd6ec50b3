import { describe, expect, it } from "vitest";
import { haproxyPaths, renderHaproxyConfig } from "../ingress/haproxy.config.js";
import { parseTrafficLine, TRAFFIC_LOG_FORMAT } from "./traffic-log.js";

describe("parseTrafficLine", () => {
  it("reads backend, server, status and active time of a raw line", () => {
    expect(parseTrafficLine("slipway2 shop--test s1 200 3 17\n")).toEqual({ backend: "shop--test", server: "s1", status: 200, activeMs: 3, seq: 17 });
    expect(parseTrafficLine("slipway2 shop--test <NOSRV> 401 0 1")).toEqual({ backend: "shop--test", server: "<NOSRV>", status: 401, activeMs: 0, seq: 1 });
    expect(parseTrafficLine("slipway2 shop--test waker 503 12000 99")).toMatchObject({ server: "waker", status: 503, activeMs: 12000 });
  });

  it("accepts a request without a response (status and time -1)", () => {
    expect(parseTrafficLine("slipway2 shop--live s2 -1 -1 5")).toEqual({ backend: "shop--live", server: "s2", status: -1, activeMs: -1, seq: 5 });
  });

  it("tolerates a syslog header before the marker", () => {
    expect(parseTrafficLine("<134>Mar  1 10:00:00 haproxy[42]: slipway2 blog--live s1 304 1 8")).toMatchObject({ backend: "blog--live", status: 304 });
  });

  it.each([
    ["", "empty"],
    ["GET / HTTP/1.1", "not our format"],
    ["slipway2 shop--test s1 200 3", "too few fields"],
    ["slipway2 shop--test s1 200 3 4 extra", "too many fields"],
    ["slipway2 shop--test s1 abc 3 4", "status not a number"],
    ["slipway2 shop--test s1 700 3 4", "status out of range"],
    ["slipway2 shop--test s1 99 3 4", "status below 100"],
    ["slipway2 shop--test s1 200 -5 4", "negative time other than -1"],
    ["slipway2 shop--test s1 200 1.5 4", "fractional time"],
    ["slipway2 shop\"test s1 200 1 4", "odd characters in the backend"],
    ["slipway2 shop--test s1 200 99999999999 4", "absurd time"],
    ["slipway2 shop--test s1 200 1 -4", "negative request counter"],
    ["slipway1 shop--test s1 200 1", "an older format version"],
  ])("ignores %j (%s)", (line) => {
    expect(parseTrafficLine(line)).toBeUndefined();
  });
});

describe("HAProxy request log in the rendered config", () => {
  const base = { paths: haproxyPaths("/var/lib/slipway/ingress"), bindAddress: "127.0.0.1", httpPort: 8080, backends: [{ name: "shop--test", slots: 1 }] };

  it("writes one raw line per request into the ring the agent reads", () => {
    const cfg = renderHaproxyConfig({ ...base, trafficLog: true });
    const global = cfg.slice(cfg.indexOf("global"), cfg.indexOf("ring "));
    const ring = cfg.slice(cfg.indexOf("ring "), cfg.indexOf("defaults"));
    const defaults = cfg.slice(cfg.indexOf("defaults"), cfg.indexOf("frontend"));
    expect(global).toContain("  log ring@slipway_traffic len 1024 format raw local0 info\n");
    expect(ring).toMatch(/^ring slipway_traffic\n(.*\n)*  format raw\n  maxlen 1024\n  size 2097152\n/);
    expect(defaults).toContain("  log global\n");
    expect(defaults).toContain("  option dontlognull\n");
    expect(defaults).toContain(`  log-format "${TRAFFIC_LOG_FORMAT}"\n`);
    expect(TRAFFIC_LOG_FORMAT).toBe("slipway2 %b %s %ST %Ta %rt");
  });

  it("renders no request log without it", () => {
    expect(renderHaproxyConfig(base)).not.toMatch(/\blog\b|^ring /m);
  });
});
