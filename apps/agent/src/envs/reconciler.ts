import type { Logger } from "@slipway/core";
import type { Environments } from "./environments.js";

/**
 * Keeps the ingress pointed at running environments' containers while the
 * agent runs: every interval, `Environments.reconcile()` re-points an
 * environment whose containers came back on new host ports (dockerd restarted
 * them under their restart policy). The agent's start does the same once
 * through adoption. One pass at a time; a failing pass is logged and the next
 * one tries again.
 */
export class Reconciler {
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private running?: Promise<void>;

  constructor(private readonly opts: { envs: Environments; log: Logger; intervalMs: number }) {}

  /** Starts the loop; an interval of 0 disables it. */
  start(): void {
    if (this.opts.intervalMs <= 0) return;
    this.stopped = false;
    this.schedule();
  }

  /** Stops the loop and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.opts.envs
        .reconcile()
        .then((slugs) => {
          if (slugs.length > 0) this.opts.log.info({ envs: slugs }, "re-pointed environments at their containers' new ports");
        })
        .catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, "reconcile pass failed"))
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.opts.intervalMs);
    this.timer.unref();
  }
}
