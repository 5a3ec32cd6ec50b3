import type { FastifyPluginAsync } from "fastify";
import type { Db } from "../db/database.js";
import type { EnvironmentSnapshot } from "../metrics/metrics.service.js";
import { platformCounts } from "../repositories/stats.repository.js";
import { incidentCounts } from "../repositories/apps.repository.js";
import { listIssuedCertificates } from "../repositories/certificates.repository.js";

type Sample = { labels?: Record<string, string>; value: number };
type Family = { name: string; help: string; type: "gauge" | "counter"; samples: Sample[] };

const CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx"] as const;

/**
 * Per-environment series: request counters from the totals (they only grow,
 * so pruning old minutes never looks like a counter reset), and the newest
 * stored minute's latency percentiles, CPU and memory as gauges.
 */
export function environmentFamilies(envs: EnvironmentSnapshot[]): Family[] {
  const requests: Sample[] = [];
  const latency: Sample[] = [];
  const cpu: Sample[] = [];
  const memory: Sample[] = [];
  for (const e of envs) {
    const env = { app: e.app, environment: e.environment };
    if (e.totals) {
      CLASSES.forEach((c, i) => requests.push({ labels: { ...env, status_class: c }, value: e.totals!.status[i]! }));
      // Requests that got no status (the client or the app went away first).
      const other = e.totals.requests - e.totals.status.reduce((a, b) => a + b, 0);
      if (other > 0) requests.push({ labels: { ...env, status_class: "none" }, value: other });
    }
    const last = e.last;
    if (!last) continue;
    for (const [q, v] of [["0.5", last.latencyMs.p50], ["0.95", last.latencyMs.p95], ["0.99", last.latencyMs.p99]] as const) {
      if (v !== null) latency.push({ labels: { ...env, quantile: q }, value: v });
    }
    if (last.cpuPercent !== null) cpu.push({ labels: env, value: last.cpuPercent });
    if (last.memoryBytes !== null) memory.push({ labels: env, value: last.memoryBytes });
  }
  return [
    { name: "slipway_environment_requests_total", help: "Requests through the ingress per environment, by status class.", type: "counter", samples: requests },
    { name: "slipway_environment_latency_ms", help: "Request latency percentiles at the ingress over the newest stored minute, in milliseconds.", type: "gauge", samples: latency },
    { name: "slipway_environment_cpu_percent", help: "CPU of the environment's containers over the newest stored minute, in percent of one core.", type: "gauge", samples: cpu },
    { name: "slipway_environment_memory_bytes", help: "Memory of the environment's containers, highest reading of the newest stored minute.", type: "gauge", samples: memory },
  ];
}

/** Prometheus text exposition (version 0.0.4) of gauges and counters. */
export function exposition(families: Family[]): string {
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
export const metricsRoutes: FastifyPluginAsync<{ db: Db; onlineWindowMs: () => number; environments?: () => Promise<EnvironmentSnapshot[]> }> = async (app, { db, onlineWindowMs, environments }) => {
  app.get("/metrics", { schema: { hide: true } }, async (_req, reply) => {
    const since = new Date(Date.now() - onlineWindowMs());
    const { hosts, environments: envs, deployments: deps, unpublishedJobs } = await platformCounts(db);
    const hostStates = new Map<string, number>();
    for (const h of hosts) {
      const state = h.admin_state === "revoked" ? "revoked" : !h.last_heartbeat_at || h.last_heartbeat_at < since ? "offline" : h.admin_state === "active" ? "online" : h.admin_state;
      hostStates.set(state, (hostStates.get(state) ?? 0) + 1);
    }
    const body = exposition([
      { name: "slipway_hosts", help: "Hosts by state.", type: "gauge", samples: [...hostStates].map(([state, n]) => ({ labels: { state }, value: n })) },
      { name: "slipway_environments", help: "Environments by state.", type: "gauge", samples: envs.map((r) => ({ labels: { state: r.state }, value: r.n })) },
      { name: "slipway_deployments_total", help: "Deployments ever requested, by state.", type: "counter", samples: deps.map((r) => ({ labels: { state: r.state }, value: r.n })) },
      { name: "slipway_jobs_unpublished", help: "Jobs waiting in the outbox (NATS unreachable or no host online).", type: "gauge", samples: [{ value: unpublishedJobs }] },
      {
        name: "slipway_container_kills_total",
        help: "Web containers of the environment killed (out of memory) since it was created.",
        type: "counter",
        samples: (await incidentCounts(db)).map((r) => ({ labels: { app: r.app, environment: r.environment, reason: "oom" }, value: r.count })),
      },
      {
        // The end of validity as a Unix timestamp (alert on `… - time() < 7*86400`): stable between
        // scrapes, unlike seconds left, and what node_exporter's ssl and blackbox's probe_ssl_earliest_cert_expiry use.
        name: "slipway_certificate_expiry_timestamp_seconds",
        help: "End of validity (notAfter, Unix seconds) of the certificate the control plane holds for each domain.",
        type: "gauge",
        samples: (await listIssuedCertificates(db)).flatMap((c) => c.hostnames.map((domain) => ({ labels: { domain }, value: Math.floor(c.not_after!.getTime() / 1000) }))),
      },
      ...(environments ? environmentFamilies(await environments()) : []),
    ]);
    return reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8").send(body);
  });
};
