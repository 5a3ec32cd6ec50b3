import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Issue 13, from a git host to production:
// - apps: the app's SSH deploy key (public in clear, private sealed by the secret box), its push
//   webhook's secret (sealed), and how often its repository is polled (null = the default, 0 = never).
// - environments: whether a push to its branch deploys it (null = the default: on, except live).
// - deployments: what kind it is (deploy, promote, rollback), what it came from, and the digest
//   (image id) of the image it shipped.
// - git_host_keys: the SSH host keys of git hosts, pinned on first use or given by an admin.
// - webhook_deliveries: the deliveries seen per app (a repeated delivery id is ignored).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("apps")
    .addColumn("deploy_key_public", "text")
    .addColumn("deploy_key_private_encrypted", "text")
    .addColumn("webhook_secret_encrypted", "text")
    .addColumn("poll_interval_seconds", "integer")
    .execute();
  await db.schema.alterTable("environments").addColumn("auto_deploy", "boolean").execute();
  await db.schema
    .alterTable("deployments")
    .addColumn("kind", "text", (c) => c.notNull().defaultTo("deploy"))
    .addColumn("source_deployment_id", "text")
    .addColumn("promoted_from", "text")
    .addColumn("image_digest", "text")
    .execute();
  await db.schema
    .createTable("git_host_keys")
    .addColumn("host", "text", (c) => c.primaryKey())
    .addColumn("keys", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("pinned_by", "text", (c) => c.notNull())
    .addColumn("pinned_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable("webhook_deliveries")
    .addColumn("app_id", "text", (c) => c.notNull().references("apps.id").onDelete("cascade"))
    .addColumn("delivery_id", "text", (c) => c.notNull())
    .addColumn("provider", "text", (c) => c.notNull())
    .addColumn("received_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("webhook_deliveries_pkey", ["app_id", "delivery_id"])
    .execute();
  await db.schema.createIndex("webhook_deliveries_received_at").on("webhook_deliveries").column("received_at").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("webhook_deliveries").execute();
  await db.schema.dropTable("git_host_keys").execute();
  await db.schema.alterTable("deployments").dropColumn("image_digest").dropColumn("promoted_from").dropColumn("source_deployment_id").dropColumn("kind").execute();
  await db.schema.alterTable("environments").dropColumn("auto_deploy").execute();
  await db.schema.alterTable("apps").dropColumn("poll_interval_seconds").dropColumn("webhook_secret_encrypted").dropColumn("deploy_key_private_encrypted").dropColumn("deploy_key_public").execute();
}
