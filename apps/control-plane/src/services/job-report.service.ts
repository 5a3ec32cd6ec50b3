import {
  ForbiddenError,
  NotFoundError,
  deploymentTransitions,
  isTerminalDeploymentState,
  isTerminalJobState,
  jobTransitions,
  stepToDeploymentState,
  transition,
  type DeploymentState,
  type JobState,
  type Logger,
  type StepName,
} from "@slipway/core";
import { sql } from "kysely";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import * as deployments from "../repositories/deployments.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import type { DeployJobSpec } from "./deployment.service.js";
import type { EnvironmentJobSpec } from "./environment.service.js";
import type { DataJobSpec } from "../data/data.service.js";

/** One event from an agent, already decoded from the wire. */
export type JobEventInput =
  | { jobId: string; seq: number; at: Date; kind: "step"; name: string; state: string }
  | { jobId: string; seq: number; at: Date; kind: "log"; text: string }
  | { jobId: string; seq: number; at: Date; kind: "facts"; commit: string; image: string }
  | { jobId: string; seq: number; at: Date; kind: "progress"; phase: string; bytes: number; objects: number }
  | { jobId: string; seq: number; at: Date; kind: "backup"; backupId: string; database: boolean; databaseBytes: number; media: boolean; mediaBytes: number; mediaObjects: number }
  | { jobId: string; seq: number; at: Date; kind: "result"; state: "succeeded" | "failed" | "cancelled"; commit: string; image: string; failure?: { type: string; message: string; retryable: boolean; details?: string } };

export interface JobSpecView {
  jobId: string;
  kind: string;
  state: JobState;
  lastSeq: number;
  deploy?: DeployJobSpec;
  environment?: EnvironmentJobSpec;
  data?: DataJobSpec;
}

/**
 * Applies what agents report. Each event is applied at most once: events at or
 * below a job's stored `last_seq` are skipped, so a retried batch is harmless.
 * An agent can touch only its own host's jobs.
 */
export class JobReportService {
  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    /** Called when a deployment waiting behind a finished one may now be published. */
    private readonly onJobReleased: () => void = () => undefined,
    /** Called (in the transaction) when a deployment moved an environment to another host. */
    private readonly onMoved: (trx: Db, environmentId: string, fromHostId: string, toHostId: string) => Promise<void> = async () => undefined,
  ) {}

  async apply(hostId: string, events: JobEventInput[]): Promise<{ acked: Record<string, number>; cancelRequested: string[] }> {
    const byJob = new Map<string, JobEventInput[]>();
    for (const e of events) {
      const list = byJob.get(e.jobId) ?? [];
      list.push(e);
      byJob.set(e.jobId, list);
    }
    const acked: Record<string, number> = {};
    const cancelRequested: string[] = [];
    let released = false;
    for (const [jobId, list] of byJob) {
      list.sort((a, b) => a.seq - b.seq);
      const r = await this.db.transaction().execute((trx) => this.applyJob(trx, hostId, jobId, list));
      acked[jobId] = r.lastSeq;
      if (r.cancelRequested) cancelRequested.push(jobId);
      released ||= r.released;
    }
    if (released) this.onJobReleased();
    return { acked, cancelRequested };
  }

  async getSpec(hostId: string, jobId: string): Promise<JobSpecView> {
    const job = await deployments.findJob(this.db, jobId);
    if (!job) throw new NotFoundError(`job '${jobId}' does not exist`);
    if (job.host_id !== hostId) throw new ForbiddenError(`job '${jobId}' belongs to another host`);
    const view: JobSpecView = { jobId, kind: job.kind, state: job.state as JobState, lastSeq: job.last_seq };
    if (job.kind === "deploy") {
      const spec = job.spec as DeployJobSpec;
      // "Reuse" means the image serving when the job runs, which a deployment queued before it may have changed.
      const d = job.deployment_id ? await deployments.findDeployment(this.db, job.deployment_id) : undefined;
      const env = d ? await apps.findEnvironmentById(this.db, d.environment_id) : undefined;
      view.deploy = { ...spec, currentImage: env?.current_image ?? spec.currentImage };
    } else if (job.kind === "environment") {
      view.environment = job.spec as EnvironmentJobSpec;
    } else if (job.kind === "data") {
      view.data = job.spec as DataJobSpec;
    }
    return view;
  }

  private async applyJob(trx: Db, hostId: string, jobId: string, events: JobEventInput[]): Promise<{ lastSeq: number; cancelRequested: boolean; released: boolean }> {
    const job = await deployments.findJobForUpdate(trx, jobId);
    if (!job) throw new NotFoundError(`job '${jobId}' does not exist`);
    if (job.host_id !== hostId) throw new ForbiddenError(`job '${jobId}' belongs to another host`);
    if (job.kind === "environment") return this.applyEnvironmentJob(trx, job, events);
    if (job.kind === "data") return this.applyDataJob(trx, job, events);
    let lastSeq = job.last_seq;
    let jobState = job.state as JobState;
    const d = job.deployment_id ? await deployments.findDeploymentForUpdate(trx, job.deployment_id) : undefined;
    if (!d) throw new NotFoundError(`deployment of job '${jobId}' does not exist`);
    let state = d.state as DeploymentState;
    const steps = [...(d.steps as deployments.StepRecord[])];
    const patch: Parameters<typeof deployments.updateDeployment>[2] = {};
    let result: Extract<JobEventInput, { kind: "result" }> | undefined;
    let released = false;

    for (const e of events) {
      if (e.seq <= lastSeq) continue;
      lastSeq = e.seq;
      if (isTerminalJobState(jobState) && e.kind !== "log") continue;
      if (jobState === "queued") {
        jobState = transition("job", jobTransitions, jobState, "running");
        patch.started_at = e.at;
      }
      switch (e.kind) {
        case "progress":
        case "backup":
          await this.applyContentEvent(trx, job.id, e);
          break;
        case "log":
          await deployments.appendLog(trx, d.id, e.seq, e.at, e.text);
          break;
        case "facts":
          if (e.commit) patch.commit = e.commit;
          if (e.image) patch.image = e.image;
          break;
        case "step": {
          const iso = e.at.toISOString();
          const existing = steps.find((s) => s.name === e.name);
          if (e.state === "running") {
            if (existing) Object.assign(existing, { state: "running", startedAt: iso, finishedAt: null });
            else steps.push({ name: e.name, state: "running", startedAt: iso, finishedAt: null });
            const next = stepToDeploymentState[e.name as StepName];
            if (next && !isTerminalDeploymentState(state) && next !== state) state = transition("deployment", deploymentTransitions, state, next);
          } else if (existing) {
            Object.assign(existing, { state: e.state, finishedAt: iso });
          } else {
            steps.push({ name: e.name, state: e.state, startedAt: e.state === "skipped" ? null : iso, finishedAt: iso });
          }
          break;
        }
        case "result":
          result = e;
          break;
      }
    }
    patch.steps = steps;
    if (result && !isTerminalDeploymentState(state)) {
      state = transition("deployment", deploymentTransitions, state, result.state);
      jobState = transition("job", jobTransitions, jobState, result.state);
      patch.finished_at = result.at;
      if (result.commit) patch.commit = result.commit;
      if (result.image) patch.image = result.image;
      if (result.failure) patch.error = result.failure;
      await this.finishEnvironment(trx, d, result, patch);
    }
    patch.state = state;
    await deployments.updateDeployment(trx, d.id, patch);
    if (result) {
      // The content step either finished (the content was replaced, whatever came after) or not.
      const contentStep = steps.find((x) => x.name === "content");
      const contentState = contentStep?.state === "succeeded" ? "succeeded" : result.state === "cancelled" ? "cancelled" : "failed";
      const error = contentState === "succeeded" ? null : JSON.stringify(result.failure ?? { type: "not_run", message: "the deployment ended before its content step" });
      await trx.updateTable("content_copies").set({ state: contentState, finished_at: result.at, error }).where("job_id", "=", jobId).where("state", "in", ["queued", "running"]).execute();
      await trx.updateTable("backups").set({ state: "failed", finished_at: result.at }).where("job_id", "=", jobId).where("state", "in", ["queued", "running"]).execute();
    }
    if (result && isTerminalDeploymentState(state)) {
      const next = await deployments.promoteWaiting(trx, d.environment_id);
      if (next) {
        await apps.updateEnvironmentRuntime(trx, d.environment_id, { state: "deploying" });
        released = true;
      }
    }
    await deployments.updateJob(trx, jobId, {
      state: jobState,
      last_seq: lastSeq,
      ...(patch.started_at && !job.started_at ? { started_at: patch.started_at } : {}),
      ...(isTerminalJobState(jobState) && !job.finished_at ? { finished_at: new Date() } : {}),
    });
    if (state !== d.state) this.log.info({ deploymentId: d.id, jobId, from: d.state, to: state }, "deployment state changed");
    return { lastSeq, cancelRequested: d.cancel_requested_at !== null && !isTerminalDeploymentState(state), released };
  }

  /**
   * Stop, start, routes and remove jobs: their log lines are not kept (the
   * activity feed records the request and the outcome); the result sets the
   * environment's state.
   */
  private async applyEnvironmentJob(trx: Db, job: deployments.JobRow, events: JobEventInput[]): Promise<{ lastSeq: number; cancelRequested: boolean; released: boolean }> {
    let lastSeq = job.last_seq;
    let state = job.state as JobState;
    let error: unknown;
    for (const e of events) {
      if (e.seq <= lastSeq) continue;
      lastSeq = e.seq;
      if (isTerminalJobState(state)) continue;
      if (state === "queued") state = transition("job", jobTransitions, state, "running");
      if (e.kind === "result") {
        state = transition("job", jobTransitions, state, e.state);
        if (e.failure) error = e.failure;
      }
    }
    await deployments.updateJob(trx, job.id, {
      state,
      last_seq: lastSeq,
      ...(isTerminalJobState(state) && !job.finished_at ? { finished_at: new Date() } : {}),
      ...(error !== undefined ? { error } : {}),
    });
    if (isTerminalJobState(state) && !isTerminalJobState(job.state as JobState)) {
      const spec = job.spec as EnvironmentJobSpec;
      if (state === "succeeded" && (spec.action === "stop" || spec.action === "start")) {
        const env = await apps.findEnvironmentById(trx, spec.environmentId);
        if (env && env.state !== "deploying") await apps.updateEnvironmentRuntime(trx, env.id, { state: spec.action === "stop" ? "stopped" : "running" });
      }
      await recordActivity(trx, {
        actor: "platform",
        app: spec.app,
        environment: spec.environment,
        action: `environment.${spec.action}_${state}`,
        details: error ? { error: (error as { message?: string }).message } : {},
      });
    }
    return { lastSeq, cancelRequested: false, released: false };
  }

  private async applyContentEvent(trx: Db, jobId: string, e: Extract<JobEventInput, { kind: "progress" | "backup" }>): Promise<void> {
    if (e.kind === "progress") {
      await trx.updateTable("content_copies").set({ state: "running", phase: e.phase, bytes: e.bytes, objects: e.objects }).where("job_id", "=", jobId).execute();
    } else {
      // Facts arrive once per part (database, media): set only what this one carries; the backup
      // is complete (and restorable, even if the job fails later) once every requested part reported.
      await trx
        .updateTable("backups")
        .set({ ...(e.database ? { database_bytes: e.databaseBytes } : {}), ...(e.media ? { media_bytes: e.mediaBytes, media_objects: e.mediaObjects } : {}) })
        .where("id", "=", e.backupId)
        .where("job_id", "=", jobId)
        .execute();
      await sql`UPDATE backups SET state = 'succeeded', finished_at = ${e.at}
        WHERE id = ${e.backupId} AND job_id = ${jobId} AND state IN ('queued', 'running')
          AND (NOT database OR database_bytes IS NOT NULL) AND (NOT media OR media_objects IS NOT NULL)`.execute(trx);
    }
  }

  /**
   * Backups, restores and content copies: progress and backup facts update
   * their records as they come; the result ends them. Log lines are not kept;
   * the failure message says what was done.
   */
  private async applyDataJob(trx: Db, job: deployments.JobRow, events: JobEventInput[]): Promise<{ lastSeq: number; cancelRequested: boolean; released: boolean }> {
    let lastSeq = job.last_seq;
    let state = job.state as JobState;
    const spec = job.spec as DataJobSpec;
    for (const e of events) {
      if (e.seq <= lastSeq) continue;
      lastSeq = e.seq;
      if (isTerminalJobState(state)) continue;
      if (state === "queued") {
        state = transition("job", jobTransitions, state, "running");
        await trx.updateTable("backups").set({ state: "running" }).where("job_id", "=", job.id).where("state", "=", "queued").execute();
        await trx.updateTable("content_copies").set({ state: "running" }).where("job_id", "=", job.id).where("state", "=", "queued").execute();
      }
      if (e.kind === "progress" || e.kind === "backup") {
        await this.applyContentEvent(trx, job.id, e);
      } else if (e.kind === "result") {
        state = transition("job", jobTransitions, state, e.state);
        const error = e.failure ? JSON.stringify(e.failure) : null;
        await trx.updateTable("content_copies").set({ state: e.state, finished_at: e.at, error }).where("job_id", "=", job.id).execute();
        await trx.updateTable("backups").set({ state: e.state === "succeeded" ? "succeeded" : "failed", finished_at: e.at, error }).where("job_id", "=", job.id).where("state", "in", ["queued", "running"]).execute();
        await recordActivity(trx, {
          actor: "platform",
          app: spec.app,
          environment: spec.environment,
          action: `${spec.action === "backup" ? "backup" : spec.action === "restore" ? "backup.restore" : "content.copy"}_${e.state}`,
          details: { job: job.id, ...(e.failure ? { error: e.failure.message } : {}) },
        });
      }
    }
    await deployments.updateJob(trx, job.id, { state, last_seq: lastSeq, ...(isTerminalJobState(state) && !job.finished_at ? { finished_at: new Date() } : {}) });
    return { lastSeq, cancelRequested: false, released: false };
  }

  private async finishEnvironment(trx: Db, d: deployments.DeploymentRow, result: Extract<JobEventInput, { kind: "result" }>, patch: { commit?: string | null; image?: string | null }): Promise<void> {
    const env = await apps.findEnvironmentById(trx, d.environment_id);
    if (!env) return;
    const app = await trx.selectFrom("apps").select(["name"]).where("id", "=", env.app_id).executeTakeFirstOrThrow();
    if (result.state === "succeeded") {
      if (d.moved_from_host_id && d.host_id) {
        // A drain moved the environment: it now lives on the new host; the old one forwards, then lets go.
        await apps.updateEnvironmentRuntime(trx, env.id, { host_id: d.host_id });
        await this.onMoved(trx, env.id, d.moved_from_host_id, d.host_id);
      }
      await apps.updateEnvironmentRuntime(trx, env.id, {
        state: "running",
        deployed_commit: patch.commit ?? d.commit,
        current_image: patch.image ?? d.image,
        deployed_config_revision: d.config_revision,
        deployed_settings_revision: d.settings_revision,
        last_success_at: result.at,
      });
    } else {
      // The previous containers keep serving when there were any.
      const serving = env.current_image !== null;
      await apps.updateEnvironmentRuntime(trx, env.id, { state: serving ? "running" : result.state === "failed" ? "failed" : "not_deployed" });
    }
    await recordActivity(trx, {
      actor: "platform",
      app: app.name,
      environment: env.name,
      action: `deployment.${result.state}`,
      details: { deployment: d.id, commit: patch.commit ?? d.commit, ...(result.failure ? { error: result.failure.message } : {}) },
    });
  }
}
