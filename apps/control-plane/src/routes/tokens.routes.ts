import type { FastifyPluginAsync } from "fastify";
import { NAME_PATTERN } from "@slipway/core";
import type { AuthService } from "../services/auth.service.js";

export const tokenRoutes: FastifyPluginAsync<{ auth: AuthService; joinTokenTtlMs: number }> = async (app, { auth, joinTokenTtlMs }) => {
  app.post<{ Body: { name: string; role: "admin" | "deployer"; apps?: string[] } }>(
    "/tokens",
    {
      schema: {
        summary: "Create an API token (shown once)",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["name", "role"],
          properties: {
            name: { type: "string", minLength: 1, maxLength: 100 },
            role: { type: "string", enum: ["admin", "deployer"] },
            apps: { type: "array", items: { type: "string", pattern: NAME_PATTERN }, maxItems: 1000 },
          },
        },
      },
    },
    async (req, reply) => reply.status(201).send({ token: await auth.createToken(req.principal, req.body) }),
  );
  app.post("/join-tokens", { schema: { summary: "Create a one-time join token for an agent" } }, async (req, reply) => {
    const { token, expiresAt } = await auth.createJoinToken(req.principal, joinTokenTtlMs);
    return reply.status(201).send({ token, expiresAt: expiresAt.toISOString() });
  });
};
