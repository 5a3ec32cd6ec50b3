import {
  ForbiddenError,
  NotFoundError,
  isTerminalDeploymentState,
  isTerminalJobState,
  stepToDeploymentState,
  type DeploymentState,
  type JobState,
  type Logger,
  type StepName,
} from "@slipway/core";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import * as deployments from "../repositories/deployments.repository.js";
import * as dataRecords from "../data/data.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import type { Lifecycle } from "./lifecycle.service.js";
import type { DeployJobSpec } from "./deployment.service.js";
import type { EnvironmentJobSpec } from "./environment.service.js";
import type { DataJobSpec } from "../data/data.service.js";

const COMMIT_RE = /^[0-9a-f]{7,64}$/;

/** One event from an agent, already decoded from the wire. */
export type JobEventInput =
  | { jobId: string; seq: number; at: Date; kind: "step"; name: string; state: string }
  | { jobId: string; seq: number; at: Date; kind: "log"; text: string }
  | { jobId: string; seq: number; at: Date; kind: "facts"; commit: string; image: string; imageDigest?: string }
  | { jobId: string; seq: number; at: Date; kind: "progress"; phase: string; bytes: number; objects: number }
  | { jobId: string; seq: number; at: Date; kind: "backup"; backupId: string; database: boolean; databaseBytes: number; databaseSha256?: string; media: boolean; mediaBytes: number; mediaObjects: number }
  | { jobId: string; seq: number; at: Date; kind: "result"; state: "succeeded" | "failed" | "cancelled"; commit: string; image: string; imageDigest?: string; failure?: { type: string; message: string; retryable: boolean; details?: string } };

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
 * An agent can touch only its own host's jobs. Every state change goes
 * through the lifecycle module.
 */
export class JobReportService {
  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly lifecycle: Lifecycle,
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
    const d = job.deployment_id ? await deployments.findDeploymentForUpdate(trx, job.deployment_id) : undefined;
    if (!d) throw new NotFoundError(`deployment of job '${jobId}' does not exist`);
    let lastSeq = job.last_seq;
    const steps = [...(d.steps as deployments.StepRecord[])];
    const facts: { commit?: string; image?: string; imageDigest?: string } = {};
    let result: Extract<JobEventInput, { kind: "result" }> | undefined;
    let released = false;
    const logLines: Array<{ seq: number; at: Date; text: string }> = [];

    for (const e of events) {
      if (e.seq <= lastSeq) continue;
      lastSeq = e.seq;
      // After the result only housekeeping arrives: log lines and the cleanup step that follows the switch.
      if (isTerminalJobState(job.state as JobState) && e.kind !== "log" && !(e.kind === "step" && e.name === "cleanup")) continue;
      if (job.state === "queued") await this.lifecycle.moveJob(trx, job, "running", e.at);
      switch (e.kind) {
        case "progress":
        case "backup":
          await this.applyContentEvent(trx, job.id, e);
          break;
        case "log":
          logLines.push({ seq: e.seq, at: e.at, text: e.text });
          break;
        case "facts":
          // A commit is a sha: anything else (from a faulty or hostile agent) never reaches git's arguments.
          if (e.commit && COMMIT_RE.test(e.commit)) facts.commit = e.commit;
          if (e.image) facts.image = e.image;
          if (e.imageDigest) facts.imageDigest = e.imageDigest;
          break;
        case "step": {
          const iso = e.at.toISOString();
          const existing = steps.find((s) => s.name === e.name);
          if (e.state === "running") {
            if (existing) Object.assign(existing, { state: "running", startedAt: iso, finishedAt: null });
            else steps.push({ name: e.name, state: "running", startedAt: iso, finishedAt: null });
            const next = stepToDeploymentState[e.name as StepName];
            if (next && !isTerminalDeploymentState(d.state as DeploymentState)) await this.lifecycle.advanceDeployment(trx, d, next, e.at);
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
    if (result?.commit && COMMIT_RE.test(result.commit)) facts.commit = result.commit;
    if (result?.image) facts.image = result.image;
    if (result?.imageDigest) facts.imageDigest = result.imageDigest;
    await deployments.appendLogs(trx, d.id, logLines);
    // A result is on the path users wait on: its steps and facts go into the same statement as the state.
    let recorded = false;
    if (result && !isTerminalDeploymentState(d.state as DeploymentState)) {
      assignFacts(d, facts);
      const outcome = await this.lifecycle.finishDeployment(
        trx,
        d,
        job,
        { state: result.state, at: result.at, ...(result.failure ? { error: result.failure } : {}), commit: d.commit, image: d.image },
        this.onMoved,
        { steps, ...facts },
      );
      recorded = outcome.finished;
      released = outcome.released;
      if (outcome.finished) await this.recordOutcome(trx, job, d, result);
      if ((job.spec as DeployJobSpec).content) {
        // The content step either finished (the content was replaced, whatever came after) or not.
        const contentStep = steps.find((x) => x.name === "content");
        const contentState = contentStep?.state === "succeeded" ? "succeeded" : result.state === "cancelled" ? "cancelled" : "failed";
        const error = contentState === "succeeded" ? null : JSON.stringify(result.failure ?? { type: "not_run", message: "the deployment ended before its content step" });
        await dataRecords.finishDataRecords(trx, jobId, result.at, contentState, error, "failed");
      }
    }
    if (!recorded) {
      const { imageDigest, ...rest } = facts;
      await deployments.updateDeployment(trx, d.id, { steps, ...rest, ...(imageDigest ? { image_digest: imageDigest } : {}) });
      assignFacts(d, facts);
    }
    await deployments.setJobLastSeq(trx, jobId, lastSeq);
    return { lastSeq, cancelRequested: d.cancel_requested_at !== null && !isTerminalDeploymentState(d.state as DeploymentState), released };
  }

  /**
   * Stop, start, routes and remove jobs: their log lines are not kept (the
   * activity feed records the request and the outcome); a stop or start the
   * host carried out is what it observes of the environment.
   */
  private async applyEnvironmentJob(trx: Db, job: deployments.JobRow, events: JobEventInput[]): Promise<{ lastSeq: number; cancelRequested: boolean; released: boolean }> {
    let lastSeq = job.last_seq;
    const before = job.state as JobState;
    let error: unknown;
    for (const e of events) {
      if (e.seq <= lastSeq) continue;
      lastSeq = e.seq;
      if (isTerminalJobState(job.state as JobState)) continue;
      if (job.state === "queued") await this.lifecycle.moveJob(trx, job, "running", e.at);
      if (e.kind === "result") {
        if (e.failure) error = e.failure;
        await this.lifecycle.moveJob(trx, job, e.state, e.at, error);
      }
    }
    await deployments.setJobLastSeq(trx, job.id, lastSeq);
    const state = job.state as JobState;
    if (isTerminalJobState(state) && !isTerminalJobState(before)) {
      const spec = job.spec as EnvironmentJobSpec;
      if (state === "succeeded" && (spec.action === "stop" || spec.action === "start")) {
        const env = await apps.findEnvironmentById(trx, spec.environmentId);
        if (env) await this.lifecycle.observe(trx, env.id, spec.action === "stop" ? "stopped" : "running", `${spec.action} job ${job.id}`);
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
    if (e.kind === "progress") await dataRecords.recordCopyProgress(trx, jobId, e);
    else await dataRecords.recordBackupFacts(trx, jobId, e.at, e);
  }

  /**
   * Backups, restores and content copies: progress and backup facts update
   * their records as they come; the result ends them. Log lines are not kept;
   * the failure message says what was done.
   */
  private async applyDataJob(trx: Db, job: deployments.JobRow, events: JobEventInput[]): Promise<{ lastSeq: number; cancelRequested: boolean; released: boolean }> {
    let lastSeq = job.last_seq;
    const spec = job.spec as DataJobSpec;
    for (const e of events) {
      if (e.seq <= lastSeq) continue;
      lastSeq = e.seq;
      if (isTerminalJobState(job.state as JobState)) continue;
      if (job.state === "queued") {
        await this.lifecycle.moveJob(trx, job, "running", e.at);
        await dataRecords.markDataRecordsRunning(trx, job.id);
      }
      if (e.kind === "progress" || e.kind === "backup") {
        await this.applyContentEvent(trx, job.id, e);
      } else if (e.kind === "result") {
        if (!(await this.lifecycle.moveJob(trx, job, e.state, e.at))) continue;
        const error = e.failure ? JSON.stringify(e.failure) : null;
        await dataRecords.finishDataRecords(trx, job.id, e.at, e.state, error, e.state === "succeeded" ? "succeeded" : "failed");
        await recordActivity(trx, {
          actor: "platform",
          app: spec.app,
          environment: spec.environment,
          action: `${spec.action === "backup" ? "backup" : spec.action === "restore" ? "backup.restore" : "content.copy"}_${e.state}`,
          details: { job: job.id, ...(e.failure ? { error: e.failure.message } : {}) },
        });
      }
    }
    await deployments.setJobLastSeq(trx, job.id, lastSeq);
    return { lastSeq, cancelRequested: false, released: false };
  }

  private async recordOutcome(trx: Db, job: deployments.JobRow, d: deployments.DeploymentRow, result: Extract<JobEventInput, { kind: "result" }>): Promise<void> {
    const spec = job.spec as DeployJobSpec;
    await recordActivity(trx, {
      actor: "platform",
      app: spec.app,
      environment: spec.environment,
      action: `deployment.${result.state}`,
      details: { deployment: d.id, commit: d.commit, ...(result.failure ? { error: result.failure.message } : {}) },
    });
  }
}

/** The facts of a report on the deployment row as it is held in memory. */
function assignFacts(d: deployments.DeploymentRow, facts: { commit?: string; image?: string; imageDigest?: string }): void {
  if (facts.commit) d.commit = facts.commit;
  if (facts.image) d.image = facts.image;
  if (facts.imageDigest) d.image_digest = facts.imageDigest;
}
