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

  it("drops what an earlier follow delivered, and keeps what is newer", () => {
    const f = new DeliveredFilter();
    expect(f.admit("2026-12-06T16:20:01.1Z a")).toBe(true);
    expect(f.admit("2026-12-06T16:20:01.2Z b")).toBe(true);
    // A new follow from the last delivered line re-reads it and what came before.
    expect(f.admit("2026-12-06T16:20:01.1Z a")).toBe(false);
    expect(f.admit("2026-12-06T16:20:01.2Z b")).toBe(false);
    expect(f.admit("2026-12-06T16:20:01.3Z c")).toBe(true);
    expect(f.admit("not stamped")).toBe(true);
    expect(f.lastNs).toBe(logTimestampNs("2026-12-06T16:20:01.3Z c"));
  });
});
