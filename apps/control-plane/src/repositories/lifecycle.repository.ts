import { sql } from "kysely";
import type { Db } from "../db/database.js";
import { json } from "../db/database.js";
import type { DeploymentKind } from "../db/schema.js";
import type { EnvironmentRow } from "./apps.repository.js";
import type { DeploymentRow, JobRow } from "./deployments.repository.js";
import { clearForwards } from "./forwards.repository.js";
import { insertOrConflict } from "./unique-violation.js";

// The only statements that write lifecycle columns: environments.state, desired_state,
// observed_state and host_id, deployments.state and jobs.state. Only the lifecycle
// module (services/lifecycle.service.ts) imports this file (a lint rule says so).

/**
 * Locks the environment's row for the rest of the transaction and reads, in
 * the same round trip, what its state derives from besides the row: whether a
 * deployment runs (not one waiting behind it) and how the last one ended.
 */
export async function lockEnvironmentFacts(db: Db, id: string): Promise<(EnvironmentRow & { deploying: boolean; last_state: string | null }) | undefined> {
  return db
    .selectFrom("environments as e")
    .selectAll("e")
    .select((eb) => [
      eb
        .exists(
          eb
            .selectFrom("deployments as d")
            .select("d.id")
            .whereRef("d.environment_id", "=", "e.id")
            .where("d.waiting", "=", false)
            .where("d.state", "in", ["queued", "preparing", "building", "releasing", "starting", "probing", "switching"]),
        )
        .as("deploying"),
      eb
        .selectFrom("deployments as f")
        .select("f.state")
        .whereRef("f.environment_id", "=", "e.id")
        .where("f.state", "in", ["succeeded", "failed", "cancelled"])
        .orderBy("f.finished_at", "desc")
        .limit(1)
        .as("last_state"),
    ])
    .where("e.id", "=", id)
    .forUpdate()
    .executeTakeFirst() as Promise<(EnvironmentRow & { deploying: boolean; last_state: string | null }) | undefined>;
}

/** What an agent's report records on a deployment besides its state. */
export interface DeploymentRecord {
  steps?: unknown[];
  commit?: string;
  image?: string;
  imageDigest?: string;
}

export async function writeEnvironmentState(db: Db, id: string, state: string): Promise<void> {
  await db.updateTable("environments").set({ state, updated_at: new Date() }).where("id", "=", id).execute();
}
export async function writeDesiredState(db: Db, id: string, desired: string): Promise<void> {
  await db.updateTable("environments").set({ desired_state: desired, updated_at: new Date() }).where("id", "=", id).execute();
}
export async function writeObservedState(db: Db, id: string, observed: string | null): Promise<void> {
  await db.updateTable("environments").set({ observed_state: observed, updated_at: new Date() }).where("id", "=", id).execute();
}
export async function writePlacement(db: Db, ids: string[], hostId: string | null): Promise<void> {
  if (ids.length === 0) return;
  await db.updateTable("environments").set({ host_id: hostId, updated_at: new Date() }).where("id", "in", ids).execute();
  // Placed on a host that forwarded it (moved back): it serves there itself now.
  if (hostId) await clearForwards(db, ids, hostId);
}
/** What a successful deployment leaves: the image, commit and revisions that now serve. */
export async function writeDeployedFacts(
  db: Db,
  id: string,
  facts: Pick<EnvironmentRow, "deployed_commit" | "current_image" | "deployed_config_revision" | "deployed_settings_revision" | "last_success_at">,
): Promise<void> {
  await db.updateTable("environments").set({ ...facts, updated_at: new Date() }).where("id", "=", id).execute();
}

/**
 * Of what hosts report, the observations that differ from what is stored,
 * for environments placed on the reporting host that no deployment owns.
 */
export async function changedObservations(db: Db, observed: Array<{ hostId: string; environmentId: string; state: string }>): Promise<Array<{ environmentId: string; state: string }>> {
  if (observed.length === 0) return [];
  const values = sql.join(observed.map((o) => sql`(${o.environmentId}::text, ${o.hostId}::text, ${o.state}::text)`));
  const r = await sql<{ id: string; state: string }>`
    SELECT e.id, v.state
      FROM environments AS e
      JOIN (VALUES ${values}) AS v(id, host_id, state) ON e.id = v.id AND e.host_id = v.host_id
     WHERE e.state <> 'deploying' AND e.observed_state IS DISTINCT FROM v.state
     ORDER BY e.id`.execute(db);
  return r.rows.map((x) => ({ environmentId: x.id, state: x.state }));
}

type NewDeploymentRow = { id: string; appId: string; environmentId: string; buildMode: string; configRevision: number; settingsRevision: number; requestedBy: string; waiting: boolean; hostId: string | null; movedFromHostId: string | null; kind?: DeploymentKind; sourceDeploymentId?: string | null; promotedFrom?: string | null };

function deploymentValues(row: NewDeploymentRow) {
  return {
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
    waiting: row.waiting,
    host_id: row.hostId,
    moved_from_host_id: row.movedFromHostId,
    kind: row.kind ?? "deploy",
    source_deployment_id: row.sourceDeploymentId ?? null,
    promoted_from: row.promotedFrom ?? null,
    queued_at: new Date(),
    started_at: null,
    finished_at: null,
  };
}

/** A deployment and its job in one statement (the job in a data-modifying WITH; its foreign key is checked at the statement's end). */
export async function insertDeploymentAndJob(db: Db, row: NewDeploymentRow, job: NewJobRow): Promise<DeploymentRow> {
  return insertOrConflict(
    db
      .with("job", (qb) => qb.insertInto("jobs").values(jobValues(job)))
      .insertInto("deployments")
      .values(deploymentValues(row))
      .returningAll()
      .executeTakeFirstOrThrow(),
  );
}

/** The deployment's state, with what the same report recorded (steps, commit, image) in the same statement. */
export async function writeDeploymentState(db: Db, id: string, state: string, extra: { startedAt?: Date; finishedAt?: Date; error?: unknown; record?: DeploymentRecord } = {}): Promise<void> {
  await db
    .updateTable("deployments")
    .set({
      state,
      ...(extra.record?.steps ? { steps: json(extra.record.steps) } : {}),
      ...(extra.record?.commit ? { commit: extra.record.commit } : {}),
      ...(extra.record?.image ? { image: extra.record.image } : {}),
      ...(extra.record?.imageDigest ? { image_digest: extra.record.imageDigest } : {}),
      ...(extra.startedAt ? { started_at: extra.startedAt } : {}),
      ...(extra.finishedAt ? { finished_at: extra.finishedAt } : {}),
      ...(extra.error !== undefined ? { error: extra.error === null ? null : json(extra.error) } : {}),
    })
    .where("id", "=", id)
    .execute();
}

/** Lets the oldest deployment waiting behind the environment's last one go; returns it. */
export async function releaseWaitingDeployment(db: Db, environmentId: string): Promise<DeploymentRow | undefined> {
  const next = await db
    .selectFrom("deployments")
    .selectAll()
    .where("environment_id", "=", environmentId)
    .where("waiting", "=", true)
    .where("state", "=", "queued")
    .orderBy("queued_at")
    .limit(1)
    .executeTakeFirst();
  if (!next) return undefined;
  await db.updateTable("deployments").set({ waiting: false }).where("id", "=", next.id).execute();
  return next;
}

type NewJobRow = { id: string; kind: string; deploymentId: string | null; hostId: string | null; spec: unknown; environmentId?: string | null };

function jobValues(row: NewJobRow) {
  return {
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
  };
}

export async function insertJobRow(db: Db, row: NewJobRow): Promise<void> {
  await db.insertInto("jobs").values(jobValues(row)).execute();
}

export async function writeJobState(db: Db, job: Pick<JobRow, "id" | "started_at" | "finished_at">, state: string, at: Date, terminal: boolean, error?: unknown): Promise<void> {
  await db
    .updateTable("jobs")
    .set({
      state,
      ...(state === "running" && !job.started_at ? { started_at: at } : {}),
      ...(terminal && !job.finished_at ? { finished_at: at } : {}),
      ...(error !== undefined ? { error: error === null ? null : json(error) } : {}),
    })
    .where("id", "=", job.id)
    .execute();
}
