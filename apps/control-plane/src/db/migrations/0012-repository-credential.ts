import type { Kysely } from "kysely";

// Frozen in time: no imports of app code.
// The credential of an app's repository URL (its userinfo), encrypted by the control plane's
// secret box; `apps.repository` keeps the URL without it. Existing plain-text credentials are
// moved at start by the control plane (a migration has no key to encrypt with).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("apps").addColumn("repository_credential_encrypted", "text").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("apps").dropColumn("repository_credential_encrypted").execute();
}
