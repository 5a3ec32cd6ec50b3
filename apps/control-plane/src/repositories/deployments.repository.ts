import type { Selectable } from "kysely";
import type { Db } from "../db/database.js";
import { json } from "../db/database.js";
import type { DeploymentsTable, JobsTable } from "../db/schema.js";

export type DeploymentRow = Selectable<DeploymentsTable>;
export type JobRow = Selectable<JobsTable>;

export interface StepRecord {
  name: string;
  state: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export async function insertDeployment(db: Db, row: { id: string; appId: string; environmentId: string; buildMode: string; configRevision: number; settingsRevision: number; requestedBy: string; waiting?: boolean }): Promise<void> {
  await db
    .insertInto("deployments")
    .values({
      id: row.id,
      app_id: row.appId,
      environment_id: row.environmentId,
      state: "queued",
      build_mode: row.buildMode,
      commit: null,
      image: null,
      steps: json([]),
      error: null,
      config_revision: row.configRevision,
      settings_revision: row.settingsRevision,
      requested_by: row.requestedBy,
      cancel_requested_at: null,
      waiting: row.waiting ?? false,
      queued_at: new Date(),
      started_at: null,
      finished_at: null,
    })
    .execute();
}

export function findDeployment(db: Db, id: string): Promise<DeploymentRow | undefined> {
  return db.selectFrom("deployments").selectAll().where("id", "=", id).executeTakeFirst();
}
/** Locks the row for the rest of the transaction. */
export function findDeploymentForUpdate(db: Db, id: string): Promise<DeploymentRow | undefined> {
  return db.selectFrom("deployments").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
}
export function listDeployments(db: Db, environmentId: string, limit: number): Promise<DeploymentRow[]> {
  return db.selectFrom("deployments").selectAll().where("environment_id", "=", environmentId).orderBy("queued_at", "desc").orderBy("id").limit(limit).execute();
}
/** The environment's deployment that runs (or is about to), not one waiting behind it. */
export function findActiveDeployment(db: Db, environmentId: string): Promise<DeploymentRow | undefined> {
  return db
    .selectFrom("deployments")
    .selectAll()
    .where("environment_id", "=", environmentId)
    .where("waiting", "=", false)
    .where("state", "in", ["queued", "preparing", "building", "releasing", "starting", "probing", "switching"])
    .executeTakeFirst();
}
export function latestFinishedDeployment(db: Db, environmentId: string): Promise<DeploymentRow | undefined> {
  return db
    .selectFrom("deployments")
    .selectAll()
    .where("environment_id", "=", environmentId)
    .where("state", "in", ["succeeded", "failed", "cancelled"])
    .orderBy("finished_at", "desc")
    .limit(1)
    .executeTakeFirst();
}
export async function updateDeployment(db: Db, id: string, patch: Partial<Omit<DeploymentRow, "steps" | "error">> & { steps?: StepRecord[]; error?: unknown }): Promise<void> {
  const { steps, error, ...rest } = patch;
  await db
    .updateTable("deployments")
    .set({ ...rest, ...(steps !== undefined ? { steps: json(steps) } : {}), ...(error !== undefined ? { error: error === null ? null : json(error) } : {}) })
    .where("id", "=", id)
    .execute();
}

export async function appendLog(db: Db, deploymentId: string, seq: number, at: Date, text: string): Promise<void> {
  await db.insertInto("deployment_logs").values({ deployment_id: deploymentId, seq, at, text }).onConflict((oc) => oc.doNothing()).execute();
}
export function readLog(db: Db, deploymentId: string, afterSeq: number): Promise<Array<{ seq: number; text: string }>> {
  return db.selectFrom("deployment_logs").select(["seq", "text"]).where("deployment_id", "=", deploymentId).where("seq", ">", afterSeq).orderBy("seq").limit(5000).execute();
}

export async function insertJob(db: Db, row: { id: string; kind: string; deploymentId: string | null; hostId: string | null; spec: unknown; environmentId?: string }): Promise<void> {
  await db
    .insertInto("jobs")
    .values({
      id: row.id,
      kind: row.kind,
      deployment_id: row.deploymentId,
      host_id: row.hostId,
      state: "queued",
      spec: json(row.spec),
      environment_id: row.environmentId ?? null,
      last_seq: 0,
      publish_attempts: 0,
      last_publish_error: null,
      created_at: new Date(),
      published_at: null,
      started_at: null,
      finished_at: null,
    })
    .execute();
}
export function findJob(db: Db, id: string): Promise<JobRow | undefined> {
  return db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
}
export function findJobForUpdate(db: Db, id: string): Promise<JobRow | undefined> {
  return db.selectFrom("jobs").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
}
export function findJobByDeployment(db: Db, deploymentId: string): Promise<JobRow | undefined> {
  return db.selectFrom("jobs").selectAll().where("deployment_id", "=", deploymentId).executeTakeFirst();
}
/** Jobs to publish: not yet published, still queued, and not waiting behind another deployment. */
export function unpublishedJobs(db: Db, limit: number): Promise<JobRow[]> {
  return db
    .selectFrom("jobs")
    .leftJoin("deployments", "deployments.id", "jobs.deployment_id")
    .selectAll("jobs")
    .where("jobs.published_at", "is", null)
    .where("jobs.state", "=", "queued")
    .where((eb) => eb.or([eb("deployments.waiting", "is", null), eb("deployments.waiting", "=", false)]))
    .orderBy("jobs.created_at")
    .limit(limit)
    .execute();
}

/** Lets the oldest deployment waiting behind the environment's last one go; returns its id. */
export async function promoteWaiting(db: Db, environmentId: string): Promise<string | undefined> {
  const next = await db
    .selectFrom("deployments")
    .select("id")
    .where("environment_id", "=", environmentId)
    .where("waiting", "=", true)
    .where("state", "=", "queued")
    .orderBy("queued_at")
    .limit(1)
    .executeTakeFirst();
  if (!next) return undefined;
  await db.updateTable("deployments").set({ waiting: false }).where("id", "=", next.id).execute();
  return next.id;
}
export async function updateJob(db: Db, id: string, patch: Partial<Omit<JobRow, "spec" | "id" | "error">> & { error?: unknown }): Promise<void> {
  const { error, ...rest } = patch;
  await db
    .updateTable("jobs")
    .set({ ...rest, ...(error !== undefined ? { error: error === null ? null : json(error) } : {}) })
    .where("id", "=", id)
    .execute();
}

/** Jobs of these hosts that have not ended while their deployment's cancellation was requested, by host. */
export async function cancelRequestedJobs(db: Db, hostIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (hostIds.length === 0) return out;
  const rows = await db
    .selectFrom("jobs")
    .innerJoin("deployments", "deployments.id", "jobs.deployment_id")
    .select(["jobs.id", "jobs.host_id"])
    .where("jobs.state", "in", ["queued", "running"])
    .where("jobs.host_id", "in", hostIds)
    .where("deployments.cancel_requested_at", "is not", null)
    .execute();
  for (const r of rows) out.set(r.host_id!, [...(out.get(r.host_id!) ?? []), r.id]);
  return out;
}

/** Environment jobs (stop, start, routes, remove) of an environment that have not ended. */
export function pendingEnvironmentJobs(db: Db, environmentId: string): Promise<JobRow[]> {
  return db.selectFrom("jobs").selectAll().where("environment_id", "=", environmentId).where("state", "in", ["queued", "running"]).where("kind", "=", "environment").execute();
}
