/**
 * Messages between the fleet benchmark (fleet.bench.ts) and its load
 * generator processes (fleet-worker.ts), over the child-process IPC channel.
 *
 * Times are `monoMs()`: CLOCK_MONOTONIC in milliseconds (process.hrtime), the
 * same clock in every process of this machine, so a time taken in a worker can
 * be subtracted from one taken in the parent.
 */

export const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** A full GC of this process (V8's gc() made reachable at run time); returns its duration in ms. */
export async function collectGarbage(): Promise<number> {
  const v8 = await import("node:v8");
  const vm = await import("node:vm");
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  const t = monoMs();
  gc();
  return monoMs() - t;
}

export interface AgentSeed {
  /** Global index of the simulated agent; spreads its heartbeat phase. */
  idx: number;
  joinToken: string;
}

export type ToWorker =
  | { t: "add"; agents: AgentSeed[]; concurrency: number }
  | { t: "stats" }
  /** Stop starting registrations (the time budget ran out); the pending `add` answers with what was done. */
  | { t: "halt" }
  /** A full garbage collection now, so that none of the generator's own major GCs falls into the measurement window. */
  | { t: "gc" }
  /** The age of the oldest unanswered heartbeat (is the control plane keeping up?). */
  | { t: "probe" }
  | { t: "stop" };

/** Counters since the previous `stats` request (they are reset when read). */
export interface WorkerStats {
  agents: number;
  hbSent: number;
  hbAnswered: number;
  /** Heartbeat round trips (ms) answered in the period. */
  hbRtt: number[];
  /** Stream errors (non-OK status, reset) in the period, by message. */
  hbErrors: Record<string, number>;
  /** Answers that came back later than one heartbeat interval. */
  hbLate: number;
  /** Heartbeats still unanswered after one heartbeat interval, at the time of reading. */
  hbOverdue: number;
  /** Job messages received, events reported, report failures. */
  jobsReceived: number;
  jobsReported: number;
  jobErrors: Record<string, number>;
  /** Event loop delay of the worker over the period (ms). */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  rssBytes: number;
  /** Consumers' status notices (heartbeats missed, reconnects…) by type. */
  natsNotices: Record<string, number>;
}

export type FromWorker =
  | { t: "ready" }
  | { t: "added"; ok: number; failed: number; errors: Record<string, number>; registerMs: number[]; consumeMs: number[] }
  | { t: "rx"; deploymentId: string; jobId: string; hostId: string; at: number; redelivered: boolean }
  | { t: "done"; deploymentId: string; at: number; ok: boolean; error?: string }
  | { t: "stats"; stats: WorkerStats }
  | { t: "gc"; ms: number }
  | { t: "probe"; oldestPendingMs: number }
  | { t: "stopped" };
