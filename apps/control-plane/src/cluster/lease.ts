import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import { acquireLease, releaseLease, renewLease, type LeaseTerm } from "../repositories/leases.repository.js";

/**
 * The lease table as a Lease uses it (leases.repository.ts over a Db; a fake in unit tests).
 * Each call is one statement judged by the database's clock; all are safe to call concurrently
 * from any number of replicas.
 */
export interface LeaseStore {
  /** A new term when the lease is free or already this holder's; undefined while another holds it. */
  acquire(name: string, holder: string, ttlMs: number): Promise<LeaseTerm | undefined>;
  /** The term's new expiry, or undefined when the term is over (expired, released or taken). */
  renew(name: string, holder: string, token: number, ttlMs: number): Promise<Date | undefined>;
  /** Frees the term at once; false when it was no longer running. */
  release(name: string, holder: string, token: number): Promise<boolean>;
}

export function databaseLeaseStore(db: Db): LeaseStore {
  return {
    acquire: (name, holder, ttlMs) => acquireLease(db, name, holder, ttlMs),
    renew: (name, holder, token, ttlMs) => renewLease(db, name, holder, token, ttlMs),
    release: (name, holder, token) => releaseLease(db, name, holder, token),
  };
}

/**
 * Work that must run on one replica at a time. `start()` is called when the lease is acquired,
 * `stop()` as soon as it is lost or the replica stops; they alternate (never two starts in a row).
 * `stop()` must end all further runs at once; a run already in progress may finish, and the
 * promise it may return says when (a graceful stop waits for it before releasing the lease).
 */
export interface LeasedWork {
  readonly name: string;
  start(): void;
  stop(): void | Promise<void>;
}

/**
 * `run` every `intervalMs` while the lease is held, and once at acquisition with `atStart`. A run
 * still going when the next is due is not started twice (a slow pass never overlaps itself). A
 * failed run is the caller's to log.
 */
export function every(name: string, intervalMs: number, run: () => Promise<unknown> | void, opts: { atStart?: boolean } = {}): LeasedWork {
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> | undefined;
  const once = () => {
    current ??= Promise.resolve()
      .then(run)
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => (current = undefined));
  };
  return {
    name,
    start() {
      timer ??= setInterval(once, intervalMs);
      timer.unref();
      if (opts.atStart) once();
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
      return current;
    },
  };
}

export interface LeaseOptions {
  /** The lease's row in the table, e.g. "scheduler". */
  name: string;
  /** This replica, as logs and the table show it (replicaName()). */
  holder: string;
  /** How long a term lasts without renewal (database clock): the longest a dead holder keeps it. */
  ttlMs: number;
  /** How often the holder renews (about ttlMs / 3, so two renewals may fail before it is lost). */
  renewEveryMs: number;
  /** How often a replica without the lease tries to take it. */
  tryEveryMs: number;
  log: Logger;
  /** A monotonic clock in ms (tests). */
  now?: () => number;
}

/**
 * A name for this replica: machine, pid and a random part. Each process is a new holder, so a
 * replica restarted after a crash waits for its old term to run out like any other (two live
 * processes can never share a name and both believe they hold the lease).
 */
export function replicaName(): string {
  return `${hostname()}/${process.pid}/${randomBytes(3).toString("hex")}`;
}

/**
 * One lease in PostgreSQL and the work that runs while this replica holds it. `start()` tries to
 * take it at once and then every `tryEveryMs`; the holder renews every `renewEveryMs`. The work
 * stops at once when a renewal says the term is over, or when no renewal succeeded before the term
 * could have ended by the database's clock (a term counted from when its request was sent ends no
 * later locally than in the database), so two replicas never run the work at the same time as long
 * as the clocks tick at the same rate. `stop()` stops the work and releases the lease, so another
 * replica takes it at its next try; a crashed holder's term simply runs out (ttlMs).
 */
export class Lease {
  private readonly works: LeasedWork[] = [];
  private term: { token: number; validUntil: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private inflight: Promise<void> | undefined;
  private running = false;
  private failures = 0;

  constructor(
    private readonly store: LeaseStore,
    private readonly opts: LeaseOptions,
  ) {}

  /** Work to run while the lease is held (add before start()). */
  add(work: LeasedWork): this {
    this.works.push(work);
    return this;
  }

  get held(): boolean {
    return this.term !== undefined;
  }

  /** The fencing token of the current term, or undefined when not held. */
  get token(): number | undefined {
    return this.term?.token;
  }

  get holder(): string {
    return this.opts.holder;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops the work, then releases the lease (so another replica need not wait for it to expire). Idempotent. */
  async stop(): Promise<void> {
    this.halt();
    await this.inflight;
    const term = this.term;
    if (!term) return;
    // Runs still going finish first (at most one time to live), so the next holder never overlaps them.
    const finishing = this.lose("stopping");
    await Promise.race([Promise.all(finishing), new Promise((r) => setTimeout(r, this.opts.ttlMs).unref())]);
    await this.store.release(this.opts.name, this.opts.holder, term.token).then(
      (released) => released && this.opts.log.info({ lease: this.opts.name, holder: this.opts.holder }, "lease released"),
      (err: unknown) => this.opts.log.warn({ lease: this.opts.name, err: (err as Error).message }, "could not release the lease; it expires by itself"),
    );
  }

  /**
   * Tests: behave like a killed process (no more renewals, no release). The work is stopped too, as
   * it would be with the process; the database only sees the renewals end.
   */
  abandon(): void {
    this.halt();
    if (this.term) this.lose("abandoned");
  }

  private halt(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.inflight = this.step().finally(() => {
        this.inflight = undefined;
        this.schedule(this.term ? this.opts.renewEveryMs : this.opts.tryEveryMs);
      });
    }, ms);
    this.timer.unref();
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : performance.now();
  }

  private async step(): Promise<void> {
    const { name, holder, ttlMs, log } = this.opts;
    const sentAt = this.now();
    try {
      if (this.term) {
        const token = this.term.token;
        const expiresAt = await this.store.renew(name, holder, token, ttlMs);
        this.failures = 0;
        // A term lost meanwhile (the watchdog fired) is not brought back by a late answer: acquire again.
        if (this.term?.token !== token) return;
        if (expiresAt) this.extend(sentAt);
        else this.lose("renewal refused: the term is over");
        return;
      }
      const term = await this.store.acquire(name, holder, ttlMs);
      this.failures = 0;
      if (!term || !this.running) {
        // Taken after stop() began: give it back at once.
        if (term) await this.store.release(name, holder, term.token).catch(() => undefined);
        return;
      }
      this.term = { token: term.token, validUntil: 0 };
      this.extend(sentAt);
      log.info({ lease: name, holder, term: term.token, work: this.works.map((w) => w.name) }, "lease acquired: this replica runs the singletons");
      for (const w of this.works) this.call(w, "start");
    } catch (err) {
      // The database unreachable: the term (if any) lasts until the watchdog says otherwise.
      this.failures++;
      const level = this.failures === 1 ? "warn" : "debug";
      log[level]({ lease: name, err: (err as Error).message, held: this.held }, this.held ? "lease renewal failed; retrying" : "could not try to take the lease; retrying");
    }
  }

  /** The term is good until ttlMs after the request that started or renewed it was sent. */
  private extend(sentAt: number): void {
    if (!this.term) return;
    this.term.validUntil = sentAt + this.opts.ttlMs;
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.lose("no renewal succeeded within the lease's time to live"), Math.max(0, this.term.validUntil - this.now()));
    this.watchdog.unref();
  }

  /** Stops the work at once; resolves what each work's stop() returned (runs still finishing). */
  private lose(reason: string): Array<Promise<void>> {
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
    const term = this.term;
    if (!term) return [];
    this.term = undefined;
    const finishing = [...this.works].reverse().map((w) => this.call(w, "stop"));
    const fields = { lease: this.opts.name, holder: this.opts.holder, term: term.token, reason };
    if (reason === "stopping") this.opts.log.info(fields, "lease given up: singletons stopped");
    else this.opts.log.warn(fields, "lease lost: singletons stopped on this replica");
    return finishing;
  }

  private call(w: LeasedWork, what: "start" | "stop"): Promise<void> {
    try {
      return Promise.resolve(w[what]()).catch((err: unknown) => this.opts.log.warn({ lease: this.opts.name, work: w.name, err }, "a singleton's last run failed"));
    } catch (err) {
      this.opts.log.error({ lease: this.opts.name, work: w.name, err }, `singleton could not ${what}`);
      return Promise.resolve();
    }
  }
}
