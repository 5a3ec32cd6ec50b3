import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("api_tokens")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("role", "text", (c) => c.notNull())
    .addColumn("apps", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("revoked_at", "timestamptz")
    .execute();
  await db.schema
    .createTable("join_tokens")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("used_at", "timestamptz")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable("hosts")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("labels", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("credential_hash", "text", (c) => c.notNull().unique())
    .addColumn("version", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("capacity", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("load", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("admin_state", "text", (c) => c.notNull().defaultTo("active"))
    .addColumn("last_heartbeat_at", "timestamptz")
    .addColumn("registered_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable("apps")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("repository", "text", (c) => c.notNull())
    .addColumn("settings", "jsonb", (c) => c.notNull())
    .addColumn("settings_revision", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable("environments")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("app_id", "text", (c) => c.notNull().references("apps.id").onDelete("cascade"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("branch", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("replicas", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("sleep_after_seconds", "integer")
    .addColumn("host_id", "text", (c) => c.references("hosts.id").onDelete("set null"))
    .addColumn("config_revision", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("deployed_config_revision", "integer")
    .addColumn("deployed_settings_revision", "integer")
    .addColumn("deployed_commit", "text")
    .addColumn("current_image", "text")
    .addColumn("last_success_at", "timestamptz")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint("environments_app_name_unique", ["app_id", "name"])
    .execute();
  await db.schema
    .createTable("deployments")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("app_id", "text", (c) => c.notNull().references("apps.id").onDelete("cascade"))
    .addColumn("environment_id", "text", (c) => c.notNull().references("environments.id").onDelete("cascade"))
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("build_mode", "text", (c) => c.notNull())
    .addColumn("commit", "text")
    .addColumn("image", "text")
    .addColumn("steps", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn("error", "jsonb")
    .addColumn("config_revision", "integer", (c) => c.notNull())
    .addColumn("settings_revision", "integer", (c) => c.notNull())
    .addColumn("requested_by", "text", (c) => c.notNull())
    .addColumn("cancel_requested_at", "timestamptz")
    .addColumn("queued_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("started_at", "timestamptz")
    .addColumn("finished_at", "timestamptz")
    .execute();
  await db.schema.createIndex("deployments_env_queued").on("deployments").columns(["environment_id", "queued_at"]).execute();
  // At most one active deployment per environment, enforced by the database itself.
  await sql`CREATE UNIQUE INDEX deployments_one_active ON deployments (environment_id)
    WHERE state IN ('queued','preparing','building','releasing','starting','probing','switching')`.execute(db);
  await db.schema
    .createTable("deployment_logs")
    .addColumn("deployment_id", "text", (c) => c.notNull().references("deployments.id").onDelete("cascade"))
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("at", "timestamptz", (c) => c.notNull())
    .addColumn("text", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("deployment_logs_pk", ["deployment_id", "seq"])
    .execute();
  await db.schema
    .createTable("jobs")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("deployment_id", "text", (c) => c.references("deployments.id").onDelete("cascade"))
    .addColumn("host_id", "text", (c) => c.references("hosts.id").onDelete("set null"))
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("spec", "jsonb", (c) => c.notNull())
    .addColumn("last_seq", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("publish_attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_publish_error", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("published_at", "timestamptz")
    .addColumn("started_at", "timestamptz")
    .addColumn("finished_at", "timestamptz")
    .execute();
  await sql`CREATE INDEX jobs_unpublished ON jobs (created_at) WHERE published_at IS NULL`.execute(db);
  await db.schema
    .createTable("activity")
    .addColumn("id", "serial", (c) => c.primaryKey())
    .addColumn("at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("app", "text")
    .addColumn("environment", "text")
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("details", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
  await db.schema.createIndex("activity_app_env").on("activity").columns(["app", "environment", "id"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ["activity", "jobs", "deployment_logs", "deployments", "environments", "apps", "hosts", "join_tokens", "api_tokens"]) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
