import { sql, type Selectable } from "kysely";
import type { Db } from "../db/database.js";
import { json } from "../db/database.js";
import type { HostsTable, ServedCertificateRecord } from "../db/schema.js";
import { insertOrConflict } from "./unique-violation.js";
import { nameCovers, type ResourceLimits } from "@slipway/core";

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

/** Makes `publicKey` the host's NATS user; a key another host holds violates hosts_nats_public_key_key. */
export async function setHostNatsKey(db: Db, id: string, publicKey: string): Promise<void> {
  await insertOrConflict(db.updateTable("hosts").set({ nats_public_key: publicKey }).where("id", "=", id).execute());
}

/** The NATS users of the fleet: every host not revoked whose agent gave a key. */
export function listNatsUsers(db: Db): Promise<Array<{ id: string; nats_public_key: string }>> {
  return db
    .selectFrom("hosts")
    .select(["id", "nats_public_key"])
    .where("admin_state", "!=", "revoked")
    .where("nats_public_key", "is not", null)
    .orderBy("id")
    .execute() as Promise<Array<{ id: string; nats_public_key: string }>>;
}

export interface HeartbeatRecord {
  hostId: string;
  at: Date;
  version: string;
  capacity: HostRow["capacity"];
  load: HostRow["load"];
  ingressAddress?: string;
}

/**
 * Records many hosts' heartbeats in one UPDATE; answers the ids of the hosts that exist and are
 * not revoked (the others' streams must end). The rows go as six arrays (`unnest`), not as six
 * parameters per row: a statement of constant size whatever the batch (2,000 beats were 12,000
 * parameters, each built, serialized and parsed on its own).
 */
export async function recordHeartbeats(db: Db, beats: HeartbeatRecord[]): Promise<Set<string>> {
  // One row per host (the latest beat), in id order so concurrent writers lock rows in the same order.
  const latest = new Map<string, HeartbeatRecord>();
  for (const b of beats) latest.set(b.hostId, b);
  const rows = [...latest.values()].sort((a, b) => (a.hostId < b.hostId ? -1 : 1));
  if (rows.length === 0) return new Set();
  const r = await sql<{ id: string }>`
      UPDATE hosts AS h
         SET last_heartbeat_at = v.at, version = v.version, capacity = v.capacity, load = v.load,
             ingress_address = coalesce(v.ingress, h.ingress_address)
        FROM unnest(${rows.map((b) => b.hostId)}::text[], ${rows.map((b) => b.at.toISOString())}::timestamptz[], ${rows.map((b) => b.version)}::text[],
                    ${rows.map((b) => json(b.capacity))}::jsonb[], ${rows.map((b) => json(b.load))}::jsonb[], ${rows.map((b) => b.ingressAddress || null)}::text[])
             AS v(id, at, version, capacity, load, ingress)
       WHERE h.id = v.id AND h.admin_state <> 'revoked'
   RETURNING h.id`.execute(db);
  return new Set(r.rows.map((row) => row.id));
}

/** Records one heartbeat; false when the host is unknown or revoked. */
export async function recordHeartbeat(db: Db, id: string, hb: Omit<HeartbeatRecord, "hostId">): Promise<boolean> {
  return (await recordHeartbeats(db, [{ hostId: id, ...hb }])).has(id);
}

/** What a host's ingress serves now, as its agent reported it; false when the host is unknown or revoked. */
export async function recordServedCertificates(db: Db, id: string, served: ServedCertificateRecord[], at: Date): Promise<boolean> {
  const r = await db.updateTable("hosts").set({ served_certificates: json(served), served_certificates_at: at }).where("id", "=", id).where("admin_state", "<>", "revoked").executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** Of `hostIds`, those that reported serving a certificate for each of `hostnames` (exact or by a `*.` name), with its serial and expiry. */
export async function hostsServing(db: Db, hostnames: readonly string[], hostIds: readonly string[]): Promise<Map<string, Array<{ hostId: string; host: string; serial: string; notAfter: string }>>> {
  const out = new Map<string, Array<{ hostId: string; host: string; serial: string; notAfter: string }>>(hostnames.map((h) => [h, []]));
  if (hostnames.length === 0 || hostIds.length === 0) return out;
  const rows = await db.selectFrom("hosts").select(["id", "name", "served_certificates"]).where("id", "in", hostIds).where("served_certificates", "is not", null).where("admin_state", "<>", "revoked").orderBy("name").execute();
  for (const r of rows) {
    for (const c of r.served_certificates ?? []) {
      for (const h of hostnames) if (c.hostnames.some((n) => nameCovers(n, h))) out.get(h)!.push({ hostId: r.id, host: r.name, serial: c.serial, notAfter: c.notAfter });
    }
  }
  return out;
}

export async function setHostAdminState(db: Db, id: string, state: HostRow["admin_state"]): Promise<void> {
  await db.updateTable("hosts").set({ admin_state: state }).where("id", "=", id).execute();
}

/** Placement candidates: active hosts seen since `since` (only `only` when given: one host's room, not every host's). */
export async function placementCandidates(db: Db, since: Date, only?: string): Promise<Array<{ id: string; name: string; labels: Record<string, string>; cpu: number; capacity: HostRow["capacity"] }>> {
  let q = db.selectFrom("hosts").select(["id", "name", "labels", "load", "capacity"]).where("admin_state", "=", "active").where("last_heartbeat_at", ">", since);
  if (only !== undefined) q = q.where("id", "=", only);
  const rows = await q.execute();
  return rows.map((r) => ({ id: r.id, name: r.name, labels: r.labels, cpu: Number((r.load as { cpu?: number }).cpu ?? 0), capacity: { cpus: Number(r.capacity?.cpus ?? 0), memoryBytes: Number(r.capacity?.memoryBytes ?? 0), diskBytes: Number(r.capacity?.diskBytes ?? 0) } }));
}

/** The environments placed on these hosts, with what decides their request (name for live's defaults, limits, replicas). */
export async function placedEnvironments(db: Db, hostIds: string[]): Promise<Map<string, Array<{ id: string; name: string; limits: Partial<ResourceLimits> | null; replicas: number }>>> {
  const out = new Map<string, Array<{ id: string; name: string; limits: Partial<ResourceLimits> | null; replicas: number }>>();
  if (hostIds.length === 0) return out;
  const rows = await db.selectFrom("environments").select(["id", "name", "limits", "replicas", "host_id"]).where("host_id", "in", hostIds).execute();
  for (const r of rows) out.set(r.host_id!, [...(out.get(r.host_id!) ?? []), { id: r.id, name: r.name, limits: r.limits, replicas: r.replicas }]);
  return out;
}

/** The environments placed on each of these hosts (all hosts when none are given), by host id. */
export async function environmentsOnHosts(db: Db, hostIds?: string[]): Promise<Map<string, Array<{ app: string; environment: string }>>> {
  const out = new Map<string, Array<{ app: string; environment: string }>>();
  if (hostIds && hostIds.length === 0) return out;
  let q = db
    .selectFrom("environments")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .select(["environments.host_id", "apps.name as app", "environments.name as environment"])
    .where("environments.host_id", "is not", null)
    .orderBy("apps.name")
    .orderBy("environments.name");
  if (hostIds) q = q.where("environments.host_id", "in", hostIds);
  for (const r of await q.execute()) out.set(r.host_id!, [...(out.get(r.host_id!) ?? []), { app: r.app, environment: r.environment }]);
  return out;
}

/** The environments placed on a host, with what a drain needs to move them. */
export function environmentsPlacedOn(db: Db, hostId: string): Promise<Array<{ id: string; name: string; current_image: string | null; host_labels: Record<string, string>; limits: Partial<ResourceLimits> | null; replicas: number; app: string }>> {
  return db
    .selectFrom("environments")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .select(["environments.id", "environments.name", "environments.current_image", "environments.host_labels", "environments.limits", "environments.replicas", "apps.name as app"])
    .where("environments.host_id", "=", hostId)
    .execute();
}

/** Each environment on a draining host, with the deployment moving it away (if one runs). */
export function drainProgress(db: Db, hostId: string): Promise<Array<{ app: string; environment: string; deployment: string | null; state: string | null }>> {
  return db
    .selectFrom("environments")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .leftJoin("deployments", (j) => j.onRef("deployments.environment_id", "=", "environments.id").on("deployments.moved_from_host_id", "=", hostId).on("deployments.state", "not in", ["succeeded", "failed", "cancelled"]))
    .select(["apps.name as app", "environments.name as environment", "deployments.id as deployment", "deployments.state as state"])
    .where("environments.host_id", "=", hostId)
    .execute();
}

/** The deployments that moved (or try to move) environments off a host since `since`, newest first. */
export function movesFromHost(db: Db, hostId: string, since: Date): Promise<Array<{ app: string; environment: string; environment_id: string; host_id: string | null; deployment: string; state: string; error: unknown }>> {
  return db
    .selectFrom("deployments")
    .innerJoin("environments", "environments.id", "deployments.environment_id")
    .innerJoin("apps", "apps.id", "environments.app_id")
    .select(["apps.name as app", "environments.name as environment", "environments.id as environment_id", "environments.host_id", "deployments.id as deployment", "deployments.state", "deployments.error"])
    .where("deployments.moved_from_host_id", "=", hostId)
    .where("deployments.queued_at", ">=", since)
    .orderBy("deployments.queued_at", "desc")
    .execute();
}
