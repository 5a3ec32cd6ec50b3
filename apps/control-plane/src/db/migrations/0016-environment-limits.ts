import type { Kysely } from "kysely";

// Frozen in time: no imports of app code.
// An environment's own resource limits ({memoryMb?, cpus?, pids?}; null = the platform's defaults),
// and the last time one of its containers was killed or died unexpectedly ({at, reason, container}).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("environments").addColumn("limits", "jsonb").addColumn("last_incident", "jsonb").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("environments").dropColumn("last_incident").dropColumn("limits").execute();
}
