import { sql, type Selectable } from "kysely";
import type { Db } from "../db/database.js";
import { json } from "../db/database.js";
import type { DeploymentsTable, EnvironmentsTable, JobsTable } from "../db/schema.js";
import type { ResourceLimits } from "@slipway/core";

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
/**
 * Claims up to `limit` jobs still without a host for the rest of `trx`, in the order they were queued,
 * after `after` (keyset: a run goes through them all, so jobs waiting for room do not hold back the
 * ones behind them). Rows another transaction holds (another control plane placing them) are skipped,
 * never waited for. Safe to call concurrently from any number of replicas.
 */
export function claimUnplacedJobs(trx: Db, limit: number, after?: Pick<JobRow, "created_at" | "id">): Promise<JobRow[]> {
  let q = publishable(trx).where("jobs.host_id", "is", null);
  if (after) q = q.where((eb) => eb.or([eb("jobs.created_at", ">", after.created_at), eb.and([eb("jobs.created_at", "=", after.created_at), eb("jobs.id", ">", after.id)])]));
  return q.orderBy("jobs.created_at").orderBy("jobs.id").limit(limit).forUpdate("jobs").skipLocked().execute();
}

/**
 * The environment's placement, its row locked for the rest of `trx` (placement writes it): undefined
 * when another transaction holds the row (skipped, not waited for: whoever holds it may be placing
 * it) or when it no longer exists.
 */
export function lockEnvironmentPlacement(trx: Db, id: string): Promise<Selectable<EnvironmentsTable> | undefined> {
  return trx.selectFrom("environments").selectAll().where("id", "=", id).forUpdate().skipLocked().executeTakeFirst();
}

/** Writes the job's host once: false when it already has one (the first choice stands). */
export async function assignJobHost(db: Db, id: string, hostId: string): Promise<boolean> {
  const r = await db.updateTable("jobs").set({ host_id: hostId }).where("id", "=", id).where("host_id", "is", null).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/**
 * Claims up to `limit` placed, unpublished jobs for publication, locked for the rest of `trx`;
 * rows another transaction holds are skipped (another control plane publishes them).
 */
export function claimPublishableJobs(trx: Db, limit: number): Promise<JobRow[]> {
  return publishable(trx).where("jobs.host_id", "is not", null).orderBy("jobs.created_at").orderBy("jobs.id").limit(limit).forUpdate("jobs").skipLocked().execute();
}

/** Marks jobs published (each once: a job already marked keeps its time and count). */
export async function markJobsPublished(db: Db, ids: string[], at: Date): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable("jobs")
    .set((eb) => ({ published_at: at, publish_attempts: eb("publish_attempts", "+", 1), last_publish_error: null }))
    .where("id", "in", ids)
    .where("published_at", "is", null)
    .execute();
}

/** A failed publication: counted, its error kept for the API; the job stays in the outbox. */
export async function recordPublishFailure(db: Db, id: string, error: string): Promise<void> {
  await db
    .updateTable("jobs")
    .set((eb) => ({ publish_attempts: eb("publish_attempts", "+", 1), last_publish_error: error }))
    .where("id", "=", id)
    .execute();
}

type PlacedRequest = { id: string; name: string; limits: Partial<ResourceLimits> | null; replicas: number };

/**
 * What takes room on these hosts, in one statement, by host: the environments placed on them
 * (`placed`), and those on their way to them (`moving`): a move (a deployment with
 * `moved_from_host_id`, its target in `host_id`) not ended yet, the environment still placed
 * elsewhere, each once per target.
 */
export async function roomTakers(db: Db, hostIds: string[]): Promise<{ placed: Map<string, PlacedRequest[]>; moving: Map<string, PlacedRequest[]> }> {
  const placed = new Map<string, PlacedRequest[]>();
  const moving = new Map<string, PlacedRequest[]>();
  if (hostIds.length === 0) return { placed, moving };
  const rows = await db
    .selectFrom("environments")
    .select(["id", "name", "limits", "replicas", "host_id as host", sql<boolean>`false`.as("moving")])
    .where("host_id", "in", hostIds)
    .unionAll(
      db
        .selectFrom("deployments")
        .innerJoin("environments", "environments.id", "deployments.environment_id")
        .select(["environments.id", "environments.name", "environments.limits", "environments.replicas", "deployments.host_id as host", sql<boolean>`true`.as("moving")])
        .where("deployments.host_id", "in", hostIds)
        .where("deployments.moved_from_host_id", "is not", null)
        .where("deployments.state", "in", ["queued", "preparing", "building", "releasing", "starting", "probing", "switching"])
        .whereRef("environments.host_id", "is distinct from", "deployments.host_id"),
    )
    .execute();
  for (const r of rows) {
    const into = r.moving ? moving : placed;
    const list = into.get(r.host!) ?? [];
    if (!list.some((e) => e.id === r.id)) list.push({ id: r.id, name: r.name, limits: r.limits, replicas: r.replicas });
    into.set(r.host!, list);
  }
  return { placed, moving };
}

/**
 * Serializes placement decisions across every control plane sharing the database until `trx` ends:
 * placement reads the room hosts have and then writes its choice, and two deciding at once could both
 * see room for one more. A transaction-level advisory lock (released at commit or rollback, also when
 * the process dies); in PGlite (one process) it is the same lock, uncontended.
 */
export async function lockPlacementDecisions(trx: Db): Promise<void> {
  await sql`select pg_advisory_xact_lock(${SLIPWAY_LOCKS}::int, ${PLACEMENT_LOCK}::int)`.execute(trx);
}
/**
 * Two-key advisory locks are a key space apart from one-key ones (hashtext(...) elsewhere): the
 * first key is Slipway's ("slwp" in ASCII), the second says which lock.
 */
const SLIPWAY_LOCKS = 0x736c7770;
const PLACEMENT_LOCK = 1;

function publishable(db: Db) {
  return db
    .selectFrom("jobs")
    .selectAll("jobs")
    .where("jobs.published_at", "is", null)
    .where("jobs.state", "=", "queued")
    .where((eb) => eb.not(eb.exists(eb.selectFrom("deployments").select("deployments.id").whereRef("deployments.id", "=", "jobs.deployment_id").where("deployments.waiting", "=", true))));
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
