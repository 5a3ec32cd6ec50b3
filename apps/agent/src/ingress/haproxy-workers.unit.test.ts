import { describe, expect, it } from "vitest";
import { parseShowProc } from "./haproxy-runtime.js";
import { clientIdleLimitMs, sameRouting } from "./haproxy-workers.js";
import type { BackendRecord } from "./haproxy.config.js";

describe("parseShowProc", () => {
  // HAProxy 2.6.12's master CLI, after one successful reload with the previous worker still finishing.
  const afterReload = [
    "#<PID>          <type>          <reloads>       <uptime>        <version>      ",
    "1809            master          1 [failed: 0]   0d00h00m03s     2.6.12-1+deb12u4",
    "# workers",
    "1844            worker          0               0d00h00m01s     2.6.12-1+deb12u4",
    "# old workers",
    "1831            worker          1               0d00h00m03s     2.6.12-1+deb12u4",
    "# programs",
    "",
  ].join("\n");

  it("reads the master's reload counters, the current and the old workers", () => {
    expect(parseShowProc(afterReload)).toEqual({ master: 1809, reloads: 1, failedReloads: 0, workers: [1844], oldWorkers: [1831] });
  });

  it("counts a reload the master could not load as a reload and a failure, the worker staying current", () => {
    const failed = afterReload.replace("1 [failed: 0]", "2 [failed: 1]").replace(/# old workers\n.*\n/, "");
    expect(parseShowProc(failed)).toMatchObject({ reloads: 2, failedReloads: 1, workers: [1844], oldWorkers: [] });
  });

  it("has no counters when the master line carries none", () => {
    expect(parseShowProc("#<PID> <type>\n1809 master\n# workers\n1844 worker 0\n")).toMatchObject({ master: 1809, reloads: null, failedReloads: null });
  });
});

describe("clientIdleLimitMs", () => {
  it.each([
    ["the larger of keep-alive and request timeouts", "defaults\n  timeout client 60s\n  timeout http-request 10s\n  timeout http-keep-alive 2s\n", 10_000],
    ["units", "  timeout http-keep-alive 1500ms\n  timeout http-request 1m\n", 60_000],
    ["milliseconds without a unit", "  timeout http-keep-alive 2500\n", 2500],
    ["timeout client when neither is set", "  timeout client 30s\n  timeout connect 5s\n", 30_000],
    ["no bound without any of them", "  timeout connect 5s\n", undefined],
  ])("%s", (_what, config, expected) => {
    expect(clientIdleLimitMs(config)).toBe(expected);
  });
});

describe("sameRouting", () => {
  const be = (hostnames: string[], digest?: string): BackendRecord => ({ hostnames, basicAuth: digest ? { username: "u", digest } : null, maxServers: 2, slots: {} });
  it.each([
    ["the same host names and auth", be(["a.localhost", "b.localhost"], "ab"), true],
    ["a backend the worker does not have", undefined, false],
    ["another host name", be(["a.localhost"], "ab"), false],
    ["other auth", be(["a.localhost", "b.localhost"], "cd"), false],
    ["auth removed", be(["a.localhost", "b.localhost"]), false],
  ])("%s", (_what, old, expected) => {
    expect(sameRouting(old, be(["a.localhost", "b.localhost"], "ab"))).toBe(expected);
  });
});
