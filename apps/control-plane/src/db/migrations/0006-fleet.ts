import type { Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Where other hosts reach a host's ingress (for drains), and which host a deployment runs on.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("hosts").addColumn("ingress_address", "text").execute();
  await db.schema.alterTable("deployments").addColumn("host_id", "text").addColumn("moved_from_host_id", "text").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("deployments").dropColumn("host_id").dropColumn("moved_from_host_id").execute();
  await db.schema.alterTable("hosts").dropColumn("ingress_address").execute();
}
