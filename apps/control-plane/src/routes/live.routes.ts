import type { FastifyPluginAsync } from "fastify";
import { ENV_NAME_PATTERN, InvalidRequestError, NAME_PATTERN } from "@slipway/core";
import type { LiveService } from "../services/live.service.js";
import { appParams, idParams } from "./schemas.js";
import { lastEventIdOf } from "./sse.js";
import { DEFAULT_STREAM_OPTIONS, StreamRegistry, serveEventStream, type EventStreamOptions } from "./event-stream.js";

const lastEventIdQuery = { lastEventId: { type: "string", maxLength: 40, description: "resume after this event id, for clients that cannot send the Last-Event-ID header (the header wins)" } } as const;
const STREAM_NOTE = "text/event-stream; resumes after Last-Event-ID; `: ping` every 15 s; ends after 10 minutes (the client reconnects and resumes)";

/**
 * The dashboard's live data as Server-Sent Events (issue 14). Each route checks what it may
 * refuse before the stream starts (404, 403, 400; 429 beyond the open streams a token may have),
 * then streams what LiveService's feed polls. See docs/DECISIONS.md, "Live streams".
 */
export const liveRoutes: FastifyPluginAsync<{ live: LiveService; streams?: Partial<EventStreamOptions> }> = async (app, { live, streams }) => {
  const opts: EventStreamOptions = { ...DEFAULT_STREAM_OPTIONS, ...streams };
  const registry = new StreamRegistry(opts.maxPerToken);
  // Open streams would hold the server's close until their clients go away.
  app.addHook("preClose", async () => registry.stopAll());

  app.get<{ Params: { id: string }; Querystring: { lastEventId?: string } }>(
    "/deployments/:id/log/events",
    {
      schema: {
        summary: `A deployment's log live: events line (id = seq), step, state, then end with its final state. ${STREAM_NOTE}`,
        params: idParams,
        querystring: { type: "object", additionalProperties: false, properties: lastEventIdQuery },
      },
    },
    async (req, reply) => {
      const feed = await live.openDeploymentLog(req.principal, req.params.id, lastEventIdOf(req.headers, req.query));
      await serveEventStream(req, reply, registry, opts, feed);
    },
  );

  app.get<{ Querystring: { app?: string; environment?: string; env?: string; lastEventId?: string } }>(
    "/activity/events",
    {
      schema: {
        summary: `The activity feed live, filtered like GET /v1/activity: events activity (id = the entry's id). ${STREAM_NOTE}`,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            app: { type: "string", pattern: NAME_PATTERN },
            environment: { type: "string", pattern: ENV_NAME_PATTERN },
            env: { type: "string", pattern: ENV_NAME_PATTERN, description: "the same as environment, as GET /v1/activity names it" },
            ...lastEventIdQuery,
          },
        },
      },
    },
    async (req, reply) => {
      const { app: appName, environment, env } = req.query;
      if (environment !== undefined && env !== undefined && environment !== env) {
        throw new InvalidRequestError("environment and env name the same filter: give one", { details: { env: "differs from environment" } });
      }
      const envName = environment ?? env;
      const feed = await live.openActivity(req.principal, { ...(appName ? { app: appName } : {}), ...(envName ? { environment: envName } : {}) }, lastEventIdOf(req.headers, req.query));
      await serveEventStream(req, reply, registry, opts, feed);
    },
  );

  app.get<{ Params: { app: string }; Querystring: { lastEventId?: string } }>(
    "/apps/:app/events",
    {
      schema: {
        summary: `An app's environments live: an event environment (the environment's view) for each at (re)connection and whenever one changes, removed, end. ${STREAM_NOTE}`,
        params: appParams,
        querystring: { type: "object", additionalProperties: false, properties: lastEventIdQuery },
      },
    },
    async (req, reply) => {
      const feed = await live.openAppEvents(req.principal, req.params.app, lastEventIdOf(req.headers, req.query));
      await serveEventStream(req, reply, registry, opts, feed);
    },
  );
};
