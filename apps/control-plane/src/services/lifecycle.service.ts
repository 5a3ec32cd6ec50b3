import {
  IllegalStateError,
  deploymentTransitions,
  environmentState,
  environmentTransitions,
  isObservedEnvironmentState,
  isTerminalDeploymentState,
  isTerminalJobState,
  jobTransitions,
  transition,
  type DeploymentState,
  type DesiredEnvironmentState,
  type EnvironmentState,
  type JobState,
  type Logger,
  type ObservedEnvironmentState,
} from "@slipway/core";
import type { Db } from "../db/database.js";
import type { DeploymentKind } from "../db/schema.js";
import * as lc from "../repositories/lifecycle.repository.js";
import type { DeploymentRow, JobRow } from "../repositories/deployments.repository.js";

export interface NewDeployment {
  id: string;
  appId: string;
  environmentId: string;
  buildMode: string;
  configRevision: number;
  settingsRevision: number;
  requestedBy: string;
  /** Queued behind the environment's running deployment. */
  waiting: boolean;
  hostId: string | null;
  movedFromHostId: string | null;
  /** deploy (default), promote or rollback, and what it came from. */
  kind?: DeploymentKind;
  sourceDeploymentId?: string | null;
  promotedFrom?: string | null;
}

export interface NewJob {
  id: string;
  kind: "deploy" | "environment" | "data";
  deploymentId: string | null;
  hostId: string | null;
  spec: unknown;
  environmentId?: string | null;
}

/** How a deployment ended, and what serves afterwards when it succeeded. */
export interface DeploymentOutcome {
  state: "succeeded" | "failed" | "cancelled";
  at: Date;
  error?: unknown;
  /** succeeded: the commit and image that now serve. */
  commit?: string | null;
  image?: string | null;
}

/**
 * The one writer of lifecycle state: an environment's state (derived from
 * what the user asked, what its host observed and its deployments, by core's
 * `environmentState`), its desired and observed states and its placement, a
 * deployment's state and a job's state. Every move is checked against core's
 * transition tables; an illegal one is refused and logged, never written.
 * Every method runs inside the caller's transaction and is safe to call again
 * with the same arguments (a move to the state already held is a no-op).
 */
export class Lifecycle {
  constructor(private readonly log: Logger) {}

  // ---- environments ----

  /**
   * Derives the environment's state from its facts (with `change` applied:
   * a new desired or observed state) and writes both when the move is legal.
   * An illegal move is refused and logged, and nothing of it is written.
   * Locks the environment's row. Returns the state it holds afterwards
   * (undefined when the environment is gone).
   */
  async settleEnvironment(trx: Db, environmentId: string, cause: string, change: { desired?: DesiredEnvironmentState; observed?: ObservedEnvironmentState } = {}): Promise<EnvironmentState | undefined> {
    const env = await lc.lockEnvironmentFacts(trx, environmentId);
    if (!env) return undefined;
    const stored = env.observed_state && isObservedEnvironmentState(env.observed_state) ? env.observed_state : null;
    const desired = change.desired ?? (env.desired_state === "stopped" ? "stopped" : "running");
    const observed = change.observed ?? stored;
    const next = environmentState({
      desired,
      observed,
      deploying: Boolean(env.deploying),
      serving: env.current_image !== null,
      lastDeploymentFailed: env.last_state === "failed",
    });
    const from = env.state as EnvironmentState;
    if (!this.allowed("environment", environmentTransitions, from, next, { environmentId, cause })) return from;
    if (desired !== env.desired_state) await lc.writeDesiredState(trx, environmentId, desired);
    if (observed !== stored) await lc.writeObservedState(trx, environmentId, observed);
    if (next !== from) {
      await lc.writeEnvironmentState(trx, environmentId, next);
      this.log.info({ machine: "environment", environmentId, from, to: next, cause }, "environment state changed");
    }
    return next;
  }

  /** Places the environment on a host (null: not placed). Never moves one that serves elsewhere without a deployment. */
  async place(trx: Db, environmentIds: string[], hostId: string | null, cause: string): Promise<void> {
    if (environmentIds.length === 0) return;
    await lc.writePlacement(trx, environmentIds, hostId);
    this.log.info({ machine: "placement", environmentIds, hostId, cause }, "environment placement changed");
  }

  /** The user asked the environment to run or to stop (the host does it; its report settles the state). */
  async requestRunState(trx: Db, environmentId: string, desired: DesiredEnvironmentState, cause: string): Promise<void> {
    await this.settleEnvironment(trx, environmentId, cause, { desired });
  }

  /** A host reported what runs (a job result, or a heartbeat through `observeMany`). */
  async observe(trx: Db, environmentId: string, observed: ObservedEnvironmentState, cause: string): Promise<void> {
    await this.settleEnvironment(trx, environmentId, cause, { observed });
  }

  /**
   * Heartbeat observations of many environments, compared in one statement;
   * only the environments whose observation changed (rare) are settled one by one.
   * Observations of an environment under deployment are ignored: the
   * deployment's result is the newer truth.
   */
  async observeMany(trx: Db, observed: Array<{ hostId: string; environmentId: string; state: string }>): Promise<void> {
    const valid = observed.filter((o) => isObservedEnvironmentState(o.state));
    for (const o of await lc.changedObservations(trx, valid)) await this.observe(trx, o.environmentId, o.state as ObservedEnvironmentState, "heartbeat");
  }

  // ---- deployments ----

  /** Writes a queued deployment and its job (the outbox) and settles the environment (deploying). */
  async createDeployment(trx: Db, d: NewDeployment, job: Omit<NewJob, "deploymentId" | "kind">): Promise<DeploymentRow> {
    const row = await lc.insertDeploymentAndJob(trx, d, { ...job, kind: "deploy", deploymentId: d.id });
    this.log.info({ machine: "deployment", deploymentId: d.id, to: "queued", waiting: d.waiting }, "deployment queued");
    // A deployment starts the environment: what it deploys is meant to run.
    await this.settleEnvironment(trx, d.environmentId, `deployment ${d.id} requested`, { desired: "running" });
    return row;
  }

  /** Moves a deployment forward (a step began); false when the move is illegal (refused, logged). */
  async advanceDeployment(trx: Db, d: Pick<DeploymentRow, "id" | "state">, to: DeploymentState, at: Date, record?: lc.DeploymentRecord): Promise<boolean> {
    const from = d.state as DeploymentState;
    if (from === to) return true;
    if (!this.allowed("deployment", deploymentTransitions, from, to, { deploymentId: d.id })) return false;
    await lc.writeDeploymentState(trx, d.id, to, { ...(from === "queued" ? { startedAt: at } : {}), ...(record ? { record } : {}) });
    d.state = to;
    this.log.info({ machine: "deployment", deploymentId: d.id, from, to }, "deployment state changed");
    return true;
  }

  /**
   * Ends a deployment and its job. A success makes its image the
   * environment's (and, for a move, the new host its home); the next
   * deployment waiting behind it is released. Returns whether one was.
   */
  async finishDeployment(
    trx: Db,
    d: DeploymentRow,
    job: JobRow,
    outcome: DeploymentOutcome,
    onMoved?: (trx: Db, environmentId: string, from: string, to: string) => Promise<void>,
    record?: lc.DeploymentRecord,
  ): Promise<{ finished: boolean; released: boolean }> {
    const from = d.state as DeploymentState;
    if (isTerminalDeploymentState(from)) return { finished: false, released: false };
    if (!this.allowed("deployment", deploymentTransitions, from, outcome.state, { deploymentId: d.id })) return { finished: false, released: false };
    await lc.writeDeploymentState(trx, d.id, outcome.state, { finishedAt: outcome.at, ...(outcome.error !== undefined ? { error: outcome.error } : {}), ...(record ? { record } : {}) });
    d.state = outcome.state;
    this.log.info({ machine: "deployment", deploymentId: d.id, from, to: outcome.state }, "deployment state changed");
    await this.moveJob(trx, job, outcome.state, outcome.at);
    if (outcome.state === "succeeded") {
      if (d.moved_from_host_id && d.host_id) {
        await this.place(trx, [d.environment_id], d.host_id, `deployment ${d.id} moved it`);
        await onMoved?.(trx, d.environment_id, d.moved_from_host_id, d.host_id);
      }
      await lc.writeDeployedFacts(trx, d.environment_id, {
        deployed_commit: outcome.commit ?? d.commit,
        current_image: outcome.image ?? d.image,
        deployed_config_revision: d.config_revision,
        deployed_settings_revision: d.settings_revision,
        last_success_at: outcome.at,
      });
    }
    const released = d.waiting ? undefined : await lc.releaseWaitingDeployment(trx, d.environment_id);
    // After a switch the agent serves the new containers: they run.
    await this.settleEnvironment(trx, d.environment_id, `deployment ${d.id} ${outcome.state}`, outcome.state === "succeeded" ? { observed: "running" } : {});
    return { finished: true, released: released !== undefined };
  }

  /** Cancels a deployment whose job no agent has started. */
  async cancelQueuedDeployment(trx: Db, d: DeploymentRow, job: JobRow, by: string): Promise<{ released: boolean }> {
    const r = await this.finishDeployment(trx, d, job, { state: "cancelled", at: new Date(), error: { type: "cancelled", message: `cancelled by ${by}`, retryable: false } });
    return { released: r.released };
  }

  // ---- jobs ----

  /** Writes a queued job of another kind than deploy (environment and data jobs). */
  async createJob(trx: Db, job: NewJob): Promise<void> {
    await lc.insertJobRow(trx, job);
  }

  /** Moves a job (queued → running → an end); false when the move is illegal (refused, logged). */
  async moveJob(trx: Db, job: Pick<JobRow, "id" | "state" | "started_at" | "finished_at">, to: JobState, at: Date, error?: unknown): Promise<boolean> {
    const from = job.state as JobState;
    if (from === to) return true;
    if (!this.allowed("job", jobTransitions, from, to, { jobId: job.id })) return false;
    await lc.writeJobState(trx, job, to, at, isTerminalJobState(to), error);
    job.state = to;
    if (to === "running" && !job.started_at) job.started_at = at;
    if (isTerminalJobState(to) && !job.finished_at) job.finished_at = at;
    return true;
  }

  private allowed<S extends string>(machine: string, table: Record<S, readonly S[]>, from: S, to: S, ids: Record<string, string>): boolean {
    try {
      transition(machine, table, from, to);
      return true;
    } catch (err) {
      if (!(err instanceof IllegalStateError)) throw err;
      this.log.warn({ machine, ...ids, from, to }, `refused an illegal ${machine} transition ${from} → ${to}; nothing written`);
      return false;
    }
  }
}
