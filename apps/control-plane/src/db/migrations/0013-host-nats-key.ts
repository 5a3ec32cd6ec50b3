import type { Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Each host's NATS identity: the public nkey its agent generated (the seed never leaves the agent).
// The control plane makes it a NATS user allowed only the host's own subjects; one key, one host.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("hosts").addColumn("nats_public_key", "text").execute();
  await db.schema.createIndex("hosts_nats_public_key_key").unique().on("hosts").column("nats_public_key").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("hosts_nats_public_key_key").execute();
  await db.schema.alterTable("hosts").dropColumn("nats_public_key").execute();
}
