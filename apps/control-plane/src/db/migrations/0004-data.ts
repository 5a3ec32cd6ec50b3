import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Each environment's database password (encrypted), backup schedules, backups and content copies.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("environments")
    .addColumn("db_password_encrypted", "text")
    .addColumn("backup_schedule", "jsonb")
    .execute();
  await db.schema
    .createTable("backups")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("app", "text", (c) => c.notNull())
    .addColumn("environment", "text", (c) => c.notNull())
    .addColumn("environment_id", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("database", "boolean", (c) => c.notNull())
    .addColumn("media", "boolean", (c) => c.notNull())
    .addColumn("database_bytes", "bigint")
    .addColumn("media_bytes", "bigint")
    .addColumn("media_objects", "integer")
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("job_id", "text")
    .addColumn("error", "jsonb")
    .addColumn("requested_by", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("finished_at", "timestamptz")
    .execute();
  await db.schema.createIndex("backups_env_created").on("backups").columns(["environment_id", "created_at"]).execute();
  await db.schema
    .createTable("content_copies")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("app", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("target", "text", (c) => c.notNull())
    .addColumn("source_environment_id", "text", (c) => c.notNull())
    .addColumn("target_environment_id", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("database", "boolean", (c) => c.notNull())
    .addColumn("media", "boolean", (c) => c.notNull())
    .addColumn("phase", "text")
    .addColumn("bytes", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("objects", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("safety_backup_id", "text")
    .addColumn("job_id", "text")
    .addColumn("deployment_id", "text")
    .addColumn("error", "jsonb")
    .addColumn("requested_by", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("finished_at", "timestamptz")
    .execute();
  // One content job per environment at a time, enforced by the database: a restore or copy into it.
  await sql`CREATE UNIQUE INDEX content_one_active ON content_copies (target_environment_id) WHERE state IN ('queued','running')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("content_copies").execute();
  await db.schema.dropTable("backups").execute();
  await db.schema.alterTable("environments").dropColumn("db_password_encrypted").dropColumn("backup_schedule").execute();
}
