import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Issue 16: work that must run once among several control-plane replicas (backup scheduler,
// pruning, certificate renewal) runs while a replica holds its lease. One row per lease name;
// expiry is in the database's clock (now()), so the replicas' clocks do not matter. `token` grows
// with every new holder (a fencing token); a released lease keeps its row with expires_at = now().
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("leases")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("holder", "text", (c) => c.notNull())
    .addColumn("token", "bigint", (c) => c.notNull())
    .addColumn("acquired_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("renewed_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("leases").execute();
}
