import type { Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Issue 15: what each host's ingress serves, as its agent reports it in heartbeats (host names,
// serial, expiry; never a key), so the API can say which hosts serve a domain's certificate.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("hosts").addColumn("served_certificates", "jsonb").addColumn("served_certificates_at", "timestamptz").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("hosts").dropColumn("served_certificates_at").dropColumn("served_certificates").execute();
}
