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

export function findDeployment(db: Db, id: string): Promise<DeploymentRow | undefined> {
  return db.selectFrom("deployments").selectAll().where("id", "=", id).executeTakeFirst();
}
/** Locks the row for the rest of the transaction. */
export function findDeploymentForUpdate(db: Db, id: string): Promise<DeploymentRow | undefined> {
  return db.selectFrom("deployments").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
}
/** Newest first (queued_at desc, then id); `before` = a row of the list: only those after it in that order (keyset pagination). */
export function listDeployments(db: Db, environmentId: string, limit: number, before?: { queued_at: Date; id: string }): Promise<DeploymentRow[]> {
  let q = db.selectFrom("deployments").selectAll().where("environment_id", "=", environmentId);
  if (before) q = q.where((eb) => eb.or([eb("queued_at", "<", before.queued_at), eb.and([eb("queued_at", "=", before.queued_at), eb("id", ">", before.id)])]));
  return q.orderBy("queued_at", "desc").orderBy("id").limit(limit).execute();
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
/** A deployment of the environment queued behind its running one, if any. */
export function findWaitingDeployment(db: Db, environmentId: string): Promise<DeploymentRow | undefined> {
  return db.selectFrom("deployments").selectAll().where("environment_id", "=", environmentId).where("waiting", "=", true).where("state", "=", "queued").orderBy("queued_at").limit(1).executeTakeFirst();
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
/**
 * The environment's successful deployments whose images the agent keeps, newest first: one per
 * image (its newest), the last `images` distinct images (as the agent's janitor keeps them).
 */
export async function rollbackCandidates(db: Db, environmentId: string, images: number): Promise<DeploymentRow[]> {
  const rows = await db
    .selectFrom("deployments")
    .selectAll()
    .where("environment_id", "=", environmentId)
    .where("state", "=", "succeeded")
    .where("image", "is not", null)
    .orderBy("finished_at", "desc")
    .limit(images * 10)
    .execute();
  const seen = new Set<string>();
  const out: DeploymentRow[] = [];
  for (const r of rows) {
    if (seen.has(r.image!)) continue;
    seen.add(r.image!);
    out.push(r);
    if (out.length === images) break;
  }
  return out;
}
/** The newest successful deployment of the environment that shipped `image`. */
export function latestSucceededWithImage(db: Db, environmentId: string, image: string): Promise<DeploymentRow | undefined> {
  return db.selectFrom("deployments").selectAll().where("environment_id", "=", environmentId).where("state", "=", "succeeded").where("image", "=", image).orderBy("finished_at", "desc").limit(1).executeTakeFirst();
}
/** Everything but the lifecycle (state, started/finished times, error): those are the lifecycle module's. */
export async function updateDeployment(db: Db, id: string, patch: Partial<Omit<DeploymentRow, "steps" | "error" | "state" | "started_at" | "finished_at">> & { steps?: StepRecord[] }): Promise<void> {
  const { steps, ...rest } = patch;
  await db
    .updateTable("deployments")
    .set({ ...rest, ...(steps !== undefined ? { steps: json(steps) } : {}) })
    .where("id", "=", id)
    .execute();
}

/** Stores a report's log lines in one statement; a line already stored (a retried batch) is skipped. */
export async function appendLogs(db: Db, deploymentId: string, lines: Array<{ seq: number; at: Date; text: string }>): Promise<void> {
  // 1,000 rows (4,000 parameters) a statement: far below PostgreSQL's 65,535, whatever a build prints in one batch.
  for (let i = 0; i < lines.length; i += 1_000) {
    await db
      .insertInto("deployment_logs")
      .values(lines.slice(i, i + 1_000).map((l) => ({ deployment_id: deploymentId, seq: l.seq, at: l.at, text: l.text })))
      .onConflict((oc) => oc.doNothing())
      .execute();
  }
}
export function readLog(db: Db, deploymentId: string, afterSeq: number): Promise<Array<{ seq: number; text: string }>> {
  return db.selectFrom("deployment_logs").select(["seq", "text"]).where("deployment_id", "=", deploymentId).where("seq", ">", afterSeq).orderBy("seq").limit(5000).execute();
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

/** Publication bookkeeping and host assignment; the state is the lifecycle module's. */
export async function updateJob(db: Db, id: string, patch: Partial<Pick<JobRow, "host_id" | "published_at" | "publish_attempts" | "last_publish_error">>): Promise<void> {
  await db.updateTable("jobs").set(patch).where("id", "=", id).execute();
}
/** The last event seq stored for a job: events at or below it are repeats. */
export async function setJobLastSeq(db: Db, id: string, lastSeq: number): Promise<void> {
  await db.updateTable("jobs").set({ last_seq: lastSeq }).where("id", "=", id).where("last_seq", "<", lastSeq).execute();
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
