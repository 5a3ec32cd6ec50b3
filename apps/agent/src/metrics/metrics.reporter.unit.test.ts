import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { MetricsBatch } from "@slipway/proto";
import { backendResolver } from "./agent-metrics.js";
import { MetricsReporter } from "./metrics.reporter.js";
import type { BackendTraffic } from "./traffic.aggregator.js";

const log = pino({ level: "silent" });

function traffic(backend: string, requests: number): BackendTraffic {
  return { backend, requests, status: [0, requests, 0, 0, 0], p50: 1, p95: 2, p99: 3, latencySamples: requests };
}

/** A control plane that can be switched off; it records every batch it accepted. */
function sink() {
  const s = {
    up: true,
    accepted: [] as MetricsBatch[],
    attempts: 0,
    pushMetrics: async (batch: MetricsBatch) => {
      s.attempts++;
      if (!s.up) throw new Error("14 UNAVAILABLE: connection refused");
      s.accepted.push(structuredClone(batch));
      return { accepted: batch.samples.length };
    },
  };
  return s;
}

describe("MetricsReporter", () => {
  it("pushes one sample per interval with the traffic mapped to app and environment", async () => {
    const cp = sink();
    let t = 1_000_000;
    const r = new MetricsReporter({
      sink: cp,
      traffic: () => [traffic("shop--test", 5), traffic("ghost--x", 1)],
      containers: async () => [{ containerId: "c1", app: "shop", environment: "test", cpuPercent: 12.5, memoryBytes: 100, memoryLimitBytes: 0 }],
      resolve: (b) => (b === "shop--test" ? { app: "shop", environment: "test" } : undefined),
      intervalMs: 10_000,
      log,
      now: () => new Date(t),
    });
    t += 10_000;
    await r.tick();
    expect(cp.accepted).toHaveLength(1);
    const [sample] = cp.accepted[0]!.samples;
    expect(sample).toMatchObject({ at: new Date(1_010_000), intervalMs: 10_000, containers: [{ containerId: "c1", cpuPercent: 12.5 }] });
    expect(sample!.traffic).toEqual([
      { app: "shop", environment: "test", requests: 5, status1xx: 0, status2xx: 5, status3xx: 0, status4xx: 0, status5xx: 0, latencyP50Ms: 1, latencyP95Ms: 2, latencyP99Ms: 3 },
    ]);
    expect(r.buffered).toBe(0);
  });

  it("buffers while the control plane is unreachable, drops the oldest beyond the limit and sends the rest in order later", async () => {
    const cp = sink();
    cp.up = false;
    let n = 0;
    const r = new MetricsReporter({
      sink: cp,
      traffic: () => [traffic("shop--test", ++n)],
      resolve: () => ({ app: "shop", environment: "test" }),
      intervalMs: 10_000,
      maxBuffered: 5,
      maxPerPush: 2,
      log,
    });
    for (let i = 0; i < 8; i++) await r.tick();
    expect(r.buffered).toBe(5);
    expect(r.dropped).toBe(3);
    expect(cp.accepted).toEqual([]);
    cp.up = true;
    await r.tick();
    // the 9th sample joins the full buffer before the push, so 1..4 are dropped; 5..9 go oldest first, at most 2 a batch
    const sent = cp.accepted.flatMap((b) => b.samples.map((s) => s.traffic[0]!.requests));
    expect(sent).toEqual([5, 6, 7, 8, 9]);
    expect(cp.accepted.map((b) => b.samples.length)).toEqual([2, 2, 1]);
    expect(r.dropped).toBe(4);
    expect(r.buffered).toBe(0);
    expect(r.pushed).toBe(5);
  });

  it("still pushes traffic when the container reading fails", async () => {
    const cp = sink();
    const r = new MetricsReporter({
      sink: cp,
      traffic: () => [traffic("shop--test", 2)],
      containers: async () => {
        throw new Error("docker is down");
      },
      resolve: () => ({ app: "shop", environment: "test" }),
      intervalMs: 10_000,
      log,
    });
    await r.tick();
    expect(cp.accepted[0]!.samples[0]).toMatchObject({ containers: [], traffic: [{ requests: 2 }] });
  });

  it("sends the unfinished interval when stopped, but does not wait for an unreachable control plane", async () => {
    const cp = sink();
    const r = new MetricsReporter({ sink: cp, traffic: () => [traffic("shop--test", 3)], resolve: () => ({ app: "shop", environment: "test" }), intervalMs: 60_000, log });
    r.start();
    await r.stop();
    expect(cp.accepted.flatMap((b) => b.samples)).toHaveLength(1);

    const down = sink();
    down.up = false;
    const r2 = new MetricsReporter({ sink: down, traffic: () => [], resolve: () => undefined, intervalMs: 60_000, log });
    await r2.tick();
    const attempts = down.attempts;
    await r2.stop();
    expect(down.attempts).toBe(attempts);
  });
});

describe("backendResolver", () => {
  it("asks the environments first and splits at the first -- otherwise", () => {
    const resolve = backendResolver((slug) => (slug === "a--b--live" ? { app: "a--b", environment: "live" } : undefined));
    expect(resolve("a--b--live")).toEqual({ app: "a--b", environment: "live" });
    expect(resolve("shop--test")).toEqual({ app: "shop", environment: "test" });
    expect(resolve("noslug")).toBeUndefined();
    expect(resolve("--x")).toBeUndefined();
    expect(resolve("x--")).toBeUndefined();
  });
});
