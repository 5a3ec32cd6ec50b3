import type { Selectable } from "kysely";
import type { Db } from "../db/database.js";
import type { GitHostKeysTable } from "../db/schema.js";

export type HostKeyRow = Selectable<GitHostKeysTable>;

/** Replaces the app's deploy key. */
export async function setDeployKey(db: Db, appId: string, publicKey: string, privateSealed: string): Promise<void> {
  await db.updateTable("apps").set({ deploy_key_public: publicKey, deploy_key_private_encrypted: privateSealed, updated_at: new Date() }).where("id", "=", appId).execute();
}

/** Stores the key unless the app has one already; answers the key stored. */
export async function setDeployKeyIfMissing(db: Db, appId: string, publicKey: string, privateSealed: string): Promise<{ publicKey: string; privateSealed: string }> {
  await db
    .updateTable("apps")
    .set({ deploy_key_public: publicKey, deploy_key_private_encrypted: privateSealed })
    .where("id", "=", appId)
    .where("deploy_key_private_encrypted", "is", null)
    .execute();
  const row = await db.selectFrom("apps").select(["deploy_key_public", "deploy_key_private_encrypted"]).where("id", "=", appId).executeTakeFirstOrThrow();
  return { publicKey: row.deploy_key_public!, privateSealed: row.deploy_key_private_encrypted! };
}

export function findHostKey(db: Db, host: string): Promise<HostKeyRow | undefined> {
  return db.selectFrom("git_host_keys").selectAll().where("host", "=", host).executeTakeFirst();
}

export function listHostKeys(db: Db): Promise<HostKeyRow[]> {
  return db.selectFrom("git_host_keys").selectAll().orderBy("host").execute();
}

/** Pins on first use: a key pinned meanwhile (another request, another replica) wins. */
export async function insertHostKeyIfMissing(db: Db, row: Omit<HostKeyRow, "pinned_at">): Promise<HostKeyRow> {
  await db.insertInto("git_host_keys").values(row).onConflict((oc) => oc.column("host").doNothing()).execute();
  return (await findHostKey(db, row.host))!;
}

export async function upsertHostKey(db: Db, row: Omit<HostKeyRow, "pinned_at">): Promise<HostKeyRow> {
  const at = new Date();
  await db
    .insertInto("git_host_keys")
    .values({ ...row, pinned_at: at })
    .onConflict((oc) => oc.column("host").doUpdateSet({ keys: row.keys, source: row.source, pinned_by: row.pinned_by, pinned_at: at }))
    .execute();
  return (await findHostKey(db, row.host))!;
}

export async function deleteHostKey(db: Db, host: string): Promise<boolean> {
  const r = await db.deleteFrom("git_host_keys").where("host", "=", host).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}
