import { describe, expect, it } from "vitest";
import type { MetricsPoint } from "../api/metrics-data";
import { MAX_POINTS, bucketize, formatNumber, latest, plottedPoints } from "./metrics-series";

const T0 = Date.parse("2026-12-06T10:00:00Z");
const minute = (i: number, requests: number, extra: Partial<MetricsPoint> = {}): MetricsPoint => ({
  at: new Date(T0 + i * 60_000).toISOString(),
  requests,
  status: { "1xx": 0, "2xx": requests, "3xx": 0, "4xx": 0, "5xx": 0 },
  latencyMs: { p50: requests ? 2 : null, p95: requests ? 5 + i : null, p99: requests ? 9 + i : null },
  cpuPercent: null,
  memoryBytes: null,
  ...extra,
});

describe("the Metrics page's points", () => {
  it("gives an hour one point per minute: requests per second, minutes without a row at zero, latency null there", () => {
    const b = bucketize([minute(0, 120), minute(59, 60)], T0, T0 + 3_600_000);
    expect(b.stepMinutes).toBe(1);
    expect(b.x).toHaveLength(60);
    expect(b.x[0]).toBe(T0 / 1000);
    expect(b.rates["2xx"][0]).toBe(2);
    expect(b.rates["2xx"][30]).toBe(0);
    expect(b.rates["2xx"][59]).toBe(1);
    expect(b.p95[30]).toBeNull();
    expect(b.minutesWithData).toBe(2);
    expect(plottedPoints(b.rates["2xx"], b.rates["5xx"])).toBe(2);
  });

  it("bounds a day to MAX_POINTS points: rates over the step, the worst latency, average CPU, the highest memory", () => {
    const series = Array.from({ length: 1440 }, (_, i) => minute(i, 60, { cpuPercent: i % 2 ? 10 : 20, memoryBytes: (i % 8) * 1048576 }));
    const b = bucketize(series, T0, T0 + 1440 * 60_000);
    expect(b.x.length).toBeLessThanOrEqual(MAX_POINTS);
    expect(b.stepMinutes).toBe(8);
    expect(b.rates["2xx"][0]).toBe(1);
    expect(b.p95[0]).toBe(5 + 7);
    expect(b.cpu[0]).toBe(15);
    expect(b.memoryMiB[0]).toBe(7);
  });

  it("leaves out minutes before the range and says what was measured last", () => {
    const b = bucketize([minute(-5, 600), minute(2, 6)], T0, T0 + 15 * 60_000);
    expect(b.minutesWithData).toBe(1);
    expect(latest(b.p50)).toBe(2);
    expect(latest([null, null])).toBeNull();
    expect([formatNumber(null), formatNumber(0), formatNumber(0.0512), formatNumber(3.24), formatNumber(123.4)]).toEqual(["no data", "0", "0.051", "3.2", "123"]);
  });
});
