import type { MetricsSample } from "@slipway/proto";
import { InvalidRequestError, isValidAppName, isValidEnvironmentName, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import { getAppByName, getEnvironment } from "../repositories/apps.repository.js";
import { requireApp, type Principal } from "../services/auth.service.js";
import { addInterval, mergeInto, percentilesOf, trimmed } from "./latency-histogram.js";
import { MetricsRepository, type BucketDelta, type BucketRow } from "./metrics.repository.js";

/** Metrics are stored per minute. */
export const BUCKET_MS = 60_000;
/** Samples from further ahead than this are refused (a wrong clock would own future minutes). */
const MAX_CLOCK_AHEAD_MS = 5 * 60_000;
/** Entries of one sample; far above what one host runs. */
const MAX_ENTRIES = 10_000;
/** No counter of one interval gets near this; larger is a broken or hostile agent. */
const MAX_COUNT = 1e9;
/** 10 minutes in ms: latencies beyond are clamped, not refused (a hung request is real). */
const MAX_LATENCY_MS = 600_000;

/** One minute of an environment, as the API returns it. */
export interface SeriesPoint {
  at: string;
  requests: number;
  status: { "1xx": number; "2xx": number; "3xx": number; "4xx": number; "5xx": number };
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
  /** Of one core, all the environment's containers together, averaged over the minute; null without readings. */
  cpuPercent: number | null;
  /** All the environment's containers together, the highest reading of the minute; null without readings. */
  memoryBytes: number | null;
}

/** What Prometheus gets per environment. */
export interface EnvironmentSnapshot {
  app: string;
  environment: string;
  /** Since the environment exists; undefined before its first request. */
  totals?: { requests: number; status: [number, number, number, number, number] };
  /** The newest stored minute. */
  last?: SeriesPoint;
}

/** A sample that passed validation, with its time as a Date. */
export type ValidSample = MetricsSample & { at: Date };

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= MAX_COUNT;
const isMeasure = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n) && n >= 0;
const round2 = (n: number) => Math.round(n * 100) / 100;

/**
 * Drops what an agent should never send, entry by entry, so one bad value
 * does not cost the rest of the batch (which the agent would only retry):
 * samples without a time or outside [now - retention, now + 5 min], entries
 * with invalid names or negative, fractional or absurd counts, status
 * classes adding up to more than the requests. Returns the rest sorted by time.
 */
export function validSamples(samples: MetricsSample[], now: Date, retentionMs: number): { valid: ValidSample[]; dropped: number } {
  let dropped = 0;
  const valid: ValidSample[] = [];
  for (const s of samples) {
    const at = s.at instanceof Date ? s.at : undefined;
    const t = at?.getTime() ?? NaN;
    if (!at || !Number.isFinite(t) || t < now.getTime() - retentionMs || t > now.getTime() + MAX_CLOCK_AHEAD_MS || s.containers.length + s.traffic.length > MAX_ENTRIES) {
      dropped++;
      continue;
    }
    const traffic = s.traffic.filter((e) => {
      const statuses = [e.status1xx, e.status2xx, e.status3xx, e.status4xx, e.status5xx];
      const ok =
        isValidAppName(e.app) && isValidEnvironmentName(e.environment) && isCount(e.requests) && statuses.every(isCount) &&
        statuses.reduce((a, b) => a + b, 0) <= e.requests && [e.latencyP50Ms, e.latencyP95Ms, e.latencyP99Ms].every(isMeasure);
      if (!ok) dropped++;
      return ok;
    });
    const containers = s.containers.filter((c) => {
      const ok = isValidAppName(c.app) && isValidEnvironmentName(c.environment) && isMeasure(c.cpuPercent) && isMeasure(c.memoryBytes) && c.memoryBytes <= Number.MAX_SAFE_INTEGER;
      if (!ok) dropped++;
      return ok;
    });
    valid.push({ ...s, at, traffic, containers });
  }
  valid.sort((a, b) => a.at.getTime() - b.at.getTime());
  return { valid, dropped };
}

/**
 * Downsamples samples of one host into per-environment, per-minute deltas:
 * requests and status classes summed, latencies added into the minute's
 * histogram (see latency-histogram.ts), the environment's CPU (its containers
 * summed per sample) summed with the number of samples, for an average, and
 * its memory (summed per sample) kept at its maximum. A sample belongs to
 * the minute its interval ended in. Entries of unknown environments are left out.
 */
export function downsample(samples: ValidSample[], environmentId: (app: string, environment: string) => string | undefined): BucketDelta[] {
  const deltas = new Map<string, BucketDelta>();
  const deltaOf = (envId: string, bucket: number): BucketDelta => {
    const key = `${envId}@${bucket}`;
    let d = deltas.get(key);
    if (!d) {
      d = { environmentId: envId, bucket: new Date(bucket), requests: 0, status: [0, 0, 0, 0, 0], histogram: [], cpuPercentSum: 0, cpuSamples: 0, memoryBytesMax: null };
      deltas.set(key, d);
    }
    return d;
  };
  for (const s of samples) {
    const bucket = Math.floor(s.at.getTime() / BUCKET_MS) * BUCKET_MS;
    for (const t of s.traffic) {
      const envId = environmentId(t.app, t.environment);
      if (!envId) continue;
      const d = deltaOf(envId, bucket);
      d.requests += t.requests;
      [t.status1xx, t.status2xx, t.status3xx, t.status4xx, t.status5xx].forEach((n, i) => (d.status[i] += n));
      const clamp = (ms: number) => Math.min(ms, MAX_LATENCY_MS);
      addInterval(d.histogram, t.requests, { p50: clamp(t.latencyP50Ms), p95: clamp(t.latencyP95Ms), p99: clamp(t.latencyP99Ms) });
    }
    const perEnv = new Map<string, { cpu: number; memory: number }>();
    for (const c of s.containers) {
      const envId = environmentId(c.app, c.environment);
      if (!envId) continue;
      const e = perEnv.get(envId) ?? { cpu: 0, memory: 0 };
      e.cpu += c.cpuPercent;
      e.memory += c.memoryBytes;
      perEnv.set(envId, e);
    }
    for (const [envId, e] of perEnv) {
      const d = deltaOf(envId, bucket);
      d.cpuPercentSum += e.cpu;
      d.cpuSamples += 1;
      d.memoryBytesMax = Math.max(d.memoryBytesMax ?? 0, Math.round(e.memory));
    }
  }
  for (const d of deltas.values()) d.histogram = trimmed(d.histogram);
  return [...deltas.values()];
}

/**
 * One point per minute from the rows of all hosts: counts and histograms
 * added; CPU is the sum over hosts of each host's average (the environment
 * ran on all of them at once, during a move), memory likewise the sum of maxima.
 */
export function seriesOf(rows: BucketRow[]): SeriesPoint[] {
  const byMinute = new Map<number, BucketRow[]>();
  for (const r of rows) {
    const k = r.bucket.getTime();
    byMinute.set(k, [...(byMinute.get(k) ?? []), r]);
  }
  return [...byMinute.keys()].sort((a, b) => a - b).map((k) => {
    const group = byMinute.get(k)!;
    const status = [0, 0, 0, 0, 0];
    const hist: number[] = [];
    let cpu: number | null = null;
    let memory: number | null = null;
    for (const r of group) {
      r.status.forEach((n, i) => (status[i]! += n));
      mergeInto(hist, r.histogram);
      if (r.cpuSamples > 0) cpu = (cpu ?? 0) + r.cpuPercentSum / r.cpuSamples;
      if (r.memoryBytesMax !== null) memory = (memory ?? 0) + r.memoryBytesMax;
    }
    const p = percentilesOf(hist);
    return {
      at: new Date(k).toISOString(),
      requests: group.reduce((a, r) => a + r.requests, 0),
      status: { "1xx": status[0]!, "2xx": status[1]!, "3xx": status[2]!, "4xx": status[3]!, "5xx": status[4]! },
      latencyMs: { p50: p.p50 === null ? null : round2(p.p50), p95: p.p95 === null ? null : round2(p.p95), p99: p.p99 === null ? null : round2(p.p99) },
      cpuPercent: cpu === null ? null : round2(cpu),
      memoryBytes: memory,
    };
  });
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * Environment metrics: stores what agents push (downsampled to minutes),
 * answers the API and Prometheus, prunes beyond the retention. Every method
 * is safe to call concurrently.
 */
export class MetricsService {
  private readonly repo: MetricsRepository;

  constructor(
    private readonly db: Db,
    private readonly opts: { retentionMs: number; log: Logger; now?: () => Date },
  ) {
    this.repo = new MetricsRepository(db);
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  /**
   * Stores a host's samples (called by the gRPC PushMetrics handler). A
   * sample already stored (not newer than the host's newest) is skipped, so
   * an agent resending a batch whose answer it lost counts nothing twice.
   */
  async ingest(hostId: string, samples: MetricsSample[]): Promise<void> {
    const { valid, dropped } = validSamples(samples, this.now(), this.opts.retentionMs);
    if (dropped > 0) this.opts.log.warn({ hostId, dropped }, "dropped invalid metrics entries");
    const pairs = valid.flatMap((s) => [...s.traffic, ...s.containers].map((e) => ({ app: e.app, environment: e.environment })));
    const ids = await this.repo.environmentIds(pairs);
    const stored = await this.repo.applyOnce(hostId, valid, (fresh) => downsample(fresh, (app, env) => ids.get(`${app}/${env}`)));
    if (stored < valid.length) this.opts.log.debug({ hostId, repeated: valid.length - stored }, "skipped metrics samples already stored");
  }

  /** An environment's minutes from `since` (default: the last hour), oldest first. */
  async series(by: Principal, appName: string, envName: string, since?: string): Promise<{ series: SeriesPoint[] }> {
    requireApp(by, appName);
    let from = new Date(this.now().getTime() - 3_600_000);
    if (since !== undefined) {
      const t = ISO_TIME.test(since) ? Date.parse(since) : NaN;
      if (!Number.isFinite(t)) throw new InvalidRequestError(`since must be an ISO 8601 time such as 2024-05-01T12:00:00Z, got '${since}'`, { details: { since: "must be an ISO 8601 time" } });
      from = new Date(t);
    }
    const app = await getAppByName(this.db, appName);
    const env = await getEnvironment(this.db, app, envName);
    // Its minute, so a `since` inside a minute still returns that minute.
    const rows = await this.repo.rows(env.id, new Date(Math.floor(from.getTime() / BUCKET_MS) * BUCKET_MS));
    return { series: seriesOf(rows) };
  }

  /** Totals and the newest minute of every environment that has metrics. */
  async snapshot(): Promise<EnvironmentSnapshot[]> {
    const out = new Map<string, EnvironmentSnapshot>();
    const entry = (app: string, environment: string) => {
      const k = `${app}/${environment}`;
      if (!out.has(k)) out.set(k, { app, environment });
      return out.get(k)!;
    };
    for (const t of await this.repo.totals()) entry(t.app, t.environment).totals = { requests: t.requests, status: t.status };
    const latest = await this.repo.latestRows();
    const byEnv = new Map<string, typeof latest>();
    for (const r of latest) byEnv.set(`${r.app}/${r.environment}`, [...(byEnv.get(`${r.app}/${r.environment}`) ?? []), r]);
    for (const rows of byEnv.values()) entry(rows[0]!.app, rows[0]!.environment).last = seriesOf(rows)[0];
    return [...out.values()];
  }

  /** Deletes minutes older than the retention; returns how many rows went. */
  async prune(): Promise<number> {
    const n = await this.repo.prune(new Date(this.now().getTime() - this.opts.retentionMs));
    if (n > 0) this.opts.log.info({ rows: n }, "pruned metrics beyond the retention");
    return n;
  }
}
