import type { FastifyPluginAsync } from "fastify";
import { NAME_PATTERN, ENV_NAME_PATTERN } from "@slipway/core";
import type { Db } from "../db/database.js";
import { listActivity } from "../repositories/activity.repository.js";
import { requireAdmin, requireApp } from "../services/auth.service.js";

export const activityRoutes: FastifyPluginAsync<{ db: Db }> = async (app, { db }) => {
  app.get<{ Querystring: { app?: string; env?: string; before?: number; limit?: number } }>(
    "/activity",
    {
      schema: {
        summary: "Activity feed, newest first; `id` is what GET /v1/activity/events resumes after",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            app: { type: "string", pattern: NAME_PATTERN },
            env: { type: "string", pattern: ENV_NAME_PATTERN },
            // Activity ids are PostgreSQL integers (serial): a larger cursor is refused as bad input, not sent to the database.
            before: { type: "integer", minimum: 1, maximum: 2147483647, description: "only entries older than this id (the last `id` of the previous page): the next page" },
            limit: { type: "integer", minimum: 1, maximum: 500, default: 100 },
          },
        },
      },
    },
    async (req) => {
      if (req.query.app) requireApp(req.principal, req.query.app);
      else requireAdmin(req.principal);
      const rows = await listActivity(db, { ...(req.query.app ? { app: req.query.app } : {}), ...(req.query.env ? { environment: req.query.env } : {}), ...(req.query.before !== undefined ? { before: req.query.before } : {}), limit: req.query.limit ?? 100 });
      return rows.map((r) => ({ id: r.id, at: r.at.toISOString(), actor: r.actor, app: r.app, environment: r.environment, action: r.action, details: r.details }));
    },
  );
};
