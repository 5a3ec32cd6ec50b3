import { sql } from "kysely";
import type { Db } from "../db/database.js";
import { toNumber } from "../db/database.js";

/** What one batch adds to one environment's row of one host and minute. */
export interface BucketDelta {
  environmentId: string;
  bucket: Date;
  requests: number;
  /** 1xx..5xx */
  status: [number, number, number, number, number];
  histogram: number[];
  cpuPercentSum: number;
  cpuSamples: number;
  memoryBytesMax: number | null;
}

/** A stored row, normalised (pg returns bigint as strings, PGlite as numbers). */
export interface BucketRow {
  hostId: string;
  bucket: Date;
  requests: number;
  status: [number, number, number, number, number];
  histogram: number[];
  cpuPercentSum: number;
  cpuSamples: number;
  memoryBytesMax: number | null;
}

export interface TotalsRow {
  app: string;
  environment: string;
  requests: number;
  status: [number, number, number, number, number];
}

const STATUS = ["status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx"] as const;

/** A float8[] literal; sent as text and cast, which pg and PGlite both accept. */
function arrayLiteral(values: readonly number[]): string {
  return `{${values.map((v) => (Number.isFinite(v) ? String(v) : "0")).join(",")}}`;
}

function parseArray(v: unknown): number[] {
  if (Array.isArray(v)) return v.map(Number);
  if (typeof v === "string") return v.replace(/[{}]/g, "").split(",").filter(Boolean).map(Number);
  return [];
}

type RawRow = {
  host_id: string;
  bucket: Date | string;
  requests: unknown;
  status_1xx: unknown;
  status_2xx: unknown;
  status_3xx: unknown;
  status_4xx: unknown;
  status_5xx: unknown;
  latency_histogram: unknown;
  cpu_percent_sum: unknown;
  cpu_samples: unknown;
  memory_bytes_max: unknown;
};

function toBucketRow(r: RawRow): BucketRow {
  return {
    hostId: r.host_id,
    bucket: new Date(r.bucket),
    requests: toNumber(r.requests),
    status: statusOf(r),
    histogram: parseArray(r.latency_histogram),
    cpuPercentSum: Number(r.cpu_percent_sum),
    cpuSamples: Number(r.cpu_samples),
    memoryBytesMax: r.memory_bytes_max === null ? null : toNumber(r.memory_bytes_max),
  };
}

function statusOf(r: Record<(typeof STATUS)[number], unknown>): [number, number, number, number, number] {
  return STATUS.map((k) => toNumber(r[k])) as [number, number, number, number, number];
}

/** Environment metrics in the platform database; the only place their SQL lives. */
export class MetricsRepository {
  constructor(private readonly db: Db) {}

  /** Environment ids by `app/environment`, for the pairs that exist. */
  async environmentIds(pairs: Array<{ app: string; environment: string }>): Promise<Map<string, string>> {
    const apps = [...new Set(pairs.map((p) => p.app))];
    if (apps.length === 0) return new Map();
    const rows = await this.db
      .selectFrom("environments")
      .innerJoin("apps", "apps.id", "environments.app_id")
      .select(["environments.id", "apps.name as app", "environments.name as environment"])
      .where("apps.name", "in", apps)
      .execute();
    return new Map(rows.map((r) => [`${r.app}/${r.environment}`, r.id]));
  }

  /**
   * Applies a host's samples once: under a lock on the host's watermark,
   * keeps only samples newer than the newest one stored, turns them into
   * bucket deltas with `toDeltas`, adds those to their rows and to the
   * totals, and moves the watermark. Returns how many samples were new.
   * Safe to call concurrently (control plane replicas): the lock serialises
   * batches of one host; rows of different hosts never collide.
   */
  async applyOnce<S extends { at: Date }>(hostId: string, samples: S[], toDeltas: (fresh: S[]) => BucketDelta[]): Promise<number> {
    if (samples.length === 0) return 0;
    return this.db.transaction().execute(async (trx) => {
      await trx.insertInto("metrics_host_watermarks").values({ host_id: hostId, last_sample_at: new Date(0) }).onConflict((oc) => oc.column("host_id").doNothing()).execute();
      const mark = await trx.selectFrom("metrics_host_watermarks").select("last_sample_at").where("host_id", "=", hostId).forUpdate().executeTakeFirstOrThrow();
      const after = new Date(mark.last_sample_at).getTime();
      const fresh = samples.filter((s) => s.at.getTime() > after);
      if (fresh.length === 0) return 0;
      for (const d of toDeltas(fresh)) {
        await trx
          .insertInto("environment_metrics")
          .values({
            environment_id: d.environmentId,
            host_id: hostId,
            bucket: d.bucket,
            requests: d.requests,
            status_1xx: d.status[0],
            status_2xx: d.status[1],
            status_3xx: d.status[2],
            status_4xx: d.status[3],
            status_5xx: d.status[4],
            latency_histogram: sql<string>`${arrayLiteral(d.histogram)}::double precision[]`,
            cpu_percent_sum: d.cpuPercentSum,
            cpu_samples: d.cpuSamples,
            memory_bytes_max: d.memoryBytesMax,
          })
          .onConflict((oc) =>
            oc.columns(["environment_id", "bucket", "host_id"]).doUpdateSet({
              requests: sql`environment_metrics.requests + excluded.requests`,
              status_1xx: sql`environment_metrics.status_1xx + excluded.status_1xx`,
              status_2xx: sql`environment_metrics.status_2xx + excluded.status_2xx`,
              status_3xx: sql`environment_metrics.status_3xx + excluded.status_3xx`,
              status_4xx: sql`environment_metrics.status_4xx + excluded.status_4xx`,
              status_5xx: sql`environment_metrics.status_5xx + excluded.status_5xx`,
              // Element-wise sum in one statement; unnest pads the shorter array with NULLs.
              latency_histogram: sql`ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0) FROM unnest(environment_metrics.latency_histogram, excluded.latency_histogram) WITH ORDINALITY AS u(a, b, i) ORDER BY i)`,
              cpu_percent_sum: sql`environment_metrics.cpu_percent_sum + excluded.cpu_percent_sum`,
              cpu_samples: sql`environment_metrics.cpu_samples + excluded.cpu_samples`,
              // GREATEST ignores NULLs: a minute with memory readings keeps its maximum.
              memory_bytes_max: sql`GREATEST(environment_metrics.memory_bytes_max, excluded.memory_bytes_max)`,
            }),
          )
          .execute();
        if (d.requests === 0) continue;
        await trx
          .insertInto("environment_traffic_totals")
          .values({ environment_id: d.environmentId, requests: d.requests, status_1xx: d.status[0], status_2xx: d.status[1], status_3xx: d.status[2], status_4xx: d.status[3], status_5xx: d.status[4] })
          .onConflict((oc) =>
            oc.column("environment_id").doUpdateSet({
              requests: sql`environment_traffic_totals.requests + excluded.requests`,
              status_1xx: sql`environment_traffic_totals.status_1xx + excluded.status_1xx`,
              status_2xx: sql`environment_traffic_totals.status_2xx + excluded.status_2xx`,
              status_3xx: sql`environment_traffic_totals.status_3xx + excluded.status_3xx`,
              status_4xx: sql`environment_traffic_totals.status_4xx + excluded.status_4xx`,
              status_5xx: sql`environment_traffic_totals.status_5xx + excluded.status_5xx`,
            }),
          )
          .execute();
      }
      const newest = new Date(Math.max(...fresh.map((s) => s.at.getTime())));
      await trx.updateTable("metrics_host_watermarks").set({ last_sample_at: newest }).where("host_id", "=", hostId).execute();
      return fresh.length;
    });
  }

  /** Rows of one environment from `since` (inclusive), oldest first, one per host and minute. */
  async rows(environmentId: string, since: Date): Promise<BucketRow[]> {
    const rows = await this.db
      .selectFrom("environment_metrics")
      .selectAll()
      .where("environment_id", "=", environmentId)
      .where("bucket", ">=", since)
      .orderBy("bucket")
      .orderBy("host_id")
      .execute();
    return rows.map(toBucketRow);
  }

  /** Every environment's request totals, with its names. */
  async totals(): Promise<TotalsRow[]> {
    const rows = await this.db
      .selectFrom("environment_traffic_totals as t")
      .innerJoin("environments as e", "e.id", "t.environment_id")
      .innerJoin("apps as a", "a.id", "e.app_id")
      .select(["a.name as app", "e.name as environment", "t.requests", "t.status_1xx", "t.status_2xx", "t.status_3xx", "t.status_4xx", "t.status_5xx"])
      .orderBy("a.name")
      .orderBy("e.name")
      .execute();
    return rows.map((r) => ({ app: r.app, environment: r.environment, requests: toNumber(r.requests), status: statusOf(r) }));
  }

  /** The rows (one per host) of each environment's newest minute, with its names. */
  async latestRows(): Promise<Array<BucketRow & { app: string; environment: string }>> {
    // max(bucket) per environment reads the primary key's (environment_id, bucket) prefix, not every minute.
    const res = await sql<RawRow & { app: string; environment: string }>`
      SELECT a.name AS app, e.name AS environment, m.*
      FROM environments e
      JOIN apps a ON a.id = e.app_id
      JOIN LATERAL (SELECT max(bucket) AS bucket FROM environment_metrics WHERE environment_id = e.id) l ON l.bucket IS NOT NULL
      JOIN environment_metrics m ON m.environment_id = e.id AND m.bucket = l.bucket
      ORDER BY a.name, e.name, m.host_id`.execute(this.db);
    return res.rows.map((r) => ({ ...toBucketRow(r), app: r.app, environment: r.environment }));
  }

  /** Deletes minutes older than `before`; returns how many rows went. */
  async prune(before: Date): Promise<number> {
    const res = await this.db.deleteFrom("environment_metrics").where("bucket", "<", before).executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
