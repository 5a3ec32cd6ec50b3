import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// An environment's state is derived from what the user asked (desired_state: running, stopped)
// and what its host last reported (observed_state: running, sleeping, stopped; null before the
// first report), written apart; `state` keeps the derived lifecycle state.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("environments")
    .addColumn("desired_state", "text", (c) => c.notNull().defaultTo("running"))
    .addColumn("observed_state", "text")
    .execute();
  await sql`UPDATE environments SET desired_state = 'stopped' WHERE state = 'stopped'`.execute(db);
  await sql`UPDATE environments SET observed_state = state WHERE state IN ('running', 'sleeping', 'stopped')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("environments").dropColumn("desired_state").dropColumn("observed_state").execute();
}
