import type { Logger } from "@slipway/core";
import type { BackendCounters } from "../ingress/haproxy-runtime.js";

export type { BackendCounters } from "../ingress/haproxy-runtime.js";

/** What the proxy's workers count. */
export interface CounterSource {
  /** The current worker's pid and counters by backend, in one reading (cheap: read every period). */
  current(): Promise<{ pid: number; counters: Map<string, BackendCounters> }>;
  /** Pids of workers a reload replaced that still finish their connections (asked only around reloads). */
  oldWorkers(): Promise<number[]>;
  /** An old worker's counters by backend; undefined when it has exited. */
  oldCounters(pid: number): Promise<Map<string, BackendCounters> | undefined>;
  /** No more reads: let go of whatever the source holds. */
  close?(): void;
  /** Calls `listener` after each reload, when an old worker has just appeared. */
  onReload?(listener: () => void): void;
}

export interface TrafficCountersOptions {
  source: CounterSource;
  log: Logger;
  /** How often the workers are read (default 1 s); the rates handed to `onRates` are per this period. */
  pollMs?: number;
  /** How often old workers are read while there are any (default 100 ms): what they serve after the last read is not counted. */
  oldWorkerPollMs?: number;
  /** Each backend's requests per second over the last poll (only backends that had requests). */
  onRates?: (rates: Map<string, number>) => void;
}

const zero = (): BackendCounters => ({ requests: 0, status: [0, 0, 0, 0, 0] });

function addInto(into: Map<string, BackendCounters>, backend: string, d: BackendCounters): void {
  let acc = into.get(backend);
  if (!acc) into.set(backend, (acc = zero()));
  acc.requests += d.requests;
  for (let i = 0; i < 5; i++) acc.status[i]! += d.status[i]!;
}

/**
 * Exact request counts per backend from HAProxy's own counters (`show stat`),
 * not from a per-request log: the proxy counts for free, where a log line per
 * request cost HAProxy 15–32 % more CPU and the agent as much again to
 * receive it (issue 10). Each worker counts from its start, so counters are
 * kept per worker pid: a new worker after a reload starts from zero, an old
 * one is read every `oldWorkerPollMs` while it finishes its connections (each
 * serves at most one more request, then HAProxy closes it), and a worker that
 * disappeared is forgotten. The first read after the agent starts only sets the
 * baseline: what the workers counted before belongs to the agent that ran then.
 */
export class TrafficCounters {
  /** The last reading of each worker we know. */
  private readonly last = new Map<number, Map<string, BackendCounters>>();
  /** Counted since the last take(). */
  private pending = new Map<string, BackendCounters>();
  private baselined = false;
  private timer?: NodeJS.Timeout;
  private oldTimer?: NodeJS.Timeout;
  private reading?: Promise<void>;
  private lastPollAt = 0;
  private stopped = false;
  /** The current worker at the last read, and whether old workers may exist (then the master is asked). */
  private lastCurrent?: number;
  private oldMayExist = true;

  constructor(private readonly opts: TrafficCountersOptions) {}

  /** Reads the baseline and starts polling. */
  async start(): Promise<void> {
    // Right after a reload the old worker is read (and let go) without waiting for the next period.
    this.opts.source.onReload?.(() => {
      this.oldMayExist = true;
      if (!this.stopped) void this.poll();
    });
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.opts.pollMs ?? 1000);
    this.timer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.oldTimer);
    this.opts.source.close?.();
  }

  /** What the workers counted since the previous take(), by backend (read now). */
  async take(): Promise<Map<string, BackendCounters>> {
    await this.poll();
    const out = this.pending;
    this.pending = new Map();
    return out;
  }

  /** One reading of every worker; concurrent calls share it. */
  poll(): Promise<void> {
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    return this.reading;
  }

  private async read(): Promise<void> {
    let current: { pid: number; counters: Map<string, BackendCounters> };
    let old: number[] = [];
    try {
      current = await this.opts.source.current();
      // A new current worker means a reload (by this agent or not): the one before may still run.
      if (current.pid !== this.lastCurrent) this.oldMayExist = true;
      if (this.oldMayExist) old = (await this.opts.source.oldWorkers()).filter((pid) => pid !== current.pid);
    } catch (err) {
      this.opts.log.debug({ err: (err as Error).message }, "cannot read the proxy's counters; counting at the next read");
      return;
    }
    this.lastCurrent = current.pid;
    this.oldMayExist = old.length > 0;
    const now = performance.now();
    const seconds = this.lastPollAt ? (now - this.lastPollAt) / 1000 : 0;
    this.lastPollAt = now;
    const interval = new Map<string, BackendCounters>();
    const alive = new Set<number>();
    for (const pid of [current.pid, ...old]) {
      let counters: Map<string, BackendCounters> | undefined;
      try {
        counters = pid === current.pid ? current.counters : await this.opts.source.oldCounters(pid);
      } catch (err) {
        this.opts.log.debug({ pid, err: (err as Error).message }, "cannot read a worker's counters; counting at the next read");
        alive.add(pid);
        this.oldMayExist = true;
        continue;
      }
      if (!counters) continue;
      alive.add(pid);
      const before = this.last.get(pid);
      // A worker first seen after the baseline started after it: everything it counted is new.
      if (before || this.baselined) {
        for (const [backend, c] of counters) {
          const b = before?.get(backend);
          // Counters only grow within a worker; lower means a reset (a new backend object): all of it is new.
          const reset = !b || c.requests < b.requests;
          const d: BackendCounters = reset ? c : { requests: c.requests - b.requests, status: c.status.map((v, i) => Math.max(0, v - b.status[i]!)) as BackendCounters["status"] };
          if (d.requests > 0 || d.status.some((v) => v > 0)) addInto(interval, backend, d);
        }
      }
      this.last.set(pid, counters);
    }
    for (const pid of [...this.last.keys()]) if (!alive.has(pid)) this.last.delete(pid);
    this.baselined = true;
    for (const [backend, d] of interval) addInto(this.pending, backend, d);
    if (this.opts.onRates && seconds > 0) this.opts.onRates(new Map([...interval].map(([b, d]) => [b, d.requests / seconds])));
    // Old workers serve their last requests within moments of a reload: follow them closely.
    clearTimeout(this.oldTimer);
    if (old.some((pid) => alive.has(pid)) && !this.stopped) {
      this.oldTimer = setTimeout(() => void this.poll(), this.opts.oldWorkerPollMs ?? 100);
      this.oldTimer.unref?.();
    }
  }
}
