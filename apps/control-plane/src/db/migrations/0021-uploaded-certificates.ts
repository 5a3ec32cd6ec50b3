import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Issue 15, certificates an admin uploads: `source` says who keeps a row, the ACME scheduler
// ('acme', every row before this migration) or an admin ('uploaded': never ordered or renewed,
// replaced by uploading again for the same names, removable). An uploaded row's
// `hostnames_key` is "uploaded:" + the names joined with ",", so it never takes the unique key,
// the order lock or the due list of an ACME row for the same names: both may exist; the API and
// GetJobSpec prefer the uploaded one while it is valid.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("certificates").addColumn("source", "text", (c) => c.notNull().defaultTo("acme")).execute();
  await db.schema.alterTable("certificates").addColumn("uploaded_by", "text").execute();
  await db.schema.createIndex("certificates_source").on("certificates").column("source").execute();
  await sql`alter table certificates add constraint certificates_source_check check (source in ('acme', 'uploaded'))`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table certificates drop constraint if exists certificates_source_check`.execute(db);
  await db.schema.dropIndex("certificates_source").ifExists().execute();
  await db.schema.alterTable("certificates").dropColumn("uploaded_by").execute();
  await db.schema.alterTable("certificates").dropColumn("source").execute();
}
