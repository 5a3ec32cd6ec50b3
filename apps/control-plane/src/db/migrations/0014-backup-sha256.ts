import type { Kysely } from "kysely";

// Frozen in time: no imports of app code.
// The sha256 of a backup's database archive, as the agent computed it while pg_dump wrote it.
// A restore checks the archive against this record (kept apart from the archive and its
// manifest, which live in the same bucket) before touching the target.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("backups").addColumn("database_sha256", "text").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("backups").dropColumn("database_sha256").execute();
}
