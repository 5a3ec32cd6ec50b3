import { describe, expect, it } from "vitest";
import { haproxyPaths, renderHaproxyConfig, renderSampleMap } from "../ingress/haproxy.config.js";
import { parseTrafficLine, TRAFFIC_LOG_FORMAT, TrafficLineParser } from "./traffic-log.js";

describe("parseTrafficLine", () => {
  it("reads backend, server, status and active time of a raw line", () => {
    expect(parseTrafficLine("slipway1 shop--test s1 200 3\n")).toEqual({ backend: "shop--test", server: "s1", status: 200, activeMs: 3 });
    expect(parseTrafficLine("slipway1 shop--test <NOSRV> 401 0")).toEqual({ backend: "shop--test", server: "<NOSRV>", status: 401, activeMs: 0 });
    expect(parseTrafficLine("slipway1 shop--test waker 503 12000")).toMatchObject({ server: "waker", status: 503, activeMs: 12000 });
  });

  it("accepts a request without a response (status and time -1)", () => {
    expect(parseTrafficLine("slipway1 shop--live s2 -1 -1")).toEqual({ backend: "shop--live", server: "s2", status: -1, activeMs: -1 });
  });

  it("tolerates a syslog header before the marker", () => {
    expect(parseTrafficLine("<134>Mar  1 10:00:00 haproxy[42]: slipway1 blog--live s1 304 1")).toMatchObject({ backend: "blog--live", status: 304 });
  });

  it.each([
    ["", "empty"],
    ["GET / HTTP/1.1", "not our format"],
    ["slipway1 shop--test s1 200", "too few fields"],
    ["slipway1 shop--test s1 200 3 extra", "too many fields"],
    ["slipway1 shop--test s1 abc 3", "status not a number"],
    ["slipway1 shop--test s1 700 3", "status out of range"],
    ["slipway1 shop--test s1 99 3", "status below 100"],
    ["slipway1 shop--test s1 200 -5", "negative time other than -1"],
    ["slipway1 shop--test s1 200 1.5", "fractional time"],
    ["slipway1 shop\"test s1 200 1", "odd characters in the backend"],
    ["slipway1 shop--test s1 200 99999999999", "absurd time"],
    ["slipway2 shop--test s1 200 1", "another format version"],
  ])("ignores %j (%s)", (line) => {
    expect(parseTrafficLine(line)).toBeUndefined();
  });
});

describe("TrafficLineParser (bytes of a datagram)", () => {
  it("parses each line of a buffer between offsets, overwriting its one line object", () => {
    const buf = Buffer.from("slipway1 a--test s1 200 3\nslipway1 b--live waker 503 12000\n");
    const p = new TrafficLineParser();
    const nl = buf.indexOf(10);
    expect(p.parse(buf, 0, nl)).toBe(true);
    const first = { ...p.line };
    expect(p.parse(buf, nl + 1, buf.length)).toBe(true);
    expect(first).toEqual({ backend: "a--test", server: "s1", status: 200, activeMs: 3 });
    expect(p.line).toEqual({ backend: "b--live", server: "waker", status: 503, activeMs: 12000 });
  });

  it("refuses a line cut short by the end offset and a marker found only past it", () => {
    const buf = Buffer.from("slipway1 a--test s1 200 3");
    const p = new TrafficLineParser();
    expect(p.parse(buf, 0, buf.length - 2)).toBe(false);
    expect(p.parse(Buffer.from("xx slipway1 a--test s1 200 3"), 0, 5)).toBe(false);
  });

  it("returns the right names for many distinct backends (its name table is bounded and hashed)", () => {
    const p = new TrafficLineParser();
    const wrong: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const backend = `app${i}--env${i % 7}`;
      const buf = Buffer.from(`slipway1 ${backend} s${(i % 3) + 1} 200 ${i % 100}`);
      if (!p.parse(buf, 0, buf.length) || p.line.backend !== backend || p.line.server !== `s${(i % 3) + 1}`) wrong.push(backend);
    }
    expect(wrong).toEqual([]);
  });

  it("refuses names longer than 128 bytes and non-ASCII bytes", () => {
    expect(parseTrafficLine(`slipway1 ${"a".repeat(129)} s1 200 1`)).toBeUndefined();
    expect(parseTrafficLine(`slipway1 ${"a".repeat(128)} s1 200 1`)).toMatchObject({ status: 200 });
    expect(parseTrafficLine("slipway1 shöp--test s1 200 1")).toBeUndefined();
  });
});

describe("HAProxy request log in the rendered config", () => {
  const base = { paths: haproxyPaths("/var/lib/slipway/ingress"), bindAddress: "127.0.0.1", httpPort: 8080, backends: [{ name: "shop--test", slots: 1 }] };

  it("sends one raw line per request to the agent over UDP when a port is given", () => {
    const cfg = renderHaproxyConfig({ ...base, trafficLogPort: 41234 });
    const global = cfg.slice(cfg.indexOf("global"), cfg.indexOf("defaults"));
    const defaults = cfg.slice(cfg.indexOf("defaults"), cfg.indexOf("frontend"));
    expect(global).toContain("  log 127.0.0.1:41234 len 4096 format raw local0 info\n");
    expect(defaults).toContain("  log global\n");
    expect(defaults).toContain("  option dontlognull\n");
    expect(defaults).toContain(`  log-format "${TRAFFIC_LOG_FORMAT}"\n`);
    expect(TRAFFIC_LOG_FORMAT).toBe("slipway1 %b %s %ST %Ta");
  });

  it("logs a random share of each backend's requests, read from the sample map (all when absent)", () => {
    const cfg = renderHaproxyConfig({ ...base, trafficLogPort: 41234 });
    const backend = cfg.slice(cfg.indexOf("backend shop--test"));
    expect(backend).toContain("  http-request set-var(txn.slw_keep) be_name,map_str_int(/var/lib/slipway/ingress/log-sample.map,1000)\n");
    expect(backend).toContain("  http-request set-log-level silent if { rand(1000),sub(txn.slw_keep) -m int ge 0 }\n");
    expect(renderSampleMap(new Map([["shop--test", 14], ["b--x", 1000], ["a--y", 1]]))).toBe(
      "# Rendered by the Slipway agent: backend -> requests in 1000 whose log line is kept.\nslipway_no_environment 0\na--y 1\nshop--test 14\n",
    );
    expect(() => renderSampleMap(new Map([["shop--test", 1001]]))).toThrow(/invalid sample/);
    expect(() => renderSampleMap(new Map([["Bad Name", 5]]))).toThrow(/invalid backend/);
  });

  it("renders no request log without a port and refuses a bad one", () => {
    expect(renderHaproxyConfig(base)).not.toMatch(/log/);
    expect(() => renderHaproxyConfig({ ...base, trafficLogPort: 0 })).toThrow(/traffic log port/);
    expect(() => renderHaproxyConfig({ ...base, trafficLogPort: 70000 })).toThrow(/traffic log port/);
  });
});
