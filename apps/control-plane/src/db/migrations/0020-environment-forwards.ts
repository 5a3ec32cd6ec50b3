import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Issue 15, every host that serves a domain gets its certificate: after a drain the old host keeps
// serving the environment's host names by forwarding them to the new host (a handoff job). Each such
// host is recorded here, so a certificate issued or replaced later reaches it too, and the
// environment's removal clears it. A row goes when the environment is placed on that host again.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("environment_forwards")
    .addColumn("environment_id", "text", (c) => c.notNull().references("environments.id").onDelete("cascade"))
    .addColumn("host_id", "text", (c) => c.notNull().references("hosts.id").onDelete("cascade"))
    .addColumn("forward_to", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("environment_forwards_pkey", ["environment_id", "host_id"])
    .execute();
  await db.schema.createIndex("environment_forwards_host_id").on("environment_forwards").column("host_id").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("environment_forwards").ifExists().execute();
}
