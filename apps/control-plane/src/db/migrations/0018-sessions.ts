import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Issue 14, browser sessions: a session is bound to the API token it was signed in with (its
// role, apps and expiry are the token's); the secret in the cookie is stored only as its
// SHA-256 hash, like tokens. Deleting a token deletes its sessions; revoking one deletes them
// in the same transaction (the control plane does that, the join on every use refuses them too).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("sessions")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("secret_hash", "text", (c) => c.notNull().unique())
    .addColumn("token_id", "text", (c) => c.notNull().references("api_tokens.id").onDelete("cascade"))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("last_used_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("sessions_token_id").on("sessions").column("token_id").execute();
  await db.schema.createIndex("sessions_expires_at").on("sessions").column("expires_at").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("sessions").ifExists().execute();
}
