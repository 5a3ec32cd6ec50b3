import { sql } from "kysely";
import type { Db } from "../db/database.js";

/** Sets an app's repository URL (without credential) and its sealed credential (null = none). */
export async function setRepository(db: Db, appId: string, repository: string, credentialSealed: string | null): Promise<void> {
  await db.updateTable("apps").set({ repository, repository_credential_encrypted: credentialSealed, updated_at: new Date() }).where("id", "=", appId).execute();
}

/** Rewrites the repository recorded by an app's "app.created" activity entries (older ones held the URL as typed). */
export async function setCreatedActivityRepository(db: Db, app: string, repository: string): Promise<void> {
  await db
    .updateTable("activity")
    .set({ details: sql`jsonb_set(details, '{repository}', to_jsonb(${repository}::text))` })
    .where("app", "=", app)
    .where("action", "=", "app.created")
    .execute();
}
