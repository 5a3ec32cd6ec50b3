import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ContainerMetrics, EnvironmentTraffic, MetricsSample } from "@slipway/proto";
import { createLogger } from "@slipway/core";
import { testControlPlane, type DbKind, type TestControlPlane } from "../testing/harness.js";
import { downsample, MetricsService, seriesOf, validSamples, type ValidSample } from "./metrics.service.js";

const log = createLogger("test", "silent");
const T0 = Date.parse("2025-03-01T12:00:00Z");

function traffic(over: Partial<EnvironmentTraffic> = {}): EnvironmentTraffic {
  return { app: "shop", environment: "test", requests: 10, status1xx: 0, status2xx: 8, status3xx: 0, status4xx: 2, status5xx: 0, latencyP50Ms: 2, latencyP95Ms: 5, latencyP99Ms: 9, ...over };
}
function container(over: Partial<ContainerMetrics> = {}): ContainerMetrics {
  return { containerId: "c1", app: "shop", environment: "test", cpuPercent: 10, memoryBytes: 1000, memoryLimitBytes: 0, ...over };
}
function sample(atMs: number, t: EnvironmentTraffic[] = [], c: ContainerMetrics[] = []): MetricsSample {
  return { at: new Date(atMs), intervalMs: 10_000, traffic: t, containers: c };
}

describe("validSamples", () => {
  const now = new Date(T0);
  it("keeps good samples sorted by time and drops bad ones entry by entry", () => {
    const { valid, dropped } = validSamples(
      [
        sample(T0 - 10_000, [traffic(), traffic({ requests: 1, status2xx: 5 }), traffic({ app: "Bad_App" }), traffic({ latencyP99Ms: Number.NaN }), traffic({ requests: 1.5 })], [container(), container({ cpuPercent: -1 })]),
        sample(T0 - 20_000, [traffic()]),
        { at: undefined, intervalMs: 10_000, traffic: [traffic()], containers: [] },
        sample(T0 + 3_600_000, [traffic()]),
        sample(T0 - 8 * 86_400_000, [traffic()]),
      ],
      now,
      7 * 86_400_000,
    );
    expect(valid.map((s) => s.at.getTime())).toEqual([T0 - 20_000, T0 - 10_000]);
    expect(valid[1]!.traffic).toHaveLength(1);
    expect(valid[1]!.containers).toHaveLength(1);
    expect(dropped).toBe(4 + 1 + 3);
  });
});

describe("downsample", () => {
  const ids = (app: string, env: string) => (app === "shop" ? `id-${env}` : undefined);
  const valid = (s: MetricsSample[]) => s as ValidSample[];

  it("sums traffic per environment and minute and averages CPU over samples, keeps memory at its maximum", () => {
    const d = downsample(
      valid([
        sample(T0 + 10_000, [traffic()], [container({ cpuPercent: 10, memoryBytes: 1000 }), container({ containerId: "c2", cpuPercent: 30, memoryBytes: 500 })]),
        sample(T0 + 20_000, [traffic({ requests: 5, status2xx: 5, status4xx: 0 })], [container({ cpuPercent: 20, memoryBytes: 3000 })]),
        sample(T0 + 70_000, [traffic({ environment: "live" })], []),
        sample(T0 + 30_000, [traffic({ app: "ghost" })], [container({ app: "ghost" })]),
      ]),
      ids,
    );
    expect(d).toHaveLength(2);
    const test = d.find((x) => x.environmentId === "id-test")!;
    expect(test).toMatchObject({ bucket: new Date(T0), requests: 15, status: [0, 13, 0, 2, 0], cpuPercentSum: 60, cpuSamples: 2, memoryBytesMax: 3000 });
    expect(test.histogram.reduce((a, b) => a + b, 0)).toBeCloseTo(15, 9);
    expect(d.find((x) => x.environmentId === "id-live")).toMatchObject({ bucket: new Date(T0 + 60_000), requests: 10, cpuSamples: 0, memoryBytesMax: null });
  });

  it("turns rows of several hosts into one point per minute, oldest first", () => {
    const row = (hostId: string, minute: number, over: object = {}) => ({
      hostId, bucket: new Date(T0 + minute * 60_000), requests: 100, status: [0, 90, 0, 10, 0] as [number, number, number, number, number],
      histogram: [0, 0, 50, 25, 0, 25], cpuPercentSum: 60, cpuSamples: 6, memoryBytesMax: 2000, ...over,
    });
    const series = seriesOf([row("h1", 1), row("h1", 0), row("h2", 0, { requests: 50, status: [0, 50, 0, 0, 0], histogram: [], cpuSamples: 0, memoryBytesMax: null })]);
    expect(series.map((p) => p.at)).toEqual([new Date(T0).toISOString(), new Date(T0 + 60_000).toISOString()]);
    expect(series[0]).toEqual({ at: new Date(T0).toISOString(), requests: 150, status: { "1xx": 0, "2xx": 140, "3xx": 0, "4xx": 10, "5xx": 0 }, latencyMs: { p50: 2, p95: 5, p99: 5 }, cpuPercent: 10, memoryBytes: 2000 });
    expect(seriesOf([row("h1", 0, { requests: 0, status: [0, 0, 0, 0, 0], histogram: [], cpuSamples: 0, memoryBytesMax: null })])[0]).toMatchObject({ latencyMs: { p50: null, p95: null, p99: null }, cpuPercent: null, memoryBytes: null });
  });
});

describe.each<DbKind>(["pglite", "postgres"])("metrics storage and API on %s", (kind) => {
  let cp: TestControlPlane;
  let now = Date.now();
  let svc: MetricsService;
  const auth = () => ({ authorization: `Bearer ${cp.adminToken}` });
  const minute = (ms: number) => Math.floor(ms / 60_000) * 60_000;

  beforeAll(async () => {
    cp = await testControlPlane(kind);
    svc = new MetricsService(cp.database.db, { retentionMs: 3_600_000, log, now: () => new Date(now) });
    for (const name of ["shop", "blog"]) {
      const res = await cp.app.inject({ method: "POST", url: "/v1/apps", headers: auth(), payload: { name, repository: `https://git.example.test/${name}.git` } });
      expect(res.statusCode).toBe(201);
    }
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("stores pushed samples per minute and serves them oldest first", async () => {
    const m0 = minute(now) - 120_000;
    await svc.ingest("host-a", [
      sample(m0 + 10_000, [traffic()], [container({ cpuPercent: 20, memoryBytes: 4000 })]),
      sample(m0 + 20_000, [traffic({ requests: 30, status2xx: 20, status4xx: 5, status5xx: 5, latencyP50Ms: 3, latencyP95Ms: 40, latencyP99Ms: 90 })], [container({ cpuPercent: 40, memoryBytes: 5000 })]),
      sample(m0 + 70_000, [traffic({ requests: 4, status2xx: 4, status4xx: 0 })], []),
    ]);
    const res = await cp.app.inject({ method: "GET", url: `/v1/apps/shop/environments/test/metrics?since=${new Date(m0).toISOString()}`, headers: auth() });
    expect(res.statusCode).toBe(200);
    const { series } = res.json();
    expect(series).toHaveLength(2);
    expect(series[0]).toMatchObject({ at: new Date(m0).toISOString(), requests: 40, status: { "1xx": 0, "2xx": 28, "3xx": 0, "4xx": 7, "5xx": 5 }, cpuPercent: 30, memoryBytes: 5000 });
    // 40 requests: 5 at 2 ms, 15 at 3 ms for the p50s; p99 falls in the slow interval's tail
    expect(series[0].latencyMs.p50).toBe(3);
    expect(series[0].latencyMs.p99).toBeGreaterThanOrEqual(40);
    expect(series[1]).toMatchObject({ requests: 4, status: { "2xx": 4 }, latencyMs: { p50: 2, p95: 5, p99: 9 }, cpuPercent: null, memoryBytes: null });
  });

  it("does not count a batch twice when the agent sends it again", async () => {
    const m0 = minute(now) - 120_000;
    const before = (await cp.app.inject({ method: "GET", url: `/v1/apps/shop/environments/test/metrics?since=${new Date(m0).toISOString()}`, headers: auth() })).json().series;
    await svc.ingest("host-a", [sample(m0 + 10_000, [traffic()]), sample(m0 + 20_000, [traffic()])]);
    const after = (await cp.app.inject({ method: "GET", url: `/v1/apps/shop/environments/test/metrics?since=${new Date(m0).toISOString()}`, headers: auth() })).json().series;
    expect(after).toEqual(before);
  });

  it("adds up hosts serving the same environment in the same minute", async () => {
    const m = minute(now) - 60_000;
    await svc.ingest("host-b", [sample(m + 30_000, [traffic({ requests: 6, status2xx: 6, status4xx: 0 })], [container({ cpuPercent: 50, memoryBytes: 1000 })])]);
    const { series } = (await cp.app.inject({ method: "GET", url: `/v1/apps/shop/environments/test/metrics?since=${new Date(m).toISOString()}`, headers: auth() })).json();
    expect(series).toHaveLength(1);
    expect(series[0]).toMatchObject({ requests: 10, status: { "2xx": 10 }, cpuPercent: 50, memoryBytes: 1000 });
  });

  it("exposes per-environment series on /metrics", async () => {
    const res = await cp.app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    const body = res.body;
    expect(body).toContain("# TYPE slipway_environment_requests_total counter");
    expect(body).toContain('slipway_environment_requests_total{app="shop",environment="test",status_class="2xx"} 38\n');
    expect(body).toContain('slipway_environment_requests_total{app="shop",environment="test",status_class="4xx"} 7\n');
    expect(body).toContain('slipway_environment_requests_total{app="shop",environment="test",status_class="5xx"} 5\n');
    expect(body).toContain('slipway_environment_latency_ms{app="shop",environment="test",quantile="0.5"} 2\n');
    expect(body).toContain('slipway_environment_cpu_percent{app="shop",environment="test"} 50\n');
    expect(body).toContain('slipway_environment_memory_bytes{app="shop",environment="test"} 1000\n');
    expect(body).not.toContain('environment="live"');
  });

  it("answers 400 for a bad since, 404 for an unknown environment and 403 to a deployer of another app", async () => {
    for (const since of ["yesterday", "2025-13-45T00:00:00Z", "1700000000", ""]) {
      const res = await cp.app.inject({ method: "GET", url: `/v1/apps/shop/environments/test/metrics?since=${encodeURIComponent(since)}`, headers: auth() });
      expect({ since, status: res.statusCode, code: res.json().error?.code }).toEqual({ since, status: 400, code: "invalid_request" });
    }
    expect((await cp.app.inject({ method: "GET", url: "/v1/apps/shop/environments/qa/metrics", headers: auth() })).statusCode).toBe(404);
    expect((await cp.app.inject({ method: "GET", url: "/v1/apps/shop/environments/test/metrics" })).statusCode).toBe(401);
    const token = await cp.app.inject({ method: "POST", url: "/v1/tokens", headers: auth(), payload: { name: "blog-ci", role: "deployer", apps: ["blog"] } });
    expect(token.statusCode).toBe(201);
    const other = await cp.app.inject({ method: "GET", url: "/v1/apps/shop/environments/test/metrics", headers: { authorization: `Bearer ${token.json().token}` } });
    expect(other.statusCode).toBe(403);
    const own = await cp.app.inject({ method: "GET", url: "/v1/apps/blog/environments/test/metrics", headers: { authorization: `Bearer ${token.json().token}` } });
    expect(own.json()).toEqual({ series: [] });
  });

  it("prunes minutes beyond the retention but keeps the counters", async () => {
    now += 2 * 3_600_000;
    expect(await svc.prune()).toBeGreaterThan(0);
    const since = new Date(now - 6 * 3_600_000).toISOString();
    expect((await cp.app.inject({ method: "GET", url: `/v1/apps/shop/environments/test/metrics?since=${since}`, headers: auth() })).json()).toEqual({ series: [] });
    const body = (await cp.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(body).toContain('slipway_environment_requests_total{app="shop",environment="test",status_class="2xx"} 38\n');
    expect(body).not.toContain("slipway_environment_latency_ms{");
  });

  it("forgets an environment's metrics with the environment", async () => {
    const res = await cp.app.inject({ method: "DELETE", url: "/v1/apps/shop?confirm=shop", headers: auth() });
    expect(res.statusCode).toBe(202);
    expect((await cp.app.inject({ method: "GET", url: "/metrics" })).body).not.toContain('app="shop"');
    const left = await cp.database.db.selectFrom("environment_traffic_totals").select("environment_id").execute();
    expect(left).toEqual([]);
  });
});
