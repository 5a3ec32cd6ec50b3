import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// Environment metrics downsampled to one row per environment, host and minute; request totals for
// Prometheus counters (never pruned, so they only grow); per host the newest sample stored, so a
// batch the agent sends again after a lost answer is not counted twice.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("environment_metrics")
    .addColumn("environment_id", "text", (c) => c.notNull().references("environments.id").onDelete("cascade"))
    .addColumn("host_id", "text", (c) => c.notNull())
    .addColumn("bucket", "timestamptz", (c) => c.notNull())
    .addColumn("requests", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_1xx", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_2xx", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_3xx", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_4xx", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_5xx", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("latency_histogram", sql`double precision[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn("cpu_percent_sum", "double precision", (c) => c.notNull().defaultTo(0))
    .addColumn("cpu_samples", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("memory_bytes_max", "bigint")
    .addPrimaryKeyConstraint("environment_metrics_pk", ["environment_id", "bucket", "host_id"])
    .execute();
  await db.schema.createIndex("environment_metrics_bucket").on("environment_metrics").column("bucket").execute();
  await db.schema
    .createTable("environment_traffic_totals")
    .addColumn("environment_id", "text", (c) => c.primaryKey().references("environments.id").onDelete("cascade"))
    .addColumn("requests", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_1xx", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_2xx", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_3xx", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_4xx", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("status_5xx", "bigint", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createTable("metrics_host_watermarks")
    .addColumn("host_id", "text", (c) => c.primaryKey())
    .addColumn("last_sample_at", "timestamptz", (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("metrics_host_watermarks").execute();
  await db.schema.dropTable("environment_traffic_totals").execute();
  await db.schema.dropTable("environment_metrics").execute();
}
