import { PassThrough } from "node:stream";
import type { FastifyPluginAsync } from "fastify";
import { ENV_NAME_PATTERN, LOG_MEDIA_TYPE } from "@slipway/core";
import type { DeploymentInput, DeploymentService } from "../services/deployment.service.js";
import { envParams, idParams } from "./schemas.js";
import { sendStream } from "./streaming.js";

export const deploymentRoutes: FastifyPluginAsync<{ deployments: DeploymentService; pollIntervalMs: number }> = async (app, { deployments, pollIntervalMs }) => {
  app.post<{ Params: { app: string; env: string }; Body: Omit<DeploymentInput, "moveTo"> }>(
    "/apps/:app/environments/:env/deployments",
    {
      schema: {
        summary: "Deploy an environment",
        params: envParams,
        body: {
          type: "object",
          additionalProperties: false,
          properties: {
            build: { type: "string", enum: ["auto", "force", "reuse"] },
            queue: { type: "boolean", description: "when a deployment of the environment runs, run this one after it instead of answering 409" },
            promoteFrom: { type: "string", pattern: ENV_NAME_PATTERN, description: "deploy exactly the image this other environment of the app runs: no build, this environment's own variables, release commands as usual" },
            rollbackTo: { type: "string", minLength: 1, maxLength: 64, description: "deploy an earlier successful deployment of this environment again: its image, settings and variables; no build; the database is not rolled back" },
            runReleaseCommands: { type: "boolean", description: "a rollback runs the release commands only when this is true" },
            content: {
              type: "object",
              additionalProperties: false,
              required: ["from"],
              description: "replace this environment's database and/or media with another's before the new containers start (a backup is taken first)",
              properties: { from: { type: "string", pattern: ENV_NAME_PATTERN }, database: { type: "boolean" }, media: { type: "boolean" }, confirm: { type: "boolean" } },
            },
          },
        },
      },
    },
    async (req, reply) => {
      const d = await deployments.create(req.principal, req.params.app, req.params.env, req.body ?? {});
      return reply.status(202).send(d);
    },
  );
  app.get<{ Params: { app: string; env: string }; Querystring: { limit?: number; before?: string } }>(
    "/apps/:app/environments/:env/deployments",
    {
      schema: {
        summary: "The environment's deployments, newest first; `before` = the last id of a page: the next (older) page",
        params: envParams,
        querystring: { type: "object", additionalProperties: false, properties: { limit: { type: "integer", minimum: 1, maximum: 500 }, before: { type: "string", format: "uuid" } } },
      },
    },
    async (req) => deployments.list(req.principal, req.params.app, req.params.env, req.query.limit ?? 50, req.query.before),
  );
  app.get<{ Params: { id: string } }>("/deployments/:id", { schema: { params: idParams } }, async (req) => deployments.get(req.principal, req.params.id));
  app.post<{ Params: { id: string } }>("/deployments/:id/cancel", { schema: { params: idParams } }, async (req, reply) =>
    reply.status(202).send(await deployments.cancel(req.principal, req.params.id)),
  );

  app.get<{ Params: { id: string }; Querystring: { follow?: boolean } }>(
    "/deployments/:id/log",
    { schema: { summary: "Deployment log (text/plain); follow=true streams until the deployment ends", params: idParams, querystring: { type: "object", properties: { follow: { type: "boolean" } } } } },
    async (req, reply) => {
      const first = await deployments.readLog(req.principal, req.params.id, 0);
      reply.header("content-type", LOG_MEDIA_TYPE);
      if (!req.query.follow || first.finished) {
        // A deployment that ended may still have lines in flight from the last batch.
        const rest = first.finished ? await deployments.readLog(req.principal, req.params.id, first.lastSeq) : undefined;
        return first.text + (rest?.text ?? "");
      }
      const out = new PassThrough();
      out.write(first.text);
      let closed = false;
      // The response closes when the client goes away (the request stream closes as soon as it is read).
      reply.raw.on("close", () => {
        closed = true;
      });
      (async () => {
        let seq = first.lastSeq;
        for (;;) {
          await new Promise((r) => setTimeout(r, pollIntervalMs));
          if (closed) break;
          const next = await deployments.readLog(req.principal, req.params.id, seq);
          if (next.text) out.write(next.text);
          seq = next.lastSeq;
          if (next.finished) {
            const tail = await deployments.readLog(req.principal, req.params.id, seq);
            if (tail.text) out.write(tail.text);
            break;
          }
        }
      })()
        .catch((err: unknown) => req.log.warn({ err }, "log follow failed"))
        .finally(() => out.end());
      return sendStream(reply, out, LOG_MEDIA_TYPE);
    },
  );
};
