import type { Db } from "../db/database.js";

/** Hosts that forward a moved environment's host names (migration 0020). */
export interface ForwardRow {
  environment_id: string;
  host_id: string;
  forward_to: string;
}

/** Records (or re-points) the forward of an environment on a host. */
export async function recordForward(db: Db, environmentId: string, hostId: string, forwardTo: string): Promise<void> {
  await db
    .insertInto("environment_forwards")
    .values({ environment_id: environmentId, host_id: hostId, forward_to: forwardTo, created_at: new Date() })
    .onConflict((oc) => oc.columns(["environment_id", "host_id"]).doUpdateSet({ forward_to: forwardTo }))
    .execute();
}

/** The forwards of these environments, on hosts not revoked (a revoked host gets no job). */
export async function listForwards(db: Db, environmentIds: readonly string[]): Promise<ForwardRow[]> {
  if (environmentIds.length === 0) return [];
  return db
    .selectFrom("environment_forwards as f")
    .innerJoin("hosts as h", "h.id", "f.host_id")
    .select(["f.environment_id", "f.host_id", "f.forward_to"])
    .where("f.environment_id", "in", environmentIds)
    .where("h.admin_state", "<>", "revoked")
    .orderBy("f.created_at")
    .execute();
}

/** An environment placed on a host again serves there itself: that host's forward of it ends. */
export async function clearForwards(db: Db, environmentIds: readonly string[], hostId: string): Promise<void> {
  if (environmentIds.length === 0) return;
  await db.deleteFrom("environment_forwards").where("environment_id", "in", environmentIds).where("host_id", "=", hostId).execute();
}

/**
 * The environments serving a host name that one of `names` covers: custom domains (exact, or one
 * label under a `*.` name) and default host names `<host_label>.<baseDomain>` (a `*.<baseDomain>`
 * name covers them all).
 */
export async function environmentsServing(db: Db, names: readonly string[], baseDomain: string): Promise<string[]> {
  const ids = new Set<string>();
  const base = baseDomain.toLowerCase();
  const exact = names.filter((n) => !n.startsWith("*.")).map((n) => n.toLowerCase());
  const wild = names.filter((n) => n.startsWith("*.")).map((n) => n.slice(2).toLowerCase());
  if (exact.length > 0) {
    for (const r of await db.selectFrom("domains").select("environment_id").where("hostname", "in", exact).execute()) ids.add(r.environment_id);
    const labels = exact.filter((n) => n.endsWith(`.${base}`) && !n.slice(0, -base.length - 1).includes(".")).map((n) => n.slice(0, -base.length - 1));
    if (labels.length > 0) for (const r of await db.selectFrom("environments").select("id").where("host_label", "in", labels).execute()) ids.add(r.id);
  }
  for (const suffix of wild) {
    const rows = await db.selectFrom("domains").select(["environment_id", "hostname"]).where("hostname", "like", `%.${suffix.replace(/[\\%_]/g, (c) => `\\${c}`)}`).execute();
    for (const r of rows) if (!r.hostname.slice(0, -suffix.length - 1).includes(".")) ids.add(r.environment_id);
    if (suffix === base) for (const r of await db.selectFrom("environments").select("id").execute()) ids.add(r.id);
  }
  return [...ids];
}
