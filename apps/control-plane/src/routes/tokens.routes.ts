import type { FastifyPluginAsync } from "fastify";
import { NAME_PATTERN } from "@slipway/core";
import { ROLES, requireAdmin, type AuthService, type Role } from "../services/auth.service.js";
import { idParams } from "./schemas.js";

/** A token as the API shows it; the serializer drops anything else, so no secret or hash can slip out. */
const tokenView = {
  type: "object",
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    role: { type: "string", enum: ROLES },
    apps: { type: "array", items: { type: "string" } },
    bootstrap: { type: "boolean", description: "the token SLIPWAY_ADMIN_TOKEN set (or generated at the first start); a new SLIPWAY_ADMIN_TOKEN revokes it" },
    createdAt: { type: "string", format: "date-time" },
    expiresAt: { type: ["string", "null"], format: "date-time" },
    lastUsedAt: { type: ["string", "null"], format: "date-time", description: "to the minute" },
    revokedAt: { type: ["string", "null"], format: "date-time" },
  },
  required: ["id", "name", "role", "apps", "bootstrap", "createdAt", "expiresAt", "lastUsedAt", "revokedAt"],
} as const;

export const tokenRoutes: FastifyPluginAsync<{ auth: AuthService; joinTokenTtlMs: number }> = async (app, { auth, joinTokenTtlMs }) => {
  // Everything here is an admin's; refused before the body is even validated.
  app.addHook("onRequest", async (req) => requireAdmin(req.principal));

  app.post<{ Body: { name: string; role: Role; apps?: string[]; expiresAt?: string } }>(
    "/tokens",
    {
      schema: {
        summary: "Create an API token (the secret is shown once). admin: everything; deployer: its apps; viewer: reads its apps",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name", "role"],
          properties: {
            name: { type: "string", minLength: 1, maxLength: 100 },
            role: { type: "string", enum: ROLES },
            apps: { type: "array", items: { type: "string", pattern: NAME_PATTERN }, maxItems: 1000, description: "required for deployer and viewer" },
            expiresAt: { type: "string", format: "date-time", description: "a time in the future; afterwards the token gets 401" },
          },
        },
        response: { 201: { type: "object", properties: { token: { type: "string" }, ...tokenView.properties }, required: ["token", ...tokenView.required] } },
      },
    },
    async (req, reply) => {
      const { token, view } = await auth.createToken(req.principal, req.body);
      return reply.status(201).send({ token, ...view });
    },
  );
  app.get("/tokens", { schema: { summary: "API tokens, revoked and expired ones too (never their secrets)", response: { 200: { type: "array", items: tokenView } } } }, async (req) =>
    auth.listTokens(req.principal),
  );
  app.delete<{ Params: { id: string } }>(
    "/tokens/:id",
    { schema: { summary: "Revoke an API token: refused from its very next call (the last admin token cannot be revoked)", params: idParams, response: { 200: tokenView } } },
    async (req) => auth.revokeToken(req.principal, req.params.id),
  );
  app.post("/join-tokens", { schema: { summary: "Create a one-time join token for an agent" } }, async (req, reply) => {
    const { token, expiresAt } = await auth.createJoinToken(req.principal, joinTokenTtlMs);
    return reply.status(201).send({ token, expiresAt: expiresAt.toISOString() });
  });
};
