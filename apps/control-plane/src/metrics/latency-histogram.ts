/**
 * A small fixed latency histogram per environment, host and minute, and the
 * percentiles read back from it.
 *
 * Why a histogram: agents send p50/p95/p99 per 10 s interval, and percentiles
 * cannot be averaged — the p95 of a minute is not the mean of six p95s, and a
 * single max of p99 lets one slow request own the whole minute. Instead each
 * interval's percentiles are turned back into a distribution over fixed
 * buckets: 50 % of its requests in p50's bucket, 45 % spread evenly over the
 * buckets above it up to p95's, 4 % likewise up to p99's, and the last 1 % in
 * p99's (what lies beyond p99 is not sent). Evenly per bucket is log-uniform
 * in time, the usual shape of latencies between two percentiles. Buckets add
 * up across intervals and hosts, so a minute's (or an hour's) percentiles
 * come from one merged distribution, weighted by requests. For a single
 * interval this returns the agent's own values (exactly below 20 ms, within
 * ±7.5 % above); for several it is the percentile of the mixture.
 *
 * Buckets: 1 ms wide from 0 to 20 ms (integral ms, the common case on a LAN,
 * stays exact), then 15 % wider each up to about 2 minutes, then one overflow
 * bucket: 84 buckets. Arrays are stored without their trailing zeros.
 */

const LINEAR_UNTIL_MS = 20;
const GROWTH = 1.15;
const LAST_LOWER_MS = 120_000;

/** Lower bound of every bucket, ascending; bucket i is [LOWER[i], LOWER[i+1]), the last is open. */
export const BUCKET_LOWER_MS: readonly number[] = (() => {
  const out: number[] = [];
  for (let ms = 0; ms < LINEAR_UNTIL_MS; ms++) out.push(ms);
  for (let ms = LINEAR_UNTIL_MS; ms < LAST_LOWER_MS; ms *= GROWTH) out.push(ms);
  out.push(LAST_LOWER_MS);
  return out;
})();

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
}

/** Index of the bucket holding `ms` (negative values count as 0). */
export function bucketIndex(ms: number): number {
  if (!(ms > 0)) return 0;
  let lo = 0;
  let hi = BUCKET_LOWER_MS.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (BUCKET_LOWER_MS[mid]! <= ms) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The value reported for a bucket: its lower bound where 1 ms wide (exact for whole ms), else the geometric middle. */
export function bucketValue(i: number): number {
  const lower = BUCKET_LOWER_MS[i]!;
  const upper = BUCKET_LOWER_MS[i + 1];
  if (upper === undefined || upper - lower <= 1) return lower;
  return Math.sqrt(lower * upper);
}

/** Adds one interval's percentiles of `requests` requests into `hist` (mutated, grown as needed). */
export function addInterval(hist: number[], requests: number, p: Percentiles): void {
  if (!(requests > 0)) return;
  // Out-of-order values from a misbehaving agent must not make p95 < p50.
  const [i50, i95, i99] = [p.p50, p.p95, p.p99].map(bucketIndex).sort((a, b) => a - b) as [number, number, number];
  while (hist.length <= i99) hist.push(0);
  hist[i50]! += requests * 0.5;
  spread(hist, i50, i95, requests * 0.45);
  spread(hist, i95, i99, requests * 0.04);
  hist[i99]! += requests * 0.01;
}

/** `mass` evenly over buckets from+1..to, or into `to` when they are the same: the lower percentile's own bucket already holds its share. */
function spread(hist: number[], from: number, to: number, mass: number): void {
  if (to <= from) {
    hist[to]! += mass;
    return;
  }
  const each = mass / (to - from);
  for (let i = from + 1; i <= to; i++) hist[i]! += each;
}

/** Element-wise sum into `target` (mutated, grown as needed). */
export function mergeInto(target: number[], other: readonly number[]): void {
  for (let i = 0; i < other.length; i++) {
    while (target.length <= i) target.push(0);
    target[i]! += other[i] ?? 0;
  }
}

/** Without trailing zeros, as stored. */
export function trimmed(hist: readonly number[]): number[] {
  let end = hist.length;
  while (end > 0 && !(hist[end - 1]! > 0)) end--;
  return hist.slice(0, end);
}

/** The q-quantile (0 < q ≤ 1) of the histogram: the value of the first bucket whose cumulative weight reaches q; null when empty. */
export function quantile(hist: readonly number[], q: number): number | null {
  const total = hist.reduce((a, b) => a + (b > 0 ? b : 0), 0);
  if (total <= 0) return null;
  // Relative slack: masses such as 0.45·n do not add up exactly in floating point.
  const rank = q * total * (1 - 1e-9);
  let cum = 0;
  for (let i = 0; i < hist.length; i++) {
    cum += hist[i]! > 0 ? hist[i]! : 0;
    if (cum >= rank) return bucketValue(i);
  }
  return bucketValue(hist.length - 1);
}

/** p50, p95 and p99 of a histogram; nulls when it is empty. */
export function percentilesOf(hist: readonly number[]): { p50: number | null; p95: number | null; p99: number | null } {
  return { p50: quantile(hist, 0.5), p95: quantile(hist, 0.95), p99: quantile(hist, 0.99) };
}
