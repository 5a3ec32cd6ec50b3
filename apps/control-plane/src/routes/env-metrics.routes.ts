import type { FastifyPluginAsync } from "fastify";
import type { MetricsService } from "../metrics/metrics.service.js";
import { envParams } from "./schemas.js";

const nullableNumber = { type: ["number", "null"] } as const;
const count = { type: "integer" } as const;

/** `GET /v1/apps/{app}/environments/{env}/metrics`: one point per minute, oldest first. */
export const envMetricsRoutes: FastifyPluginAsync<{ metrics: MetricsService }> = async (app, { metrics }) => {
  app.get<{ Params: { app: string; env: string }; Querystring: { since?: string } }>(
    "/apps/:app/environments/:env/metrics",
    {
      schema: {
        summary: "Requests, status classes, latency percentiles, CPU and memory of an environment per minute (default: the last hour)",
        params: envParams,
        querystring: { type: "object", additionalProperties: false, properties: { since: { type: "string", maxLength: 64, description: "ISO 8601 time" } } },
        response: {
          200: {
            type: "object",
            properties: {
              series: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    at: { type: "string", format: "date-time" },
                    requests: count,
                    status: { type: "object", properties: { "1xx": count, "2xx": count, "3xx": count, "4xx": count, "5xx": count } },
                    latencyMs: { type: "object", properties: { p50: nullableNumber, p95: nullableNumber, p99: nullableNumber } },
                    cpuPercent: nullableNumber,
                    memoryBytes: nullableNumber,
                  },
                },
              },
            },
          },
        },
      },
    },
    async (req) => metrics.series(req.principal, req.params.app, req.params.env, req.query.since),
  );
};
