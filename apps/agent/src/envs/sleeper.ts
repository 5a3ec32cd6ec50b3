import type { Logger } from "@slipway/core";
import type { Ingress } from "../ingress/ingress.js";
import type { EnvironmentEntry } from "./environment-registry.js";
import type { Environments } from "./environments.js";
import { PeriodicTask } from "./periodic-task.js";

/** The longest pause between two idleness checks. */
const MAX_INTERVAL_MS = 10_000;

/** Options of the sleeper. */
export interface SleeperOptions {
  envs: Environments;
  ingress: Ingress;
  log: Logger;
  /** Fixed pause between checks; default min(10 s, shortest sleepAfter / 3). */
  intervalMs?: number;
}

/**
 * Puts idle environments to sleep: every interval, each running environment
 * with sleepAfterSeconds > 0 whose backend has no open session (in-flight
 * request, WebSocket or other tunnel) and no request for sleepAfterSeconds
 * (nor a deploy, wake or start in that time) is put to sleep. The ingress
 * errs on the busy side after a reload, so a reload never makes an
 * environment look idle. The check is repeated under the environment's lock
 * right before it sleeps.
 */
export class Sleeper {
  private readonly task: PeriodicTask;

  constructor(private readonly opts: SleeperOptions) {
    this.task = new PeriodicTask(() => this.checkOnce(), () => this.interval());
  }

  start(): void {
    this.task.start();
  }

  /** Stops the loop and waits for a check in progress. */
  stop(): Promise<void> {
    return this.task.stop();
  }

  private interval(): number {
    if (this.opts.intervalMs !== undefined) return this.opts.intervalMs;
    const shortest = Math.min(...this.opts.envs.all().filter((e) => e.sleepAfterSeconds > 0).map((e) => e.sleepAfterSeconds));
    return Number.isFinite(shortest) ? Math.max(1000, Math.min(MAX_INTERVAL_MS, (shortest * 1000) / 3)) : MAX_INTERVAL_MS;
  }

  /** One pass over the environments; returns the slugs put to sleep. Never throws. */
  async checkOnce(): Promise<string[]> {
    const slept: string[] = [];
    for (const e of this.opts.envs.all()) {
      if (this.task.stopped) break;
      if (e.state !== "running" || e.sleepAfterSeconds <= 0) continue;
      try {
        if ((await this.idleSeconds(e)) < e.sleepAfterSeconds) continue;
        const asleep = await this.opts.envs.sleep(e.slug, async () => {
          const current = this.opts.envs.get(e.slug);
          return current !== undefined && current.sleepAfterSeconds > 0 && (await this.idleSeconds(current)) >= current.sleepAfterSeconds;
        });
        if (asleep) slept.push(e.slug);
      } catch (err) {
        this.opts.log.warn({ env: e.slug, err: (err as Error).message }, "could not put the environment to sleep");
      }
    }
    return slept;
  }

  /** Seconds without activity; 0 while a session is open or nothing is known. */
  private async idleSeconds(e: EnvironmentEntry): Promise<number> {
    const stats = await this.opts.ingress.stats(e.slug);
    if (!stats || stats.sessions > 0 || stats.secondsSinceLastRequest === null) return 0;
    const active = this.opts.envs.activeSinceMs(e.slug);
    return active === undefined ? stats.secondsSinceLastRequest : Math.min(stats.secondsSinceLastRequest, active / 1000);
  }
}
