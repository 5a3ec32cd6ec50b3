import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// A deployment requested with `queue: true` while another runs waits (state queued,
// waiting = true) and is not published until the running one ends.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("deployments").addColumn("waiting", "boolean", (c) => c.notNull().defaultTo(false)).execute();
  await sql`DROP INDEX deployments_one_active`.execute(db);
  await sql`CREATE UNIQUE INDEX deployments_one_active ON deployments (environment_id)
    WHERE state IN ('queued','preparing','building','releasing','starting','probing','switching') AND NOT waiting`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX deployments_one_active`.execute(db);
  await db.schema.alterTable("deployments").dropColumn("waiting").execute();
  await sql`CREATE UNIQUE INDEX deployments_one_active ON deployments (environment_id)
    WHERE state IN ('queued','preparing','building','releasing','starting','probing','switching')`.execute(db);
}
