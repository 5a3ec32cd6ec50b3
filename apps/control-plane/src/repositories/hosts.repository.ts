import type { Selectable } from "kysely";
import type { Db } from "../db/database.js";
import { json } from "../db/database.js";
import type { HostsTable } from "../db/schema.js";

export type HostRow = Selectable<HostsTable>;

export async function insertHost(db: Db, row: { id: string; name: string; labels: Record<string, string>; credentialHash: string; version: string; capacity: HostRow["capacity"]; ingressAddress?: string }): Promise<void> {
  await db
    .insertInto("hosts")
    .values({
      id: row.id,
      name: row.name,
      labels: json(row.labels),
      credential_hash: row.credentialHash,
      version: row.version,
      capacity: json(row.capacity),
      load: json({ cpu: 0, memoryUsedBytes: 0, diskUsedBytes: 0, containers: 0 }),
      admin_state: "active",
      last_heartbeat_at: new Date(),
      registered_at: new Date(),
      ingress_address: row.ingressAddress || null,
    })
    .execute();
}

export function findHostByCredentialHash(db: Db, hash: string): Promise<HostRow | undefined> {
  return db.selectFrom("hosts").selectAll().where("credential_hash", "=", hash).executeTakeFirst();
}
export function findHost(db: Db, id: string): Promise<HostRow | undefined> {
  return db.selectFrom("hosts").selectAll().where("id", "=", id).executeTakeFirst();
}
export function listHosts(db: Db): Promise<HostRow[]> {
  return db.selectFrom("hosts").selectAll().orderBy("registered_at").execute();
}

/** Records a heartbeat; false when the host is unknown or revoked (its stream must end). */
export async function recordHeartbeat(db: Db, id: string, hb: { at: Date; version: string; capacity: HostRow["capacity"]; load: HostRow["load"]; ingressAddress?: string }): Promise<boolean> {
  const r = await db
    .updateTable("hosts")
    .set({ last_heartbeat_at: hb.at, version: hb.version, capacity: json(hb.capacity), load: json(hb.load), ...(hb.ingressAddress ? { ingress_address: hb.ingressAddress } : {}) })
    .where("id", "=", id)
    .where("admin_state", "!=", "revoked")
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function setHostAdminState(db: Db, id: string, state: HostRow["admin_state"]): Promise<void> {
  await db.updateTable("hosts").set({ admin_state: state }).where("id", "=", id).execute();
}

/** Placement candidates: active hosts seen since `since`, with how many environments each holds. */
export async function placementCandidates(db: Db, since: Date): Promise<Array<{ id: string; labels: Record<string, string>; environments: number; cpu: number }>> {
  const rows = await db
    .selectFrom("hosts")
    .leftJoin("environments", "environments.host_id", "hosts.id")
    .select((eb) => ["hosts.id", "hosts.labels", "hosts.load", eb.fn.count("environments.id").as("n")])
    .where("hosts.admin_state", "=", "active")
    .where("hosts.last_heartbeat_at", ">", since)
    .groupBy(["hosts.id", "hosts.labels", "hosts.load"])
    .execute();
  return rows.map((r) => ({ id: r.id, labels: r.labels, environments: Number(r.n), cpu: Number((r.load as { cpu?: number }).cpu ?? 0) }));
}

export async function environmentsOnHost(db: Db, hostId: string): Promise<Array<{ app: string; environment: string }>> {
  return db
    .selectFrom("environments")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .select(["apps.name as app", "environments.name as environment"])
    .where("environments.host_id", "=", hostId)
    .orderBy("apps.name")
    .execute();
}
