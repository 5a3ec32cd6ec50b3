import { JobMessage } from "@slipway/proto";
import { formatLabels, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as deployments from "../repositories/deployments.repository.js";
import * as apps from "../repositories/apps.repository.js";
import type { PlacementService } from "../services/placement.service.js";
import type { JobBus } from "./job-bus.js";
import type { Lifecycle } from "../services/lifecycle.service.js";

/**
 * Moves jobs from the outbox table to JetStream. Runs every interval and when
 * poked; a failed publish stays in the outbox and is retried, so a NATS outage
 * delays jobs and never loses one. Several control planes may run this at
 * once: the job id is the message id, JetStream stores a job once.
 */
export class OutboxPublisher {
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly lifecycle: Lifecycle,
    private readonly bus: JobBus,
    private readonly placement: PlacementService,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.poke(), this.intervalMs);
    this.poke();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    while (this.running) await new Promise((r) => setTimeout(r, 20));
  }

  /** Asks for a run now; runs are never concurrent. */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.runOnce()
      .catch((err: unknown) => this.log.warn({ err }, "outbox run failed"))
      .finally(() => {
        this.running = false;
        if (this.again && !this.stopped) {
          this.again = false;
          this.poke();
        }
      });
  }

  async runOnce(): Promise<number> {
    const jobs = await deployments.unpublishedJobs(this.db, 100);
    let published = 0;
    for (const job of jobs) {
      if (this.stopped) break;
      let hostId = job.host_id;
      if (!hostId) {
        const d = job.deployment_id ? await deployments.findDeployment(this.db, job.deployment_id) : undefined;
        const envId = d?.environment_id ?? job.environment_id;
        const env = envId ? await apps.findEnvironmentById(this.db, envId) : undefined;
        const choice = await this.placement.place(this.db, { constraints: env?.host_labels ?? {}, ...(env ? { request: this.placement.requestOf(env), environmentId: env.id } : {}) });
        if ("reason" in choice) {
          const labels = formatLabels(env?.host_labels ?? {});
          const error = choice.reason === "no_room" ? `${choice.message}: the job waits for room` : labels ? `no online host with the labels ${labels} to place the job on` : "no online host to place the job on";
          await deployments.updateJob(this.db, job.id, { last_publish_error: error });
          continue;
        }
        hostId = choice.hostId;
        await deployments.updateJob(this.db, job.id, { host_id: hostId });
        if (d && env && !env.host_id) await this.lifecycle.place(this.db, [env.id], hostId, `its deployment ${d.id} was published`);
      }
      const msg = JobMessage.encode({ jobId: job.id, kind: job.kind, hostId, deploymentId: job.deployment_id ?? "" }).finish();
      try {
        await this.bus.publish(hostId, job.id, msg);
        await deployments.updateJob(this.db, job.id, { published_at: new Date(), publish_attempts: job.publish_attempts + 1, last_publish_error: null });
        published++;
        this.log.info({ jobId: job.id, hostId, deploymentId: job.deployment_id }, "job published");
      } catch (err) {
        await deployments.updateJob(this.db, job.id, { publish_attempts: job.publish_attempts + 1, last_publish_error: String((err as Error).message ?? err) });
        this.log.warn({ jobId: job.id, err: (err as Error).message }, "job publish failed; will retry");
        break;
      }
    }
    return published;
  }
}
