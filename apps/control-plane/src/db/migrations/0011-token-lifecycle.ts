import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// API tokens that expire, show when they were last used, and know which one is the bootstrap
// admin token (SLIPWAY_ADMIN_TOKEN or the generated one), so that replacing it revokes the old one.
// The role column is text: the new "viewer" role needs no change.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("api_tokens")
    .addColumn("expires_at", "timestamptz")
    .addColumn("last_used_at", "timestamptz")
    .addColumn("bootstrap", "boolean", (c) => c.notNull().defaultTo(false))
    .execute();
  // Before this migration the bootstrap token was the one named so; rotations left several behind,
  // all marked here: the next start with SLIPWAY_ADMIN_TOKEN revokes every one but its own.
  await sql`UPDATE api_tokens SET bootstrap = true WHERE name = 'bootstrap-admin' AND role = 'admin'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("api_tokens").dropColumn("expires_at").dropColumn("last_used_at").dropColumn("bootstrap").execute();
}
