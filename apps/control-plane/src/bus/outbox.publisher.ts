import { JobMessage } from "@slipway/proto";
import { formatLabels, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as deployments from "../repositories/deployments.repository.js";
import type { JobRow } from "../repositories/deployments.repository.js";
import * as apps from "../repositories/apps.repository.js";
import type { PlacementService } from "../services/placement.service.js";
import type { JobBus } from "./job-bus.js";
import type { Lifecycle } from "../services/lifecycle.service.js";
import type { CommittedJob } from "../services/deployment.service.js";

/** Jobs published per transaction (claimed, sent at once, marked). */
const BATCH = 100;
/** Jobs placed per transaction: the placement lock is held for a batch, so keep it short. */
const PLACE_BATCH = 20;
/** When a job's environment was locked by someone else, its placement is tried again this soon. */
const BUSY_RETRY_MS = 100;

/**
 * Moves jobs from the outbox table to JetStream. Runs every interval and when
 * poked; a failed publish stays in the outbox and is retried, so a NATS outage
 * delays jobs and never loses one.
 *
 * Any number of control planes may run this against one database at once. A job
 * without a host is placed by one of them, exactly once: its row is claimed with
 * `FOR UPDATE SKIP LOCKED` (a job another replica holds is skipped, not waited
 * for), the choice is made under the placement lock and written only where no host
 * is recorded yet, and committed before anything is published. Publication then
 * claims placed jobs the same way and sends each to the host the database records,
 * with the job id as message id: publishing again after a crash between publishing
 * and marking published (same id, same subject) stores it once within JetStream's
 * duplicate window, and the agent ignores a job it has already ended.
 */
export class OutboxPublisher {
  private timer?: NodeJS.Timeout;
  private retry?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;
  /** publishCommitted() calls not settled yet. */
  private readonly inFlight = new Set<Promise<void>>();

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
    if (this.retry) clearTimeout(this.retry);
    while (this.running) await new Promise((r) => setTimeout(r, 20));
    await Promise.all(this.inFlight);
  }

  /** Asks for a run now; runs of this publisher are never concurrent (other replicas' are). */
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

  /**
   * Publishes a job its caller has just committed with a host (a deployment request's) without
   * waiting for a run: the job's message, then its mark, outside any claim. A run of this or
   * another replica may publish it at the same moment: the same message id within JetStream's
   * duplicate window is stored once, and the mark is written once. Cancelled in between: the agent
   * reads the job's state with its spec and ends it without running it. Anything failing leaves
   * the job unmarked in the outbox, and a run is asked for.
   */
  publishCommitted(job: CommittedJob): void {
    if (this.stopped) return;
    const done = this.bus
      .publish(job.hostId, job.id, jobMessage(job.id, job.kind, job.hostId, job.deploymentId))
      .then(() => deployments.markJobsPublished(this.db, [job.id], new Date()))
      .then(
        () => this.log.info({ jobId: job.id, hostId: job.hostId, deploymentId: job.deploymentId }, "job published"),
        (err: unknown) => {
          this.log.warn({ jobId: job.id, hostId: job.hostId, err: messageOf(err) }, "job publish failed; the outbox will retry");
          this.poke();
        },
      )
      .finally(() => this.inFlight.delete(done));
    this.inFlight.add(done);
  }

  /** Places the jobs without a host, then publishes placed jobs; returns how many it published. */
  async runOnce(): Promise<number> {
    const { busy } = await this.placeJobs();
    // Only when started: a caller driving runOnce itself decides when to run again.
    if (busy > 0 && this.timer && !this.stopped && !this.retry) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.poke();
      }, BUSY_RETRY_MS);
    }
    let published = 0;
    for (;;) {
      if (this.stopped) break;
      const r = await this.publishJobs();
      published += r.published;
      if (r.claimed < BATCH || r.failed) break;
    }
    return published;
  }

  /**
   * Chooses a host for every job that has none, PLACE_BATCH jobs a transaction (claimed, placed and
   * committed before any of them is published). Returns how many it placed, and how many it left
   * because another transaction held their environment.
   */
  async placeJobs(): Promise<{ placed: number; busy: number }> {
    let placed = 0;
    let busy = 0;
    let after: JobRow | undefined;
    while (!this.stopped) {
      const r = await this.db.transaction().execute(async (trx) => {
        const jobs = await deployments.claimUnplacedJobs(trx, PLACE_BATCH, after);
        const counts = { claimed: jobs.length, placed: 0, busy: 0, last: jobs.at(-1) };
        for (const job of jobs) {
          const outcome = await this.placeJob(trx, job);
          if (outcome === "placed") counts.placed++;
          if (outcome === "busy") counts.busy++;
        }
        return counts;
      });
      placed += r.placed;
      busy += r.busy;
      after = r.last;
      if (r.claimed < PLACE_BATCH) break;
    }
    return { placed, busy };
  }

  /** Places one claimed job inside `trx`. */
  private async placeJob(trx: Db, job: JobRow): Promise<"placed" | "taken" | "busy" | "unplaceable"> {
    const deploymentId = job.kind === "deploy" ? job.deployment_id : null;
    const envId = job.environment_id ?? (deploymentId ? (await deployments.findDeployment(trx, deploymentId))?.environment_id : undefined);
    // The environment's row is the placement's: locked (or skipped while a deployment request or
    // another replica holds it) before the placement lock, in the order every placement takes them.
    const env = envId ? await deployments.lockEnvironmentPlacement(trx, envId) : undefined;
    if (envId && !env && (await apps.findEnvironmentById(trx, envId))) return "busy";
    // The environment was placed since the job was queued (an earlier deployment of it, another
    // replica's request): the job goes where the environment is, never elsewhere.
    let hostId = env?.host_id ?? null;
    if (!hostId) {
      const choice = await this.placement.place(trx, { constraints: env?.host_labels ?? {}, ...(env ? { request: this.placement.requestOf(env), environmentId: env.id } : {}) });
      if ("reason" in choice) {
        const labels = formatLabels(env?.host_labels ?? {});
        const error = choice.reason === "no_room" ? `${choice.message}: the job waits for room` : labels ? `no online host with the labels ${labels} to place the job on` : "no online host to place the job on";
        await deployments.updateJob(trx, job.id, { last_publish_error: error });
        return "unplaceable";
      }
      hostId = choice.hostId;
      if (deploymentId && env) await this.lifecycle.place(trx, [env.id], hostId, `its deployment ${deploymentId} was published`);
    }
    // Under the job's row lock this is the only writer; the condition keeps a first choice regardless.
    if (!(await deployments.assignJobHost(trx, job.id, hostId))) return "taken";
    this.log.info({ jobId: job.id, hostId, deploymentId: job.deployment_id, environmentId: env?.id }, "job placed");
    return "placed";
  }

  /**
   * Claims up to BATCH placed jobs (rows another replica holds are skipped), publishes each to the
   * host recorded for it and marks those JetStream stored, all in one transaction: a crash before
   * the commit leaves them unmarked for any replica to publish again under the same message id.
   */
  async publishJobs(): Promise<{ claimed: number; published: number; failed: boolean }> {
    return this.db.transaction().execute(async (trx) => {
      const jobs = await deployments.claimPublishableJobs(trx, BATCH);
      if (jobs.length === 0) return { claimed: 0, published: 0, failed: false };
      const ok: string[] = [];
      let failed = false;
      // Consumers first, one host at a time (the bus creates a missing one), then every message at once.
      const hosts = [...new Set(jobs.map((j) => j.host_id!))];
      const unreachable = new Map<string, string>();
      for (const h of hosts) await this.bus.ensureConsumer(h).catch((err: unknown) => unreachable.set(h, messageOf(err)));
      const results = await Promise.allSettled(
        jobs.map(async (job) => {
          const hostId = job.host_id!;
          const why = unreachable.get(hostId);
          if (why) throw new Error(why);
          await this.bus.publish(hostId, job.id, jobMessage(job.id, job.kind, hostId, job.deployment_id));
        }),
      );
      for (const [i, r] of results.entries()) {
        const job = jobs[i]!;
        if (r.status === "fulfilled") {
          ok.push(job.id);
          this.log.info({ jobId: job.id, hostId: job.host_id, deploymentId: job.deployment_id }, "job published");
        } else {
          failed = true;
          await deployments.recordPublishFailure(trx, job.id, messageOf(r.reason));
          this.log.warn({ jobId: job.id, hostId: job.host_id, err: messageOf(r.reason) }, "job publish failed; will retry");
        }
      }
      await deployments.markJobsPublished(trx, ok, new Date());
      return { claimed: jobs.length, published: ok.length, failed };
    });
  }
}

/** What an agent's consumer receives for a job: which job, for which host (the spec is asked for with GetJobSpec). */
function jobMessage(jobId: string, kind: string, hostId: string, deploymentId: string | null): Uint8Array {
  return JobMessage.encode({ jobId, kind, hostId, deploymentId: deploymentId ?? "" }).finish();
}

function messageOf(err: unknown): string {
  return String((err as Error)?.message ?? err);
}
