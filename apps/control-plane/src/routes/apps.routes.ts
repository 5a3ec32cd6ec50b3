import type { FastifyPluginAsync } from "fastify";
import { NAME_PATTERN, appSettingsPatchSchema, type AppSettingsPatch } from "@slipway/core";
import type { AppService } from "../services/app.service.js";
import { appParams, branchSchema, envParams } from "./schemas.js";

export const appRoutes: FastifyPluginAsync<{ apps: AppService }> = async (app, { apps }) => {
  app.post<{ Body: { name: string; repository: string; settings?: AppSettingsPatch } }>(
    "/apps",
    {
      schema: {
        summary: "Create an application with its test and live environments",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name", "repository"],
          properties: {
            name: { type: "string", pattern: NAME_PATTERN },
            repository: { type: "string", minLength: 1, maxLength: 2000 },
            settings: appSettingsPatchSchema,
          },
        },
      },
    },
    async (req, reply) => reply.status(201).send(await apps.create(req.principal, req.body)),
  );
  app.get("/apps", { schema: { summary: "List applications" } }, async (req) => apps.list(req.principal));
  app.get<{ Params: { app: string } }>("/apps/:app", { schema: { params: appParams } }, async (req) => apps.get(req.principal, req.params.app));
  app.patch<{ Params: { app: string }; Body: AppSettingsPatch }>(
    "/apps/:app/settings",
    { schema: { summary: "Change application settings", params: appParams, body: appSettingsPatchSchema } },
    async (req) => apps.patchSettings(req.principal, req.params.app, req.body),
  );

  app.get<{ Params: { app: string } }>("/apps/:app/environments", { schema: { params: appParams } }, async (req) =>
    apps.listEnvironments(req.principal, req.params.app),
  );
  app.get<{ Params: { app: string; env: string } }>("/apps/:app/environments/:env", { schema: { params: envParams } }, async (req) =>
    apps.getEnvironment(req.principal, req.params.app, req.params.env),
  );
  app.patch<{ Params: { app: string; env: string }; Body: { branch?: string; replicas?: number; sleepAfterSeconds?: number | null } }>(
    "/apps/:app/environments/:env",
    {
      schema: {
        params: envParams,
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            branch: branchSchema,
            replicas: { type: "integer", minimum: 1, maximum: 20 },
            sleepAfterSeconds: { anyOf: [{ type: "integer", minimum: 10, maximum: 30 * 86400 }, { type: "null" }] },
          },
        },
      },
    },
    async (req) => apps.patchEnvironment(req.principal, req.params.app, req.params.env, req.body),
  );
};
