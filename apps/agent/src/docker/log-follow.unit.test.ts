import { describe, expect, it } from "vitest";
import { DeliveredFilter, logTimestampNs, sinceArg } from "./log-follow.js";

describe("following a log across rotations", () => {
  it("reads Docker's nanosecond timestamps, trailing zeros trimmed or not", () => {
    const base = BigInt(Date.parse("2026-12-06T16:20:01Z")) * 1_000_000n;
    expect(logTimestampNs("2026-12-06T16:20:01.123456789Z hello")).toBe(base + 123456789n);
    expect(logTimestampNs("2026-12-06T16:20:01.5Z hello")).toBe(base + 500000000n);
    expect(logTimestampNs("2026-12-06T16:20:01Z hello")).toBe(base);
    expect(logTimestampNs("2026-12-06T17:20:01.5+01:00 x")).toBe(base + 500000000n);
    expect(logTimestampNs("no timestamp here")).toBeUndefined();
  });

  it("gives Docker's since as seconds.nanoseconds", () => {
    expect(sinceArg(1733500000123456789n)).toBe("1733500000.123456789");
    expect(sinceArg(1733500000000000005n)).toBe("1733500000.000000005");
  });

  it("delivers every line of one follow, out of order too, and drops only the replay after a new follow", () => {
    const f = new DeliveredFilter();
    expect(f.admit("2026-12-06T16:20:01.1Z a")).toBe(true);
    expect(f.admit("2026-12-06T16:20:01.3Z c")).toBe(true);
    // stderr's copier stamped this one earlier: still delivered.
    expect(f.admit("2026-12-06T16:20:01.2Z b")).toBe(true);
    expect(f.lastNs).toBe(logTimestampNs("2026-12-06T16:20:01.3Z c"));
    f.resume();
    // The new follow re-reads from the newest delivered line.
    expect(f.admit("2026-12-06T16:20:01.2Z b")).toBe(false);
    expect(f.admit("2026-12-06T16:20:01.3Z c")).toBe(false);
    expect(f.admit("2026-12-06T16:20:01.4Z d")).toBe(true);
    // Past the replay, nothing is filtered.
    expect(f.admit("2026-12-06T16:20:01.35Z e")).toBe(true);
    expect(f.admit("not stamped")).toBe(true);
  });
});
