import type { FastifyPluginAsync } from "fastify";
import { sql } from "kysely";
import type { Db } from "../db/database.js";

type Sample = { labels?: Record<string, string>; value: number };

/** Prometheus text exposition (version 0.0.4) of gauges and counters. */
export function exposition(families: Array<{ name: string; help: string; type: "gauge" | "counter"; samples: Sample[] }>): string {
  const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = s.labels && Object.keys(s.labels).length ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${esc(v)}"`).join(",")}}` : "";
      lines.push(`${f.name}${labels} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * `/metrics` for Prometheus (no auth, like `/healthz`): platform series computed
 * from the database at scrape time, so every control plane replica answers the same.
 */
export const metricsRoutes: FastifyPluginAsync<{ db: Db; onlineWindowMs: () => number }> = async (app, { db, onlineWindowMs }) => {
  app.get("/metrics", { schema: { hide: true } }, async (_req, reply) => {
    const since = new Date(Date.now() - onlineWindowMs());
    const hosts = await db.selectFrom("hosts").select(["admin_state", "last_heartbeat_at"]).execute();
    const hostStates = new Map<string, number>();
    for (const h of hosts) {
      const state = h.admin_state === "revoked" ? "revoked" : !h.last_heartbeat_at || h.last_heartbeat_at < since ? "offline" : h.admin_state === "active" ? "online" : h.admin_state;
      hostStates.set(state, (hostStates.get(state) ?? 0) + 1);
    }
    const envs = (await sql<{ state: string; n: string | number }>`SELECT state, count(*) AS n FROM environments GROUP BY state`.execute(db)).rows;
    const deps = (await sql<{ state: string; n: string | number }>`SELECT state, count(*) AS n FROM deployments GROUP BY state`.execute(db)).rows;
    const outbox = (await sql<{ n: string | number }>`SELECT count(*) AS n FROM jobs WHERE published_at IS NULL AND state = 'queued'`.execute(db)).rows[0];
    const body = exposition([
      { name: "slipway_hosts", help: "Hosts by state.", type: "gauge", samples: [...hostStates].map(([state, n]) => ({ labels: { state }, value: n })) },
      { name: "slipway_environments", help: "Environments by state.", type: "gauge", samples: envs.map((r) => ({ labels: { state: r.state }, value: Number(r.n) })) },
      { name: "slipway_deployments_total", help: "Deployments ever requested, by state.", type: "counter", samples: deps.map((r) => ({ labels: { state: r.state }, value: Number(r.n) })) },
      { name: "slipway_jobs_unpublished", help: "Jobs waiting in the outbox (NATS unreachable or no host online).", type: "gauge", samples: [{ value: Number(outbox?.n ?? 0) }] },
    ]);
    return reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8").send(body);
  });
};
