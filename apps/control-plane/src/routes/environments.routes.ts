import type { FastifyPluginAsync } from "fastify";
import { ENV_NAME_PATTERN, HOST_LABEL_KEY_PATTERN, HOST_LABEL_VALUE_PATTERN, NAME_PATTERN, resourceLimitsPatchSchema, type ResourceLimits } from "@slipway/core";
import type { EnvironmentService } from "../services/environment.service.js";
import { appParams, branchSchema, envParams } from "./schemas.js";

const variablesBody = {
  type: "object",
  maxProperties: 500,
  // null first: with the API's type coercion, a string-first union would turn null into "".
  // Numbers and booleans are taken as their string form, as a shell would.
  additionalProperties: { type: ["null", "string"] },
} as const;

/** Placement constraints: the labels (SLIPWAY_AGENT_LABELS) a host must have to run the environment. */
const hostLabelsSchema = {
  type: "object",
  maxProperties: 16,
  propertyNames: { pattern: HOST_LABEL_KEY_PATTERN },
  additionalProperties: { type: "string", pattern: HOST_LABEL_VALUE_PATTERN },
} as const;

export const environmentRoutes: FastifyPluginAsync<{ environments: EnvironmentService }> = async (app, { environments }) => {
  app.post<{ Params: { app: string }; Body: { name: string; branch?: string; basedOn?: string; hostLabels?: Record<string, string> } }>(
    "/apps/:app/environments",
    {
      schema: {
        summary: "Add an environment, from scratch or based on another (branch, variables and settings copied)",
        params: appParams,
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name"],
          properties: { name: { type: "string", pattern: ENV_NAME_PATTERN }, branch: branchSchema, basedOn: { type: "string", pattern: ENV_NAME_PATTERN }, hostLabels: hostLabelsSchema },
        },
      },
    },
    async (req, reply) => reply.status(201).send(await environments.create(req.principal, req.params.app, req.body)),
  );
  app.delete<{ Params: { app: string; env: string }; Querystring: { confirm?: string } }>(
    "/apps/:app/environments/:env",
    { schema: { summary: "Remove an environment and everything it runs (not test or live)", params: envParams, querystring: { type: "object", properties: { confirm: { type: "string" } } } } },
    async (req, reply) => {
      await environments.remove(req.principal, req.params.app, req.params.env, req.query.confirm);
      return reply.status(202).send({ removed: `${req.params.app}/${req.params.env}` });
    },
  );
  app.delete<{ Params: { app: string }; Querystring: { confirm?: string } }>(
    "/apps/:app",
    { schema: { summary: "Remove an app with all its environments", params: appParams, querystring: { type: "object", properties: { confirm: { type: "string" } } } } },
    async (req, reply) => {
      await environments.removeApp(req.principal, req.params.app, req.query.confirm);
      return reply.status(202).send({ removed: req.params.app });
    },
  );
  app.patch<{ Params: { app: string; env: string }; Body: { branch?: string; replicas?: number; sleepAfterSeconds?: number | null; basicAuth?: { username: string; password: string } | null; hostLabels?: Record<string, string>; limits?: Partial<ResourceLimits> | null; autoDeploy?: boolean; https?: { redirect?: boolean; hstsMaxAgeSeconds?: number } } }>(
    "/apps/:app/environments/:env",
    {
      schema: {
        params: envParams,
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            branch: branchSchema,
            replicas: { type: "integer", minimum: 1, maximum: 10 },
            // One schema, not anyOf: with type coercion on, anyOf's null branch would take a refused 0 as null ("never sleeps").
            sleepAfterSeconds: { type: ["integer", "null"], minimum: 1, maximum: 30 * 86400 },
            hostLabels: hostLabelsSchema,
            autoDeploy: { type: "boolean", description: "a push to the environment's branch deploys it (default: on, off for live)" },
            // Memory (MiB), CPU (cores) and processes per container; null = the platform's defaults again.
            limits: resourceLimitsPatchSchema,
            // HTTP → HTTPS (308) for the host names whose certificate is served; HSTS on HTTPS (needs the redirect).
            https: {
              type: "object",
              additionalProperties: false,
              minProperties: 1,
              properties: { redirect: { type: "boolean" }, hstsMaxAgeSeconds: { type: "integer", minimum: 0, maximum: 63_072_000 } },
            },
            basicAuth: {
              anyOf: [
                {
                  type: "object",
                  additionalProperties: false,
                  required: ["username", "password"],
                  properties: { username: { type: "string", pattern: "^[^:\\s]{1,100}$" }, password: { type: "string", minLength: 8, maxLength: 200 } },
                },
                { type: "null" },
              ],
            },
          },
        },
      },
    },
    async (req) => environments.patch(req.principal, req.params.app, req.params.env, req.body),
  );
  app.get<{ Params: { app: string; env: string } }>(
    "/apps/:app/environments/:env/pending",
    { schema: { summary: "What the next deployment would bring: undeployed commits and unapplied changes (by name, never values)", params: envParams } },
    async (req) => environments.pending(req.principal, req.params.app, req.params.env),
  );

  app.get<{ Params: { app: string; env: string }; Querystring: { reveal?: boolean } }>(
    "/apps/:app/environments/:env/variables",
    { schema: { summary: "The environment's variables (values masked unless ?reveal=true by an admin)", params: envParams, querystring: { type: "object", properties: { reveal: { type: "boolean" } } } } },
    async (req) => environments.getVariables(req.principal, req.params.app, req.params.env, req.query.reveal === true),
  );
  app.put<{ Params: { app: string; env: string }; Body: Record<string, string | null> }>(
    "/apps/:app/environments/:env/variables",
    { schema: { summary: "Replace the variables", params: envParams, body: variablesBody } },
    async (req) => environments.setVariables(req.principal, req.params.app, req.params.env, req.body, "put"),
  );
  app.patch<{ Params: { app: string; env: string }; Body: Record<string, string | null> }>(
    "/apps/:app/environments/:env/variables",
    { schema: { summary: "Merge variables; null deletes a key", params: envParams, body: variablesBody } },
    async (req) => environments.setVariables(req.principal, req.params.app, req.params.env, req.body, "patch"),
  );

  app.get<{ Params: { app: string; env: string } }>(
    "/apps/:app/environments/:env/domains",
    { schema: { summary: "The custom domains, each with its certificate: state (none, pending, valid, failed), serial, notAfter, lastError, nextAttemptAt", params: envParams } },
    async (req) => environments.listDomains(req.principal, req.params.app, req.params.env),
  );
  app.post<{ Params: { app: string; env: string }; Body: { hostname: string } }>(
    "/apps/:app/environments/:env/domains",
    {
      schema: {
        summary: "Add a custom domain (unique across the platform)",
        params: envParams,
        body: { type: "object", additionalProperties: false, required: ["hostname"], properties: { hostname: { type: "string", minLength: 1, maxLength: 253 } } },
      },
    },
    async (req, reply) => reply.status(201).send(await environments.addDomain(req.principal, req.params.app, req.params.env, req.body.hostname)),
  );
  app.delete<{ Params: { app: string; env: string; hostname: string } }>(
    "/apps/:app/environments/:env/domains/:hostname",
    {
      schema: {
        params: {
          type: "object",
          required: ["app", "env", "hostname"],
          properties: { app: { type: "string", pattern: NAME_PATTERN }, env: { type: "string", pattern: ENV_NAME_PATTERN }, hostname: { type: "string", maxLength: 253 } },
        },
      },
    },
    async (req) => environments.removeDomain(req.principal, req.params.app, req.params.env, req.params.hostname),
  );

  for (const action of ["stop", "start"] as const) {
    app.post<{ Params: { app: string; env: string } }>(`/apps/:app/environments/:env/${action}`, { schema: { summary: `${action} the environment's containers`, params: envParams } }, async (req, reply) =>
      reply.status(202).send(await environments.setRunning(req.principal, req.params.app, req.params.env, action)),
    );
  }
};
