import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Environment variables (encrypted), custom domains, basic auth, and jobs that act on
// an environment without a deployment (stop, start, routes, remove).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("environment_variables")
    .addColumn("environment_id", "text", (c) => c.notNull().references("environments.id").onDelete("cascade"))
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("value_encrypted", "text", (c) => c.notNull())
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("environment_variables_pk", ["environment_id", "key"])
    .execute();
  await db.schema
    .createTable("domains")
    .addColumn("hostname", "text", (c) => c.primaryKey())
    .addColumn("environment_id", "text", (c) => c.notNull().references("environments.id").onDelete("cascade"))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .alterTable("environments")
    .addColumn("basic_auth_username", "text")
    .addColumn("basic_auth_digest", "text")
    .addColumn("secret_key_encrypted", "text")
    .execute();
  await db.schema.alterTable("jobs").addColumn("environment_id", "text").addColumn("error", "jsonb").execute();
  await sql`CREATE INDEX jobs_environment ON jobs (environment_id) WHERE environment_id IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX jobs_environment`.execute(db);
  await db.schema.alterTable("jobs").dropColumn("environment_id").dropColumn("error").execute();
  await db.schema.alterTable("environments").dropColumn("basic_auth_username").dropColumn("basic_auth_digest").dropColumn("secret_key_encrypted").execute();
  await db.schema.dropTable("domains").execute();
  await db.schema.dropTable("environment_variables").execute();
}
