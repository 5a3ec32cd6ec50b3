import { describe, expect, it } from "vitest";
import { isEnvironmentBackend, percentile, TrafficAggregator } from "./traffic.aggregator.js";

const line = (backend: string, status: number, activeMs: number, server = "s1") => ({ backend, server, status, activeMs });

/** A deterministic uniform generator (mulberry32), so reservoir tests do not flake. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("percentile (nearest rank)", () => {
  it.each([
    [[], 0.5, 0],
    [[7], 0.99, 7],
    [[1, 2, 3, 4], 0.5, 2],
    [[1, 2, 3, 4], 0.75, 3],
    [[1, 2, 3, 4], 0.76, 4],
    [Array.from({ length: 100 }, (_, i) => i + 1), 0.95, 95],
    [Array.from({ length: 100 }, (_, i) => i + 1), 0.99, 99],
    [Array.from({ length: 1000 }, (_, i) => i + 1), 0.5, 500],
  ])("of %j at %d is %d", (sorted, p, want) => {
    expect(percentile(sorted, p)).toBe(want);
  });
});

describe("TrafficAggregator", () => {
  it("counts requests and status classes per backend and starts over after a drain", () => {
    const agg = new TrafficAggregator();
    for (let i = 0; i < 10; i++) agg.record(line("shop--test", 200, 2));
    agg.record(line("shop--test", 404, 1));
    agg.record(line("shop--test", 503, 30));
    agg.record(line("shop--test", 101, 0));
    agg.record(line("shop--test", 302, 1));
    agg.record(line("blog--live", 500, 9));
    const out = agg.drain().sort((a, b) => a.backend.localeCompare(b.backend));
    expect(out).toEqual([
      { backend: "blog--live", requests: 1, status: [0, 0, 0, 0, 1], p50: 9, p95: 9, p99: 9, latencySamples: 1 },
      { backend: "shop--test", requests: 14, status: [1, 10, 1, 1, 1], p50: 2, p95: 30, p99: 30, latencySamples: 14 },
    ]);
    expect(agg.drain()).toEqual([]);
  });

  it("computes exact percentiles of the interval's latencies", () => {
    const agg = new TrafficAggregator();
    // 1..1000 ms in a scrambled order
    for (let i = 0; i < 1000; i++) agg.record(line("shop--live", 200, ((i * 389) % 1000) + 1));
    const [t] = agg.drain();
    expect(t).toMatchObject({ requests: 1000, p50: 500, p95: 950, p99: 990, latencySamples: 1000 });
  });

  it("counts a request without a response but keeps it out of the latencies", () => {
    const agg = new TrafficAggregator();
    agg.record(line("shop--test", -1, -1));
    agg.record(line("shop--test", 200, 4));
    expect(agg.drain()[0]).toMatchObject({ requests: 2, status: [0, 1, 0, 0, 0], p50: 4, p99: 4, latencySamples: 1 });
  });

  it("ignores requests that reached no environment", () => {
    expect(isEnvironmentBackend("shop--test")).toBe(true);
    expect(isEnvironmentBackend("env-0f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b")).toBe(true);
    expect(isEnvironmentBackend("env-x")).toBe(false);
    expect(isEnvironmentBackend("slipway_no_environment")).toBe(false);
    expect(isEnvironmentBackend("http")).toBe(false);
    const agg = new TrafficAggregator();
    agg.record(line("slipway_no_environment", 404, 0, "<NOSRV>"));
    agg.record(line("http", 400, 0, "<NOSRV>"));
    expect(agg.drain()).toEqual([]);
  });

  it("counts what the waker answered for a sleeping or stopped environment", () => {
    const agg = new TrafficAggregator();
    agg.record(line("shop--test", 200, 2400, "waker"));
    agg.record(line("shop--test", 503, 1, "waker"));
    expect(agg.drain()[0]).toMatchObject({ requests: 2, status: [0, 1, 0, 0, 1], p99: 2400 });
  });

  it("keeps at most maxLatencies values per backend, counts stay exact and percentiles stay close", () => {
    const max = 1000;
    const agg = new TrafficAggregator({ maxLatencies: max, random: seeded(7) });
    const n = 100_000;
    // uniform 1..1000 ms, repeated: true p50 = 500, p95 = 950, p99 = 990
    for (let i = 0; i < n; i++) agg.record(line("shop--live", i % 10 === 0 ? 404 : 200, ((i * 7919) % 1000) + 1));
    const [t] = agg.drain();
    expect(t!.requests).toBe(n);
    expect(t!.status).toEqual([0, n * 0.9, 0, n * 0.1, 0]);
    expect(t!.latencySamples).toBe(max);
    expect(Math.abs(t!.p50 - 500)).toBeLessThan(50);
    expect(Math.abs(t!.p95 - 950)).toBeLessThan(25);
    expect(Math.abs(t!.p99 - 990)).toBeLessThan(10);
  });

  it("samples the whole interval uniformly, not its first or last values", () => {
    const agg = new TrafficAggregator({ maxLatencies: 100, random: seeded(3) });
    // 3000 requests of 1 ms, then 1000 of 100 ms: a uniform sample holds about 25 of the slow ones,
    // so p50 = 1 and p95 = 100 (keeping the first values would give p95 = 1, the last p50 = 100).
    for (let i = 0; i < 4000; i++) agg.record(line("shop--live", 200, i < 3000 ? 1 : 100));
    const [t] = agg.drain();
    expect(t).toMatchObject({ requests: 4000, p50: 1, p95: 100, latencySamples: 100 });
  });

  it("tracks at most maxBackends backends per interval", () => {
    const agg = new TrafficAggregator({ maxBackends: 2 });
    for (const b of ["a--x", "b--x", "c--x", "a--x"]) agg.record(line(b, 200, 1));
    expect(agg.overflowed).toBe(1);
    expect(agg.drain().map((t) => [t.backend, t.requests])).toEqual([["a--x", 2], ["b--x", 1]]);
  });
});
