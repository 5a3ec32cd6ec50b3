import type { FastifyPluginAsync } from "fastify";
import { ENV_NAME_PATTERN } from "@slipway/core";
import type { DataService } from "../data/data.service.js";
import { envParams, idParams } from "./schemas.js";

export const dataRoutes: FastifyPluginAsync<{ data: DataService }> = async (app, { data }) => {
  app.post<{ Params: { app: string; env: string }; Body: { database?: boolean; media?: boolean } }>(
    "/apps/:app/environments/:env/backups",
    {
      schema: {
        summary: "Back up an environment's database and/or media",
        params: envParams,
        body: { type: "object", additionalProperties: false, properties: { database: { type: "boolean", default: true }, media: { type: "boolean", default: true } } },
      },
    },
    async (req, reply) => reply.status(202).send(await data.createBackup(req.principal, req.params.app, req.params.env, { database: req.body?.database ?? true, media: req.body?.media ?? true })),
  );
  app.get<{ Params: { app: string; env: string } }>("/apps/:app/environments/:env/backups", { schema: { summary: "Backups, newest first", params: envParams } }, async (req) =>
    data.listBackups(req.principal, req.params.app, req.params.env),
  );
  app.post<{ Params: { id: string }; Body: { into?: string; confirm?: boolean } }>(
    "/backups/:id/restore",
    {
      schema: {
        summary: "Restore a backup into its environment or another of the same app (needs confirm: true)",
        params: idParams,
        body: { type: "object", additionalProperties: false, properties: { into: { type: "string", pattern: ENV_NAME_PATTERN }, confirm: { type: "boolean" } } },
      },
    },
    async (req, reply) => reply.status(202).send(await data.restore(req.principal, req.params.id, req.body ?? {})),
  );
  app.post<{ Params: { app: string; env: string }; Body: { from: string; database?: boolean; media?: boolean; confirm?: boolean } }>(
    "/apps/:app/environments/:env/content-copies",
    {
      schema: {
        summary: "Replace this environment's database and/or media with another's (a backup of it is taken first)",
        params: envParams,
        body: {
          type: "object",
          additionalProperties: false,
          required: ["from"],
          properties: { from: { type: "string", pattern: ENV_NAME_PATTERN }, database: { type: "boolean", default: true }, media: { type: "boolean", default: true }, confirm: { type: "boolean" } },
        },
      },
    },
    async (req, reply) =>
      reply.status(202).send(await data.contentCopy(req.principal, req.params.app, req.params.env, { from: req.body.from, database: req.body.database ?? true, media: req.body.media ?? true, ...(req.body.confirm !== undefined ? { confirm: req.body.confirm } : {}) })),
  );
  app.get<{ Params: { id: string } }>("/content-copies/:id", { schema: { summary: "A content copy or restore, with live progress", params: idParams } }, async (req) => data.getContentCopy(req.principal, req.params.id));

  const scheduleSchema = {
    type: "object",
    additionalProperties: false,
    required: ["enabled"],
    properties: {
      enabled: { type: "boolean" },
      retention: {
        type: "object",
        additionalProperties: false,
        required: ["daily", "weekly", "monthly"],
        properties: { daily: { type: "integer", minimum: 0, maximum: 365 }, weekly: { type: "integer", minimum: 0, maximum: 520 }, monthly: { type: "integer", minimum: 0, maximum: 1200 } },
      },
    },
  } as const;
  app.get<{ Params: { app: string; env: string } }>("/apps/:app/environments/:env/backup-schedule", { schema: { params: envParams } }, async (req) => data.getSchedule(req.principal, req.params.app, req.params.env));
  app.put<{ Params: { app: string; env: string }; Body: { enabled: boolean; retention?: { daily: number; weekly: number; monthly: number } } }>(
    "/apps/:app/environments/:env/backup-schedule",
    { schema: { summary: "Daily scheduled backups with retention (default on for live: 7 daily, 4 weekly, 12 monthly)", params: envParams, body: scheduleSchema } },
    async (req) => data.setSchedule(req.principal, req.params.app, req.params.env, { enabled: req.body.enabled, retention: req.body.retention ?? { daily: 7, weekly: 4, monthly: 12 } }),
  );
};
