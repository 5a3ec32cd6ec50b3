import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Issue 15, certificates issued in one place: the installation's ACME account (one per directory
// URL, its key sealed by the control plane's secret box) and one row per set of host names (its
// private key sealed, the chain in PEM). `ordering_until` is the order lock: a replica takes it
// with a conditional UPDATE (free or expired) before it places an order, so at most one order per
// set of host names runs at a time, and a replica that dies mid-order frees it when it expires.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("acme_accounts")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("directory_url", "text", (c) => c.notNull().unique())
    .addColumn("key_encrypted", "text", (c) => c.notNull())
    .addColumn("contact", "text")
    .addColumn("account_url", "text")
    .addColumn("thumbprint", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable("certificates")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("hostnames_key", "text", (c) => c.notNull().unique())
    .addColumn("hostnames", "jsonb", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull().defaultTo("pending"))
    .addColumn("private_key_encrypted", "text")
    .addColumn("certificate_chain", "text")
    .addColumn("serial", "text")
    .addColumn("not_before", "timestamptz")
    .addColumn("not_after", "timestamptz")
    .addColumn("last_error", "text")
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("next_attempt_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("ordering_until", "timestamptz")
    .addColumn("ordering_by", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex("certificates_next_attempt_at").on("certificates").column("next_attempt_at").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("certificates").ifExists().execute();
  await db.schema.dropTable("acme_accounts").ifExists().execute();
}
