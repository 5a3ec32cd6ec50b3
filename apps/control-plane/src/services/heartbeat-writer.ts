import { UnauthenticatedError, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as hosts from "../repositories/hosts.repository.js";
import { cancelRequestedJobs } from "../repositories/deployments.repository.js";
import type { Lifecycle } from "./lifecycle.service.js";

/** One heartbeat of an agent, as the host service receives it. */
export interface HeartbeatInput {
  ingressAddress?: string;
  /** What the agent observes of the environments it serves; it owns these facts. */
  environments?: Array<{ environmentId: string; state: string }>;
  version: string;
  capacity: { cpus: number; memoryBytes: number; diskBytes: number };
  load: { cpu: number; memoryUsedBytes: number; diskUsedBytes: number; diskFreeBytes?: number; containers: number };
}

interface Pending {
  hostId: string;
  beat: HeartbeatInput;
  at: Date;
  resolve: (answer: { cancelRequested: string[] }) => void;
  reject: (err: Error) => void;
}

/** Beats per flush; the rest wait for the next one. */
const MAX_BATCH = 2_000;

/**
 * Group commit for heartbeats. A fleet of 5,000 agents beating every 5 s is
 * 1,000 beats a second; written one by one that is 1,000 UPDATEs, 1,000
 * cancellation queries and 1,000 commits a second, and the database's
 * connection pool (shared with deployments) queues behind them. Here beats
 * wait at most `flushMs` and are then written together in one transaction:
 * one UPDATE of the hosts (which also tells revoked hosts apart), one UPDATE
 * of the environment states the agents observed, and one query for the jobs
 * whose cancellation was requested. One flush runs at a time; beats arriving
 * meanwhile form the next batch, so the batch grows with the load and an idle
 * platform answers a beat in about `flushMs`.
 */
export class HeartbeatWriter {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastFlushStart = 0;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly flushMs: number,
    private readonly lifecycle: Lifecycle,
  ) {}

  submit(hostId: string, beat: HeartbeatInput): Promise<{ cancelRequested: string[] }> {
    return new Promise((resolve, reject) => {
      this.queue.push({ hostId, beat, at: new Date(), resolve, reject });
      this.schedule();
    });
  }

  /** Flushes until nothing is buffered. */
  async drain(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.running || this.queue.length > 0) {
      if (this.running) await this.running;
      else await this.flush();
    }
  }

  private schedule(): void {
    if (this.timer || this.running || this.queue.length === 0) return;
    const wait = Math.max(0, this.lastFlushStart + this.flushMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, wait);
    this.timer.unref();
  }

  private flush(): Promise<void> {
    const batch = this.queue.splice(0, MAX_BATCH);
    this.lastFlushStart = Date.now();
    this.running = this.write(batch).finally(() => {
      this.running = undefined;
      this.schedule();
    });
    return this.running;
  }

  private async write(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return;
    const started = Date.now();
    let live: Set<string>;
    let cancels: Map<string, string[]>;
    try {
      ({ live, cancels } = await this.db.transaction().execute(async (trx) => {
        const live = await hosts.recordHeartbeats(
          trx,
          batch.map((p) => {
            const { environments: _observed, ...rest } = p.beat;
            return { hostId: p.hostId, at: p.at, ...rest };
          }),
        );
        // An agent speaks only for environments placed on it (checked in the statement); a revoked one not at all.
        const observed = batch.flatMap((p) =>
          live.has(p.hostId) ? (p.beat.environments ?? []).filter((o) => o.state === "running" || o.state === "sleeping" || o.state === "stopped").map((o) => ({ hostId: p.hostId, ...o })) : [],
        );
        if (observed.length > 0) await this.lifecycle.observeMany(trx, observed);
        return { live, cancels: await cancelRequestedJobs(trx, [...live]) };
      }));
    } catch (err) {
      this.log.warn({ beats: batch.length, err: (err as Error).message }, "could not record heartbeats");
      for (const p of batch) p.reject(err as Error);
      return;
    }
    for (const p of batch) {
      // Revoking a host cuts it off at once: its open stream ends at the next beat.
      if (!live.has(p.hostId)) p.reject(new UnauthenticatedError("this host was revoked"));
      else p.resolve({ cancelRequested: cancels.get(p.hostId) ?? [] });
    }
    const ms = Date.now() - started;
    if (ms > 1_000) this.log.warn({ beats: batch.length, ms }, "recording heartbeats was slow");
  }
}
