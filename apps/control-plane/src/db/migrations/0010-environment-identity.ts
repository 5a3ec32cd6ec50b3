import { sql, type Kysely } from "kysely";

// Frozen in time: no imports of app code.
// What the platform creates for an environment is recorded on the environment, so that no
// name is ever derived twice (and a change of the naming scheme never orphans anything):
// - database_name / database_role: recorded at first provisioning. Null until then; null with a
//   stored database password means an environment provisioned before this migration, under the
//   name derived from app and environment, which the control plane records on first use.
// - media_prefix: the environment's media location in the media bucket. Existing environments
//   keep `<app>/<env>/`, where their media are; new ones get `envs/<id>/`.
// - host_label: the label of the default host name (`<label>.<base domain>`), unique across the
//   platform. Existing environments keep `<app>-<env>`; where two already had the same one (the
//   collision this migration closes), the oldest keeps it and the later get `env-<32 hex of id>`.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("environments")
    .addColumn("database_name", "text")
    .addColumn("database_role", "text")
    .addColumn("media_prefix", "text")
    .addColumn("host_label", "text")
    .execute();
  await sql`UPDATE environments e SET media_prefix = a.name || '/' || e.name || '/' FROM apps a WHERE a.id = e.app_id`.execute(db);
  await sql`
    UPDATE environments e SET host_label = CASE WHEN r.n = 1 THEN r.label ELSE 'env-' || replace(lower(e.id), '-', '') END
    FROM (
      SELECT e2.id, a.name || '-' || e2.name AS label,
             row_number() OVER (PARTITION BY a.name || '-' || e2.name ORDER BY e2.created_at, e2.id) AS n
      FROM environments e2 JOIN apps a ON a.id = e2.app_id
    ) r
    WHERE r.id = e.id`.execute(db);
  await db.schema.alterTable("environments").alterColumn("media_prefix", (c) => c.setNotNull()).execute();
  await db.schema.alterTable("environments").alterColumn("host_label", (c) => c.setNotNull()).execute();
  await db.schema.alterTable("environments").addUniqueConstraint("environments_host_label_unique", ["host_label"]).execute();
  await db.schema.alterTable("environments").addUniqueConstraint("environments_media_prefix_unique", ["media_prefix"]).execute();
  await db.schema.alterTable("environments").addUniqueConstraint("environments_database_name_unique", ["database_name"]).execute();
  await db.schema.alterTable("environments").addUniqueConstraint("environments_database_role_unique", ["database_role"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("environments").dropColumn("database_name").dropColumn("database_role").dropColumn("media_prefix").dropColumn("host_label").execute();
}
