import type { Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Each environment's own storage identity, under an isolating storage provider (radosgw): the
// bucket its media live in and the keys its containers get (the secret encrypted by the control
// plane's secret box). Null for environments whose media are under a prefix of the platform's
// shared media bucket (the shared provider, and environments created before a switch).
// storage_ready: the provider confirmed the identity and bucket exist.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("environments")
    .addColumn("media_bucket", "text")
    .addColumn("storage_access_key", "text")
    .addColumn("storage_secret_encrypted", "text")
    .addColumn("storage_ready", "boolean", (c) => c.notNull().defaultTo(false))
    .execute();
  await db.schema.alterTable("environments").addUniqueConstraint("environments_media_bucket_unique", ["media_bucket"]).execute();
  await db.schema.alterTable("environments").addUniqueConstraint("environments_storage_access_key_unique", ["storage_access_key"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("environments").dropConstraint("environments_storage_access_key_unique").execute();
  await db.schema.alterTable("environments").dropConstraint("environments_media_bucket_unique").execute();
  await db.schema.alterTable("environments").dropColumn("storage_ready").dropColumn("storage_secret_encrypted").dropColumn("storage_access_key").dropColumn("media_bucket").execute();
}
