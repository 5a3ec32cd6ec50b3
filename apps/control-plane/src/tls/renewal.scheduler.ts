import type { Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import { ensureSingleNameCertificates, listDue, listDueAmong, type CertificateRow } from "../repositories/certificates.repository.js";
import type { CertificateIssuer, CertificateView, IssueOutcome } from "./issuer.js";
import { invalidHostname, normalizeHostnames } from "./renewal-policy.js";

export interface SchedulerOptions {
  clock: () => Date;
  batch?: number;
  /**
   * The names to hold a certificate for (the custom domains), one certificate per name: each tick
   * creates the missing rows (due at once) and orders only among these, so a removed domain is
   * neither issued nor renewed again. Absent = every stored row (the issuer's tests).
   */
  names?: () => Promise<string[]>;
  /** Called after each attempt with the row as it was before and what the issuer did (activity, routes jobs). */
  onResult?: (result: { before: CertificateRow; outcome: IssueOutcome; certificate: CertificateView }) => Promise<void>;
}

/**
 * Orders what is due (new, at a third of the lifetime left, or at the end of a failure's
 * backoff), one order at a time. `tick()` is what the interval calls; tests call it directly.
 * Overlapping ticks do nothing (the previous one is still ordering).
 */
export class RenewalScheduler {
  private running = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly db: Db,
    private readonly issuer: CertificateIssuer,
    private readonly log: Logger,
    private readonly opts: SchedulerOptions,
  ) {}

  /** One pass: returns the outcome per set of names it tried (empty when nothing was due). */
  async tick(): Promise<Array<{ hostnames: string[]; outcome: IssueOutcome }>> {
    if (this.running) return [];
    this.running = true;
    try {
      const batch = this.opts.batch ?? 20;
      let due: CertificateRow[];
      if (this.opts.names) {
        // A name no CA issues for (a domain added before a stricter check) is left out, not retried.
        const names = normalizeHostnames(await this.opts.names()).filter((n) => invalidHostname([n]) === undefined);
        await ensureSingleNameCertificates(this.db, names, this.opts.clock());
        due = await listDueAmong(this.db, names, this.opts.clock(), batch);
      } else {
        due = await listDue(this.db, this.opts.clock(), batch);
      }
      const results: Array<{ hostnames: string[]; outcome: IssueOutcome }> = [];
      for (const row of due) {
        const { outcome, certificate } = await this.issuer.issue(row.hostnames);
        results.push({ hostnames: row.hostnames, outcome });
        if (this.opts.onResult) await this.opts.onResult({ before: row, outcome, certificate }).catch((err: unknown) => this.log.error({ err, hostnames: row.hostnames }, "after a certificate attempt: recording it failed"));
      }
      return results;
    } finally {
      this.running = false;
    }
  }

  /** Ticks every `intervalMs` (production: a minute) until stop(); a failed tick is logged. */
  start(intervalMs: number): void {
    this.timer ??= setInterval(() => {
      this.tick().catch((err: unknown) => this.log.error({ err }, "certificate renewal pass failed"));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
