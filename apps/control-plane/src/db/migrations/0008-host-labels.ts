import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Placement constraints of an environment: the labels a host must have to run it.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("environments").addColumn("host_labels", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("environments").dropColumn("host_labels").execute();
}
