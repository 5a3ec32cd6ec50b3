// Pure helpers of the Metrics page: the API's minutes turned into at most MAX_POINTS points per
// graph (a day is 1440 minutes; a graph of 360 px cannot show more than a few hundred anyway).
import type { MetricsPoint } from "../api/metrics-data";

export const MAX_POINTS = 180;
export const STATUS_CLASSES = ["2xx", "3xx", "4xx", "5xx"] as const;

/** The graphs' data: x in seconds (bucket starts), one array per series, null where nothing was measured. */
export interface Buckets {
  stepMinutes: number;
  x: number[];
  rates: Record<(typeof STATUS_CLASSES)[number], number[]>;
  p50: (number | null)[];
  p95: (number | null)[];
  p99: (number | null)[];
  cpu: (number | null)[];
  memoryMiB: (number | null)[];
  /** How many minutes of the range the API had a row for. */
  minutesWithData: number;
}

const MINUTE = 60_000;

const maxOf = (values: (number | null)[]): number | null => values.reduce<number | null>((m, v) => (v === null ? m : m === null ? v : Math.max(m, v)), null);

/**
 * Buckets the minutes from `fromMs` to `toMs` into steps of whole minutes, so that there are at
 * most `maxPoints` of them. Requests become a rate per second over the step (a minute without a
 * row had none); latency is the step's worst minute; CPU its average; memory its highest reading.
 */
export function bucketize(series: MetricsPoint[], fromMs: number, toMs: number, maxPoints = MAX_POINTS): Buckets {
  const start = Math.floor(fromMs / MINUTE) * MINUTE;
  const minutes = Math.max(1, Math.ceil((toMs - start) / MINUTE));
  const stepMinutes = Math.max(1, Math.ceil(minutes / maxPoints));
  const step = stepMinutes * MINUTE;
  const count = Math.ceil(minutes / stepMinutes);
  const groups: MetricsPoint[][] = Array.from({ length: count }, () => []);
  let minutesWithData = 0;
  for (const p of series) {
    const t = Date.parse(p.at);
    if (!Number.isFinite(t) || t < start) continue;
    const i = Math.floor((t - start) / step);
    if (i >= count) continue;
    groups[i]!.push(p);
    minutesWithData++;
  }
  const seconds = stepMinutes * 60;
  const out: Buckets = {
    stepMinutes,
    x: groups.map((_, i) => (start + i * step) / 1000),
    rates: { "2xx": [], "3xx": [], "4xx": [], "5xx": [] },
    p50: [],
    p95: [],
    p99: [],
    cpu: [],
    memoryMiB: [],
    minutesWithData,
  };
  for (const g of groups) {
    for (const c of STATUS_CLASSES) out.rates[c].push(g.reduce((n, p) => n + (p.status[c] ?? 0), 0) / seconds);
    out.p50.push(maxOf(g.map((p) => p.latencyMs.p50)));
    out.p95.push(maxOf(g.map((p) => p.latencyMs.p95)));
    out.p99.push(maxOf(g.map((p) => p.latencyMs.p99)));
    const cpu = g.map((p) => p.cpuPercent).filter((v): v is number => v !== null);
    out.cpu.push(cpu.length ? cpu.reduce((a, b) => a + b, 0) / cpu.length : null);
    const mem = maxOf(g.map((p) => p.memoryBytes));
    out.memoryMiB.push(mem === null ? null : mem / 1048576);
  }
  return out;
}

/** The newest value that was measured (null: nothing in the range). */
export function latest(values: (number | null)[]): number | null {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i]!;
  return null;
}

/** How many values of these series are plotted as more than zero: what a user sees as "something happened". */
export function plottedPoints(...series: (number | null)[][]): number {
  return series.reduce((n, s) => n + s.filter((v) => v !== null && v > 0).length, 0);
}

/** "3.2", "0.05", "120": short numbers for the text summaries. */
export function formatNumber(v: number | null): string {
  if (v === null) return "no data";
  if (v === 0) return "0";
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}
