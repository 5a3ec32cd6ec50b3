import { sql } from "kysely";
import type { Db } from "../db/database.js";

/** What `/metrics` counts across the platform, read at scrape time. */
export async function platformCounts(db: Db): Promise<{
  hosts: Array<{ admin_state: string; last_heartbeat_at: Date | null }>;
  environments: Array<{ state: string; n: number }>;
  deployments: Array<{ state: string; n: number }>;
  unpublishedJobs: number;
}> {
  const hosts = await db.selectFrom("hosts").select(["admin_state", "last_heartbeat_at"]).execute();
  // count(*) is a string from pg and a number from PGlite: normalised here.
  const envs = (await sql<{ state: string; n: string | number }>`SELECT state, count(*) AS n FROM environments GROUP BY state`.execute(db)).rows;
  const deps = (await sql<{ state: string; n: string | number }>`SELECT state, count(*) AS n FROM deployments GROUP BY state`.execute(db)).rows;
  const outbox = (await sql<{ n: string | number }>`SELECT count(*) AS n FROM jobs WHERE published_at IS NULL AND state = 'queued'`.execute(db)).rows[0];
  return {
    hosts,
    environments: envs.map((r) => ({ state: r.state, n: Number(r.n) })),
    deployments: deps.map((r) => ({ state: r.state, n: Number(r.n) })),
    unpublishedJobs: Number(outbox?.n ?? 0),
  };
}
