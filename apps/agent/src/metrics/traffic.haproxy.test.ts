// Integration test against the real /usr/sbin/haproxy: requests through the
// ingress reach a node:http upstream, HAProxy logs each one over UDP to the
// agent's receiver, and the aggregator counts them. All on 127.0.0.1.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reservePort } from "../testing/ports.js";
import { HaproxyIngress } from "../ingress/haproxy.ingress.js";
import { startTrafficCollector, type TrafficCollector } from "./agent-metrics.js";
import type { BackendTraffic } from "./traffic.aggregator.js";

const logger = pino({ level: process.env["LOG_LEVEL"] ?? "silent" });
const BACKEND = "shop--test";
const HOST = "shop-test.localhost";

/** Answers /missing with 404, /unavailable with 503, /slow after 30 ms, anything else with 200. */
async function startUpstream(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const answer = (status: number) => {
      res.statusCode = status;
      res.setHeader("content-type", "text/plain");
      res.end(String(status));
    };
    if (req.url === "/missing") answer(404);
    else if (req.url === "/unavailable") answer(503);
    else if (req.url === "/slow") setTimeout(() => answer(200), 30);
    else answer(200);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** Sends the paths through the ingress on `clients` keep-alive connections; resolves with the status counts seen. */
async function send(port: number, host: string, paths: string[], clients = 10): Promise<Map<number, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const seen = new Map<number, number>();
  const queue = [...paths];
  const one = (p: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port, path: p, agent, headers: { host } }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.setTimeout(10_000, () => req.destroy(new Error("request timed out")));
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

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("traffic metrics from a real HAProxy", () => {
  let dir: string;
  let httpPort: number;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const collectors: TrafficCollector[] = [];
  const ingresses: HaproxyIngress[] = [];
  let received = 0;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "slipway-metrics-"));
    httpPort = await reservePort();
    upstream = await startUpstream();
    const collector = await startTrafficCollector(0, logger);
    collectors.push(collector);
    const ingress = new HaproxyIngress({ dir, httpPort, trafficLogPort: collector.port, logger });
    ingresses.push(ingress);
    await ingress.start();
    await ingress.ensureBackend({ name: BACKEND, hostnames: [HOST], maxServers: 2 });
    await ingress.switchTraffic(BACKEND, [{ id: "u1", host: "127.0.0.1", port: upstream.port }]);
  });

  afterAll(async () => {
    for (const i of ingresses.reverse()) await i.stop().catch(() => undefined);
    for (const c of collectors) await c.close();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Drains the collector until `n` requests of the backend have been counted (UDP lines arrive after the responses). */
  async function collect(collector: TrafficCollector, n: number): Promise<BackendTraffic> {
    const total: BackendTraffic = { backend: BACKEND, requests: 0, status: [0, 0, 0, 0, 0], p50: 0, p95: 0, p99: 0, latencySamples: 0 };
    await waitFor(`${n} logged requests`, () => {
      for (const t of collector.aggregator.drain()) {
        if (t.backend !== BACKEND) continue;
        total.requests += t.requests;
        t.status.forEach((v, i) => (total.status[i] += v));
        // One interval is expected; keep the percentiles of the largest part if the lines straddled two drains.
        if (t.latencySamples > total.latencySamples) Object.assign(total, { p50: t.p50, p95: t.p95, p99: t.p99, latencySamples: t.latencySamples });
      }
      return total.requests >= n;
    });
    // Late or duplicated lines would show up here.
    await new Promise((r) => setTimeout(r, 300));
    for (const t of collector.aggregator.drain()) if (t.backend === BACKEND) total.requests += t.requests;
    return total;
  }

  it("counts 500 requests with their status classes and latency percentiles", async () => {
    const collector = collectors[0]!;
    // 500 interleaved requests: 100 404s, 50 503s, 350 200s of which 25 (5 % of all) are slow
    const paths = Array.from({ length: 500 }, (_, i) => (i % 10 <= 1 ? "/missing" : i % 10 === 5 ? "/unavailable" : i % 20 === 3 ? "/slow" : "/"));
    const want = { 200: paths.filter((p) => p === "/" || p === "/slow").length, 404: paths.filter((p) => p === "/missing").length, 503: paths.filter((p) => p === "/unavailable").length };
    expect(want).toEqual({ 200: 350, 404: 100, 503: 50 });
    // requests for an unknown host name reach no environment and must not be counted
    await send(httpPort, "nobody.localhost", ["/", "/", "/"]);
    const started = Date.now();
    const seen = await send(httpPort, HOST, paths);
    expect(Object.fromEntries(seen)).toEqual(want);
    const t = await collect(collector, 500);
    received = t.requests;
    console.info(
      `500 requests in ${Date.now() - started} ms → counted ${t.requests}, status ${JSON.stringify(t.status)}, ` +
        `p50 ${t.p50} ms, p95 ${t.p95} ms, p99 ${t.p99} ms from ${t.latencySamples} latencies`,
    );
    expect(Math.abs(t.requests - 500)).toBeLessThanOrEqual(5);
    expect(t.status[1]).toBeGreaterThanOrEqual(345);
    expect(t.status[3]).toBe(100);
    expect(t.status[4]).toBe(50);
    expect(t.status[0] + t.status[2]).toBe(0);
    expect(paths.filter((p) => p === "/slow")).toHaveLength(25);
    // the 25 /slow requests took ≥ 30 ms: p50 is one of the fast ones (below the slow ones' floor even on a
    // loaded machine), p99 (rank 495) is one of them, all below a second
    expect(t.p50).toBeLessThan(30);
    expect(t.p99).toBeGreaterThanOrEqual(30);
    expect(t.p99).toBeLessThan(1000);
    expect(t.p95).toBeLessThanOrEqual(t.p99);
    expect(t.p50).toBeLessThanOrEqual(t.p95);
  });

  it("moves the request log to a new port when an agent restarts with another one", async () => {
    expect(received).toBeGreaterThan(0);
    const next = await startTrafficCollector(0, logger);
    collectors.push(next);
    // An agent restart: a new adapter adopts the running proxy and reloads it because the config names the new port.
    const adopter = new HaproxyIngress({ dir, httpPort, trafficLogPort: next.port, logger });
    ingresses.push(adopter);
    await adopter.start();
    expect(readFileSync(path.join(dir, "haproxy.cfg"), "utf8")).toContain(`log 127.0.0.1:${next.port} `);
    await send(httpPort, HOST, Array.from({ length: 20 }, () => "/"));
    const t = await collect(next, 20);
    expect(t.requests).toBe(20);
    expect(collectors[0]!.aggregator.drain()).toEqual([]);
  });
});

// Issue 10: counts from HAProxy's own counters, the request log a thinned latency sample.
describe("traffic counted by HAProxy, the log thinned to a latency sample (real HAProxy)", () => {
  let dir: string;
  let httpPort: number;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let collector: TrafficCollector;
  let ingress: HaproxyIngress;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "slipway-counters-"));
    httpPort = await reservePort();
    upstream = await startUpstream();
    // Small targets so that a few thousand requests are "busy": 20 lines a second at most.
    collector = await startTrafficCollector(0, logger, { sampling: { perBackend: 20, total: 20 }, counterPollMs: 200 });
    ingress = new HaproxyIngress({ dir, httpPort, trafficLogPort: collector.port, logger });
    await ingress.start();
    await ingress.ensureBackend({ name: BACKEND, hostnames: [HOST], maxServers: 2 });
    await ingress.switchTraffic(BACKEND, [{ id: "u1", host: "127.0.0.1", port: upstream.port }]);
    await collector.countWith(ingress.counterSource(), (changes) => ingress.setLogSampling(changes));
  });
  afterAll(async () => {
    await ingress?.stop().catch(() => undefined);
    await collector?.close();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Takes the collector's traffic of BACKEND until nothing more arrives for 300 ms. */
  async function takeAll(): Promise<BackendTraffic> {
    const total: BackendTraffic = { backend: BACKEND, requests: 0, status: [0, 0, 0, 0, 0], p50: 0, p95: 0, p99: 0, latencySamples: 0 };
    for (let quiet = 0; quiet < 3; ) {
      await new Promise((r) => setTimeout(r, 100));
      const got = (await collector.take()).find((t) => t.backend === BACKEND);
      if (!got) {
        quiet++;
        continue;
      }
      quiet = 0;
      total.requests += got.requests;
      got.status.forEach((v, i) => (total.status[i] += v));
      total.latencySamples += got.latencySamples;
      if (got.p99 > total.p99) Object.assign(total, { p50: got.p50, p95: got.p95, p99: got.p99 });
    }
    return total;
  }

  it("counts every request exactly while logging only a sample of a busy backend", async () => {
    await takeAll();
    await send(httpPort, "nobody.localhost", ["/", "/"]);
    const paths = Array.from({ length: 4000 }, (_, i) => (i % 10 === 0 ? "/missing" : i % 40 === 5 ? "/unavailable" : "/"));
    const seen = await send(httpPort, HOST, paths);
    const t = await takeAll();
    console.info(`4000 requests → counted ${t.requests}, status ${JSON.stringify(t.status)}; ${t.latencySamples} log lines; sample map: ${readFileSync(path.join(dir, "log-sample.map"), "utf8").trim().split("\n").slice(1).join(", ")}`);
    expect(t.requests).toBe(4000);
    expect(t.status).toEqual([0, seen.get(200), 0, seen.get(404), seen.get(503)]);
    // The log was thinned once the rate was known: far fewer lines than requests, but some.
    expect(t.latencySamples).toBeGreaterThan(0);
    expect(t.latencySamples).toBeLessThan(3000);
    expect(readFileSync(path.join(dir, "log-sample.map"), "utf8")).toMatch(new RegExp(`^${BACKEND} \\d+$`, "m"));
  });

  it("counts the requests of an old worker after a reload, under a keep-alive load", async () => {
    await takeAll();
    let sent = 0;
    let failed = 0;
    let stop = false;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    const loop = async () => {
      while (!stop) {
        await new Promise<void>((resolve, reject) => {
          const req = http.get({ host: "127.0.0.1", port: httpPort, path: "/", agent, headers: { host: HOST } }, (res) => {
            res.resume();
            res.on("end", () => {
              if (res.statusCode === 200) sent++;
              resolve();
            });
          });
          req.on("error", () => {
            failed++;
            resolve();
          });
          void reject;
        });
      }
    };
    const clients = Array.from({ length: 10 }, () => loop());
    await new Promise((r) => setTimeout(r, 500));
    // A structure change reloads HAProxy: the old worker finishes each connection's request in flight.
    await ingress.ensureBackend({ name: "other--test", hostnames: ["other-test.localhost"], maxServers: 2 });
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await Promise.all(clients);
    agent.destroy();
    const t = await takeAll();
    console.info(`across a reload: ${sent} answered, ${failed} failed, ${t.requests} counted (${t.requests - sent})`);
    expect(t.requests).toBe(sent);
  });
});
