import type { Logger } from "@slipway/core";

/** Requests in 1,000 logged when a backend is not thinned. */
export const KEEP_ALL = 1000;

export interface SamplingTargets {
  /** Log lines per second wanted from each backend: enough latencies for its percentiles (default 100, i.e. 1,000 per 10-second interval). */
  perBackend: number;
  /** Log lines per second from all backends together, at most (default 2,000): what the agent spends receiving them stays small at any rate. */
  total: number;
}

export const DEFAULT_SAMPLING: SamplingTargets = { perBackend: 100, total: 2000 };

/**
 * How many requests in 1,000 to log per backend, from each backend's request rate (per second):
 * every request while a backend is quiet, `perBackend` lines a second once it is busy, and all
 * backends scaled down together when they would exceed `total`. At least 1 in 1,000 for a
 * backend with traffic, so its percentiles never go empty.
 */
export function sampleKeeps(rates: ReadonlyMap<string, number>, t: SamplingTargets = DEFAULT_SAMPLING): Map<string, number> {
  const keep = new Map<string, number>();
  let lines = 0;
  for (const [backend, rate] of rates) {
    const k = rate <= 0 ? KEEP_ALL : Math.max(1, Math.min(KEEP_ALL, Math.floor((KEEP_ALL * t.perBackend) / rate)));
    keep.set(backend, k);
    lines += (rate * k) / KEEP_ALL;
  }
  if (lines > t.total) {
    const scale = t.total / lines;
    for (const [backend, k] of keep) keep.set(backend, Math.max(1, Math.floor(k * scale)));
  }
  return keep;
}

/** A change worth making: a quarter or more away, or back to every request. */
function differs(now: number, next: number): boolean {
  if (now === next) return false;
  if (next === KEEP_ALL || now === KEEP_ALL) return true;
  return Math.abs(next - now) / now >= 0.25;
}

/**
 * Keeps the proxy's request log a bounded latency sample: fed each backend's request rate (exact,
 * from HAProxy's counters, every second), it follows a rising rate at once and a falling one by
 * half of each reading, decides
 * the share logged per backend (sampleKeeps) and asks the proxy to apply the changes worth making.
 * One change at a time; a failed one is logged and the next reading tries again.
 */
export class LogSampler {
  private readonly rates = new Map<string, number>();
  /** What the proxy applies now (absent = KEEP_ALL). */
  private readonly applied = new Map<string, number>();
  private applying?: Promise<void>;

  constructor(
    private readonly opts: {
      apply: (changes: Map<string, number>) => Promise<void>;
      targets?: SamplingTargets;
      log: Logger;
    },
  ) {}

  /** The share of each backend's requests logged now, in 1,000 (thinned backends only). */
  get current(): ReadonlyMap<string, number> {
    return this.applied;
  }

  /** One reading of every backend's requests per second (backends without requests may be left out). */
  onRates(rates: ReadonlyMap<string, number>): void {
    for (const backend of new Set([...this.rates.keys(), ...rates.keys()])) {
      // A rise counts at once (thinning late logs a burst whole), a fall by half (a pause in traffic does not).
      const before = this.rates.get(backend) ?? 0;
      const now = rates.get(backend) ?? 0;
      const smoothed = now >= before ? now : (before + now) / 2;
      if (smoothed < 0.01) this.rates.delete(backend);
      else this.rates.set(backend, smoothed);
    }
    if (this.applying) return;
    const want = sampleKeeps(this.rates, this.opts.targets);
    const changes = new Map<string, number>();
    for (const [backend, k] of want) if (differs(this.applied.get(backend) ?? KEEP_ALL, k)) changes.set(backend, k);
    for (const backend of this.applied.keys()) if (!want.has(backend)) changes.set(backend, KEEP_ALL);
    if (changes.size === 0) return;
    this.applying = this.opts
      .apply(changes)
      .then(
        () => {
          for (const [backend, k] of changes) {
            if (k >= KEEP_ALL) this.applied.delete(backend);
            else this.applied.set(backend, k);
          }
          this.opts.log.debug({ changes: Object.fromEntries(changes) }, "request log sample changed (requests in 1000 logged)");
        },
        (err: unknown) => this.opts.log.warn({ err: (err as Error).message }, "could not change the request log sample; trying again at the next reading"),
      )
      .finally(() => (this.applying = undefined));
  }
}
