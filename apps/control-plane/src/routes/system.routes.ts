import type { FastifyPluginAsync } from "fastify";
import { errorBody } from "./error-body.js";

export const systemRoutes: FastifyPluginAsync<{ readiness: Array<() => Promise<void>> }> = async (app, opts) => {
  app.get("/healthz", { schema: { hide: true } }, async () => ({ ok: true }));
  app.get("/readyz", { schema: { hide: true } }, async (_req, reply) => {
    try {
      for (const check of opts.readiness) await check();
      return { ready: true };
    } catch (err) {
      return reply.status(503).send(errorBody("unavailable", `not ready: ${(err as Error).message}`));
    }
  });
};
