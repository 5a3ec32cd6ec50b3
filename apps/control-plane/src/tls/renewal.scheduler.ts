import type { Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import { listDue } from "../repositories/certificates.repository.js";
import type { CertificateIssuer, IssueOutcome } from "./issuer.js";

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
    private readonly opts: { clock: () => Date; batch?: number },
  ) {}

  /** One pass: returns the outcome per set of names it tried (empty when nothing was due). */
  async tick(): Promise<Array<{ hostnames: string[]; outcome: IssueOutcome }>> {
    if (this.running) return [];
    this.running = true;
    try {
      const due = await listDue(this.db, this.opts.clock(), this.opts.batch ?? 20);
      const results: Array<{ hostnames: string[]; outcome: IssueOutcome }> = [];
      for (const row of due) {
        const { outcome } = await this.issuer.issue(row.hostnames);
        results.push({ hostnames: row.hostnames, outcome });
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
