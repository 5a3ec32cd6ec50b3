import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Issue 15: per environment, HTTP → HTTPS (308) for its host names whose certificate is served,
// and the HSTS max-age its HTTPS responses carry (0 = no Strict-Transport-Security).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("environments")
    .addColumn("https_redirect", "boolean", (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("hsts_max_age_seconds", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("environments").dropColumn("hsts_max_age_seconds").dropColumn("https_redirect").execute();
}
