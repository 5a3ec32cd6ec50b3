import { describe, expect, it } from "vitest";
import { addInterval, BUCKET_LOWER_MS, bucketIndex, bucketValue, mergeInto, percentilesOf, quantile, trimmed } from "./latency-histogram.js";

describe("latency buckets", () => {
  it("are 1 ms wide to 20 ms, then 15 % wider each, with an overflow bucket from 2 minutes", () => {
    expect(BUCKET_LOWER_MS.slice(0, 21)).toEqual(Array.from({ length: 21 }, (_, i) => i));
    expect(BUCKET_LOWER_MS[21]).toBeCloseTo(23, 6);
    expect(BUCKET_LOWER_MS.at(-1)).toBe(120_000);
    expect(BUCKET_LOWER_MS).toHaveLength(84);
    for (let i = 1; i < BUCKET_LOWER_MS.length; i++) expect(BUCKET_LOWER_MS[i]!).toBeGreaterThan(BUCKET_LOWER_MS[i - 1]!);
  });

  it("places values in the bucket whose range holds them", () => {
    expect(bucketIndex(-1)).toBe(0);
    expect(bucketIndex(0)).toBe(0);
    expect(bucketIndex(0.99)).toBe(0);
    expect(bucketIndex(7)).toBe(7);
    expect(bucketIndex(19.5)).toBe(19);
    expect(bucketIndex(20)).toBe(20);
    expect(bucketIndex(22.99)).toBe(20);
    expect(bucketIndex(23)).toBe(21);
    expect(bucketIndex(1e9)).toBe(83);
    for (const v of [1, 5, 20, 33, 250, 999, 4321, 59_000]) {
      const i = bucketIndex(v);
      expect(BUCKET_LOWER_MS[i]!).toBeLessThanOrEqual(v);
      if (i + 1 < BUCKET_LOWER_MS.length) expect(BUCKET_LOWER_MS[i + 1]!).toBeGreaterThan(v);
    }
  });

  it("reports whole milliseconds exactly below 20 ms and within 7.5 % above", () => {
    for (let v = 0; v < 20; v++) expect(bucketValue(bucketIndex(v))).toBe(v);
    for (const v of [20, 21, 37, 100, 480, 1234, 9999, 65_000]) {
      expect(Math.abs(bucketValue(bucketIndex(v)) - v) / v).toBeLessThan(0.075);
    }
  });
});

describe("percentiles from a histogram", () => {
  it("gives back one interval's own percentiles", () => {
    for (const p of [{ p50: 1, p95: 4, p99: 12 }, { p50: 0, p95: 0, p99: 0 }, { p50: 3, p95: 19, p99: 19 }]) {
      const h: number[] = [];
      addInterval(h, 500, p);
      expect(percentilesOf(h)).toEqual(p);
    }
    const h: number[] = [];
    addInterval(h, 37, { p50: 120, p95: 800, p99: 2500 });
    const got = percentilesOf(h);
    expect(Math.abs(got.p50! - 120) / 120).toBeLessThan(0.075);
    expect(Math.abs(got.p95! - 800) / 800).toBeLessThan(0.075);
    expect(Math.abs(got.p99! - 2500) / 2500).toBeLessThan(0.075);
  });

  it("weights intervals by their requests when merged and keeps the tail", () => {
    // a busy fast interval and a quiet slow one: the minute's p50 to p99 are the busy one's, its p99.5 the slow one's
    const busy: number[] = [];
    addInterval(busy, 990, { p50: 2, p95: 5, p99: 8 });
    const quiet: number[] = [];
    addInterval(quiet, 10, { p50: 300, p95: 400, p99: 500 });
    const minute: number[] = [];
    mergeInto(minute, busy);
    mergeInto(minute, quiet);
    const p = percentilesOf(minute);
    // the true values: rank 500 and 950 of 1000 are busy requests just above its own p50 and p95
    expect(p.p50).toBeGreaterThanOrEqual(2);
    expect(p.p50).toBeLessThanOrEqual(3);
    expect(p.p95).toBeGreaterThanOrEqual(5);
    expect(p.p95).toBeLessThanOrEqual(6);
    // rank 990 is the busy interval's slowest; the 10 quiet requests lie beyond, and are not averaged away
    expect(p.p99).toBe(8);
    expect(quantile(minute, 0.995)).toBeGreaterThan(250);
  });

  it("spreads the requests between two percentiles over the buckets between them", () => {
    const h: number[] = [];
    addInterval(h, 100, { p50: 2, p95: 6, p99: 6 });
    expect(h).toEqual([0, 0, 50, 11.25, 11.25, 11.25, 16.25]);
    expect(h.reduce((a, b) => a + b, 0)).toBeCloseTo(100, 9);
  });

  it("orders percentiles an agent sent out of order", () => {
    const h: number[] = [];
    addInterval(h, 100, { p50: 9, p95: 3, p99: 6 });
    expect(percentilesOf(h)).toEqual({ p50: 3, p95: 6, p99: 9 });
  });

  it("is null without requests and ignores empty intervals", () => {
    const h: number[] = [];
    addInterval(h, 0, { p50: 5, p95: 5, p99: 5 });
    expect(h).toEqual([]);
    expect(quantile(h, 0.5)).toBeNull();
    expect(percentilesOf([0, 0])).toEqual({ p50: null, p95: null, p99: null });
  });

  it("stores arrays without trailing zeros and merges arrays of any length", () => {
    expect(trimmed([0, 3, 0, 1, 0, 0])).toEqual([0, 3, 0, 1]);
    expect(trimmed([0, 0])).toEqual([]);
    const a = [1, 2];
    mergeInto(a, [0, 1, 5]);
    expect(a).toEqual([1, 3, 5]);
  });
});
