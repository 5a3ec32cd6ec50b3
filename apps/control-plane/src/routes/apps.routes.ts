import type { FastifyPluginAsync } from "fastify";
import { NAME_PATTERN, appSettingsPatchSchema, type AppSettingsPatch } from "@slipway/core";
import type { AppService } from "../services/app.service.js";
import { appParams, envParams } from "./schemas.js";
import type { EnvironmentService } from "../services/environment.service.js";
import { environmentRoutes } from "./environments.routes.js";

export const appRoutes: FastifyPluginAsync<{ apps: AppService; environments: EnvironmentService }> = async (app, { apps, environments }) => {
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

  app.put<{ Params: { app: string }; Body: { url: string; token?: string | null; username?: string } }>(
    "/apps/:app/repository",
    {
      schema: {
        summary: "Change the app's repository URL and/or its access token (sealed, never shown again; null removes it)",
        params: appParams,
        body: {
          type: "object",
          additionalProperties: false,
          required: ["url"],
          properties: {
            url: { type: "string", minLength: 1, maxLength: 2000 },
            token: { anyOf: [{ type: "string", minLength: 1, maxLength: 1000, pattern: "^[^\\s]+$" }, { type: "null" }] },
            username: { type: "string", minLength: 1, maxLength: 200, pattern: "^[^\\s:@/]+$" },
          },
        },
      },
    },
    async (req) => apps.setRepository(req.principal, req.params.app, req.body),
  );
  app.get<{ Params: { app: string } }>("/apps/:app/environments", { schema: { params: appParams } }, async (req) =>
    apps.listEnvironments(req.principal, req.params.app),
  );
  app.get<{ Params: { app: string; env: string } }>("/apps/:app/environments/:env", { schema: { params: envParams } }, async (req) =>
    apps.getEnvironment(req.principal, req.params.app, req.params.env),
  );
  await app.register(environmentRoutes, { environments });
};
