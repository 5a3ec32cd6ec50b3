import type { Logger } from "@slipway/core";
import type { Environments } from "./environments.js";
import { PeriodicTask } from "./periodic-task.js";

/**
 * Keeps the ingress pointed at running environments' containers while the
 * agent runs: every interval, `Environments.reconcile()` re-points an
 * environment whose containers came back on new host ports (dockerd restarted
 * them under their restart policy). The agent's start does the same once
 * through adoption. One pass at a time; a failing pass is logged and the next
 * one tries again.
 */
export class Reconciler {
  private readonly task: PeriodicTask;

  constructor(private readonly opts: { envs: Environments; log: Logger; intervalMs: number }) {
    this.task = new PeriodicTask(() => this.pass(), () => opts.intervalMs);
  }

  /** Starts the loop; an interval of 0 disables it. */
  start(): void {
    if (this.opts.intervalMs > 0) this.task.start();
  }

  /** Stops the loop and waits for a pass in progress. */
  stop(): Promise<void> {
    return this.task.stop();
  }

  private async pass(): Promise<void> {
    try {
      const slugs = await this.opts.envs.reconcile();
      if (slugs.length > 0) this.opts.log.info({ envs: slugs }, "re-pointed environments at their containers' new ports");
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, "reconcile pass failed");
    }
  }
}
