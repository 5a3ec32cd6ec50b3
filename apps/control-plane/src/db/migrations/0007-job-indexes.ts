import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Hot paths of a large fleet: every heartbeat flush asks which of its hosts' jobs that have not
// ended were cancelled, and reports and the API find a deployment's job. Without these both
// scanned the whole (ever-growing) jobs table.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX jobs_active_host ON jobs (host_id) WHERE state IN ('queued','running')`.execute(db);
  await db.schema.createIndex("jobs_deployment").on("jobs").column("deployment_id").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const name of ["jobs_deployment", "jobs_active_host"]) {
    await db.schema.dropIndex(name).ifExists().execute();
  }
}
