import { describe, expect, it } from "vitest";
import { InvalidRequestError } from "./errors.js";
import { defaultAppSettings, mergeAppSettings, parseStatusRanges, statusAccepted } from "./settings.js";

describe("settings", () => {
  it("has the documented defaults", () => {
    expect(defaultAppSettings).toEqual({
      releaseCommands: [],
      releaseCommandTimeoutSeconds: 1800,
      webPort: null,
      startupProbe: { path: "/", acceptedStatuses: "200-499", startupTimeoutSeconds: 60, probeTimeoutSeconds: 10, maxRetries: 300 },
    });
  });
  it("merges a partial probe patch", () => {
    const s = mergeAppSettings(defaultAppSettings, { startupProbe: { path: "/health" }, webPort: 3000 });
    expect(s.startupProbe).toMatchObject({ path: "/health", acceptedStatuses: "200-499", maxRetries: 300 });
    expect(s.webPort).toBe(3000);
    expect(mergeAppSettings(s, { webPort: null }).webPort).toBeNull();
  });
  it("parses accepted status ranges", () => {
    const r = parseStatusRanges("200-299, 301,404");
    expect([200, 299, 301, 404].map((c) => statusAccepted(r, c))).toEqual([true, true, true, true]);
    expect([300, 302, 500].map((c) => statusAccepted(r, c))).toEqual([false, false, false]);
    expect(statusAccepted(parseStatusRanges("200-499"), 404)).toBe(true);
    expect(statusAccepted(parseStatusRanges("200-499"), 500)).toBe(false);
  });
  it.each(["", "abc", "99", "200-", "499-200", "600"])("rejects %j", (spec) => {
    expect(() => parseStatusRanges(spec)).toThrow(InvalidRequestError);
  });
});
