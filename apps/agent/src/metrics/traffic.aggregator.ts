import { isEnvironmentSlug } from "@slipway/core";
import { isValidBackendName } from "../ingress/haproxy.config.js";
import type { TrafficLogLine } from "./traffic-log.js";

/** Traffic of one backend over one interval. */
export interface BackendTraffic {
  backend: string;
  requests: number;
  /** Counts of 1xx..5xx; requests without a status (-1) are in `requests` only. */
  status: [number, number, number, number, number];
  /** Percentiles of the interval's latencies in ms; all 0 when no request of the interval completed. */
  p50: number;
  p95: number;
  p99: number;
  /** How many latencies the percentiles were computed from (≤ the reservoir size). */
  latencySamples: number;
}

export interface TrafficAggregatorOptions {
  /** Latencies kept per backend per interval; beyond that, reservoir sampling (default 10,000). */
  maxLatencies?: number;
  /** Backends tracked per interval; lines of further backends are dropped (default 1,000). */
  maxBackends?: number;
  /** Uniform in [0, 1); injectable for tests. */
  random?: () => number;
}

interface Acc {
  requests: number;
  status: [number, number, number, number, number];
  latencies: number[];
  /** Latencies offered to the reservoir (kept or not). */
  seen: number;
}

/**
 * Whether a logged backend is an environment's: named after its id (core's
 * environmentSlug), or `<app>--<env>` as older agents named them. Excluded are
 * the no-environment backend (unknown host names) and the frontend's own name,
 * which HAProxy logs for a request that failed before a backend was chosen.
 * Requests the waker served (a sleeping or stopped environment) count: HAProxy
 * logs one line per client request whichever server answered, so nothing is
 * counted twice, and a wake-up is latency the client really waited.
 */
export function isEnvironmentBackend(name: string): boolean {
  return isValidBackendName(name) && (isEnvironmentSlug(name) || name.includes("--"));
}

/**
 * An interval's traffic from both sources: the counts (requests, status classes) are HAProxy's
 * own counters, exact; the percentiles come from the request log, a sample of each backend's
 * requests. Only environments' backends; those without requests are left out.
 */
export function withCounts(counts: ReadonlyMap<string, { requests: number; status: readonly number[] }>, sampled: readonly BackendTraffic[]): BackendTraffic[] {
  const latencies = new Map(sampled.map((t) => [t.backend, t]));
  const out: BackendTraffic[] = [];
  for (const [backend, c] of counts) {
    if (c.requests <= 0 || !isEnvironmentBackend(backend)) continue;
    const l = latencies.get(backend);
    out.push({
      backend,
      requests: c.requests,
      status: [c.status[0] ?? 0, c.status[1] ?? 0, c.status[2] ?? 0, c.status[3] ?? 0, c.status[4] ?? 0],
      p50: l?.p50 ?? 0,
      p95: l?.p95 ?? 0,
      p99: l?.p99 ?? 0,
      latencySamples: l?.latencySamples ?? 0,
    });
  }
  return out;
}

/** Nearest-rank percentile of an ascending array (p in (0, 1]); 0 for an empty one. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(p * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/**
 * Counts requests per backend between two drains and computes exact
 * percentiles of the interval's latencies. Memory is bounded: at most
 * `maxLatencies` values per backend (Algorithm R reservoir beyond that, so
 * the kept values stay a uniform sample) and `maxBackends` backends; counts
 * stay exact either way. Not safe across threads; called from one event loop.
 */
export class TrafficAggregator {
  private accs = new Map<string, Acc>();
  private readonly maxLatencies: number;
  private readonly maxBackends: number;
  private readonly random: () => number;
  /** Lines dropped since the last drain because maxBackends was reached. */
  overflowed = 0;

  constructor(opts: TrafficAggregatorOptions = {}) {
    this.maxLatencies = opts.maxLatencies ?? 10_000;
    this.maxBackends = opts.maxBackends ?? 1_000;
    this.random = opts.random ?? Math.random;
  }

  /** Counts one request; reads `line` during the call only (the receiver reuses it). */
  record(line: TrafficLogLine): void {
    let acc = this.accs.get(line.backend);
    if (!acc) {
      // Checked once per backend and interval, not per line: only environment backends get an accumulator.
      if (!isEnvironmentBackend(line.backend)) return;
      if (this.accs.size >= this.maxBackends) {
        this.overflowed++;
        return;
      }
      acc = { requests: 0, status: [0, 0, 0, 0, 0], latencies: [], seen: 0 };
      this.accs.set(line.backend, acc);
    }
    acc.requests++;
    if (line.status >= 100 && line.status <= 599) acc.status[Math.floor(line.status / 100) - 1]!++;
    if (line.activeMs >= 0) this.offer(acc, line.activeMs);
  }

  private offer(acc: Acc, ms: number): void {
    acc.seen++;
    if (acc.latencies.length < this.maxLatencies) {
      acc.latencies.push(ms);
      return;
    }
    const j = Math.floor(this.random() * acc.seen);
    if (j < this.maxLatencies) acc.latencies[j] = ms;
  }

  /** The traffic since the previous drain, one entry per backend that had requests; starts a new interval. */
  drain(): BackendTraffic[] {
    const accs = this.accs;
    this.accs = new Map();
    this.overflowed = 0;
    return [...accs].map(([backend, a]) => {
      // The accumulator is discarded, so its array can be sorted in place.
      const arr = a.latencies.sort((x, y) => x - y);
      return {
        backend,
        requests: a.requests,
        status: a.status,
        p50: percentile(arr, 0.5),
        p95: percentile(arr, 0.95),
        p99: percentile(arr, 0.99),
        latencySamples: arr.length,
      };
    });
  }
}
