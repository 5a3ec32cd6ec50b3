import type { FastifyPluginAsync } from "fastify";
import { ConflictError, InvalidRequestError, LOG_MEDIA_TYPE } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import { findHost } from "../repositories/hosts.repository.js";
import { requireApp } from "../services/auth.service.js";
import type { LogRelay } from "../bus/log-relay.js";
import { envParams } from "./schemas.js";
import { sendStream } from "./streaming.js";

export const logsRoutes: FastifyPluginAsync<{ db: Db; relay: LogRelay }> = async (app, { db, relay }) => {
  app.get<{ Params: { app: string; env: string }; Querystring: { follow?: boolean; since?: string; tail?: number } }>(
    "/apps/:app/environments/:env/logs",
    {
      schema: {
        summary: "Runtime log of the environment's containers (text/plain); follow=true streams",
        params: envParams,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { follow: { type: "boolean" }, since: { type: "string", maxLength: 40 }, tail: { type: "integer", minimum: 1, maximum: 100000 } },
        },
      },
    },
    async (req, reply) => {
      requireApp(req.principal, req.params.app);
      const a = await apps.getAppByName(db, req.params.app);
      const env = await apps.getEnvironment(db, a, req.params.env);
      if (!env.host_id || !env.current_image) throw new ConflictError(`environment '${env.name}' has never been deployed: there is no log yet`);
      let since = 0;
      if (req.query.since) {
        const t = Date.parse(req.query.since);
        if (Number.isNaN(t)) throw new InvalidRequestError(`since '${req.query.since}' is not a time (use ISO 8601)`, { details: { since: "not a time" } });
        since = Math.floor(t / 1000);
      }
      const host = await findHost(db, env.host_id);
      if (!host || host.admin_state === "revoked") throw new ConflictError(`the host of ${a.name}/${env.name} is not available`);
      const { body, close } = await relay.stream({ id: host.id, credentialHash: host.credential_hash }, { app: a.name, environment: env.name, follow: req.query.follow === true, since, tail: req.query.tail ?? 1000 });
      // The response closes when the client goes away; the request stream closes as soon as it is read.
      reply.raw.on("close", close);
      return sendStream(reply, body, LOG_MEDIA_TYPE);
    },
  );
};
