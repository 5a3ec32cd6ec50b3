import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Platform, type AgentHandle } from "./support/platform.js";
import { TestRepo, helloApp } from "./support/git-repo.js";
import { sleep, waitFor } from "./support/processes.js";

/** Sends exactly these paths through the ingress on `clients` keep-alive connections; resolves with the statuses seen. */
async function send(port: number, host: string, paths: string[], clients = 10): Promise<Map<number, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const seen = new Map<number, number>();
  const queue = [...paths];
  const one = (p: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port, path: p, agent, headers: { host }, timeout: 10_000 }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
    });
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
          const status = await one(p);
          seen.set(status, (seen.get(status) ?? 0) + 1);
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return seen;
}

interface Point {
  at: string;
  requests: number;
  status: Record<"1xx" | "2xx" | "3xx" | "4xx" | "5xx", number>;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  cpuPercent: number | null;
  memoryBytes: number | null;
}

/** The values of `slipway_environment_requests_total` of one environment, by status class. */
function promRequests(text: string, app: string, env: string): Record<string, number> {
  const out: Record<string, number> = {};
  const re = new RegExp(`^slipway_environment_requests_total\\{app="${app}",environment="${env}",status_class="([^"]+)"\\} (\\d+)$`, "gm");
  for (const m of text.matchAll(re)) out[m[1]!] = Number(m[2]);
  return out;
}

// Containers and ingress to the API and Prometheus: real dockerd, HAProxy, NATS and PostgreSQL,
// the agent sampling every 500 ms.
describe("environment metrics end to end", () => {
  const platform = new Platform({ database: "postgres" });
  const repo = new TestRepo();
  let agent: AgentHandle;
  const host = "shop-test.localhost";
  const N = 1000;
  const NOT_FOUND = 150;

  beforeAll(async () => {
    await platform.start();
    agent = await platform.addAgent({ SLIPWAY_METRICS_INTERVAL_MS: "500" });
    repo.commit(helloApp("metrics"), "v1");
    await platform.api.call("POST", "/v1/apps", { name: "shop", repository: repo.url, settings: { startupProbe: { startupTimeoutSeconds: 8 } } });
  });
  afterAll(async () => {
    await platform.stop();
  });

  it("counts 1000 requests through the ingress in the API and in Prometheus", async () => {
    const d = await platform.api.deploy("shop", "test");
    expect(d.state, await platform.api.log(d.id)).toBe("succeeded");
    const since = new Date(Date.now() - 60_000).toISOString();

    // 850 to the page, 150 to a path busybox httpd does not have, interleaved
    const paths = Array.from({ length: N }, (_, i) => (i % 20 < 3 ? "/missing" : "/"));
    const started = Date.now();
    const seen = await send(agent.ingressPort, host, paths);
    const sendMs = Date.now() - started;
    expect(Object.fromEntries(seen)).toEqual({ 200: N - NOT_FOUND, 404: NOT_FOUND });

    const sum = (series: Point[]) => ({
      requests: series.reduce((a, p) => a + p.requests, 0),
      "2xx": series.reduce((a, p) => a + p.status["2xx"], 0),
      "4xx": series.reduce((a, p) => a + p.status["4xx"], 0),
      other: series.reduce((a, p) => a + p.status["1xx"] + p.status["3xx"] + p.status["5xx"], 0),
    });
    const read = async () => (await platform.api.call<{ series: Point[] }>("GET", `/v1/apps/shop/environments/test/metrics?since=${encodeURIComponent(since)}`)).series;
    const arrivedMs = await waitFor("the requests to reach the metrics API", async () => ((sum(await read())).requests >= N * 0.99 ? Date.now() - started : undefined), 60_000, 250);
    // A few more intervals: nothing may be counted twice or arrive late beyond the tolerance.
    // (A window of time is the behaviour under test here: four of the agent's 500 ms pushes.)
    await sleep(2000);
    const series = await read();
    const total = sum(series);
    const withTraffic = series.filter((p) => p.requests > 0);
    console.info(
      `${N} requests sent in ${sendMs} ms, in the API after ${arrivedMs} ms: ${JSON.stringify(total)} over ${withTraffic.length} minute(s); ` +
        `latency ${withTraffic.map((p) => JSON.stringify(p.latencyMs)).join(" ")}; cpu ${series.map((p) => p.cpuPercent).join(",")} %, memory ${series.map((p) => p.memoryBytes).join(",")} B`,
    );
    expect(Math.abs(total.requests - N)).toBeLessThanOrEqual(N * 0.01);
    expect(Math.abs(total["4xx"] - NOT_FOUND)).toBeLessThanOrEqual(NOT_FOUND * 0.01);
    expect(Math.abs(total["2xx"] - (N - NOT_FOUND))).toBeLessThanOrEqual((N - NOT_FOUND) * 0.01);
    expect(total.other).toBe(0);
    for (const p of withTraffic) {
      expect(p.latencyMs.p50).not.toBeNull();
      expect(p.latencyMs.p50!).toBeLessThanOrEqual(p.latencyMs.p95!);
      expect(p.latencyMs.p95!).toBeLessThanOrEqual(p.latencyMs.p99!);
      expect(p.latencyMs.p99!).toBeLessThan(1000);
    }
    // The web container was sampled too: busybox httpd holds some memory and never uses more than a core or two.
    const sampled = series.filter((p) => p.memoryBytes !== null);
    expect(sampled.length).toBeGreaterThan(0);
    for (const p of sampled) {
      expect(p.memoryBytes!).toBeGreaterThan(0);
      expect(p.cpuPercent!).toBeGreaterThanOrEqual(0);
      expect(p.cpuPercent!).toBeLessThan(400);
    }

    // Gauges describe the newest stored minute: read the series before and after the scrape, and keep a
    // scrape during which that minute stayed the same (a container reading may open a new minute meanwhile).
    let prom = "";
    let newest: Point | undefined;
    for (let i = 0; i < 5 && !newest; i++) {
      const before = (await read()).at(-1)!;
      prom = await (await fetch(`${platform.api.baseUrl}/metrics`)).text();
      const after = (await read()).at(-1)!;
      if (before.at === after.at && before.requests === after.requests) newest = after;
    }
    expect(newest, "the newest minute changed during each of 5 scrapes").toBeDefined();
    const counters = promRequests(prom, "shop", "test");
    console.info("Prometheus slipway_environment_requests_total{app=shop,environment=test}:", counters);
    expect(Object.values(counters).reduce((a, b) => a + b, 0)).toBe(total.requests);
    expect(counters["2xx"]).toBe(total["2xx"]);
    expect(counters["4xx"]).toBe(total["4xx"]);
    // Latency exists only if the newest minute had requests (it may hold only container readings).
    const latency = /^slipway_environment_latency_ms\{app="shop",environment="test",quantile="0.99"\} [\d.]+$/m;
    if (newest!.requests > 0) expect(prom).toMatch(latency);
    else expect(prom).not.toMatch(latency);
    expect(prom).toMatch(/^slipway_environment_memory_bytes\{app="shop",environment="test"\} \d+$/m);
  });

  it("refuses a since that is not a time", async () => {
    const res = await platform.api.raw("GET", "/v1/apps/shop/environments/test/metrics?since=last-tuesday");
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
  });
});
