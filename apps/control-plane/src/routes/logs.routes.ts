import type { FastifyPluginAsync } from "fastify";
import { ConflictError, InvalidRequestError, LOG_MEDIA_TYPE } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import { findHost } from "../repositories/hosts.repository.js";
import { requireApp } from "../services/auth.service.js";
import type { LogRelay } from "../bus/log-relay.js";
import { envParams } from "./schemas.js";
import { sendStream } from "./streaming.js";
import { lastEventIdOf } from "./sse.js";
import { DEFAULT_STREAM_OPTIONS, StreamRegistry, serveEventStream, type EventStreamOptions } from "./event-stream.js";
import { LogFeed, agentRequestFor, parseCursor } from "./log-events.js";

/** `since` as the agent takes it: Unix seconds (0 = none). */
function sinceSeconds(since: string | undefined): number {
  if (!since) return 0;
  const t = Date.parse(since);
  if (Number.isNaN(t)) throw new InvalidRequestError(`since '${since}' is not a time (use ISO 8601)`, { details: { since: "not a time" } });
  return Math.floor(t / 1000);
}

export const logsRoutes: FastifyPluginAsync<{ db: Db; relay: LogRelay; streams?: Partial<EventStreamOptions> }> = async (app, { db, relay, streams }) => {
  const opts: EventStreamOptions = { ...DEFAULT_STREAM_OPTIONS, ...streams };
  const registry = new StreamRegistry(opts.maxPerToken);
  // Open streams would hold the server's close until their clients go away.
  app.addHook("preClose", async () => registry.stopAll());

  /** The environment's host, or the reason there is no log to follow. */
  const hostOf = async (appName: string, envName: string) => {
    const a = await apps.getAppByName(db, appName);
    const env = await apps.getEnvironment(db, a, envName);
    if (!env.host_id || !env.current_image) throw new ConflictError(`environment '${env.name}' has never been deployed: there is no log yet`);
    const host = await findHost(db, env.host_id);
    if (!host || host.admin_state === "revoked") throw new ConflictError(`the host of ${a.name}/${env.name} is not available`);
    return { a, env, host };
  };

  app.get<{ Params: { app: string; env: string }; Querystring: { since?: string; tail?: number; lastEventId?: string } }>(
    "/apps/:app/environments/:env/logs/events",
    {
      schema: {
        summary:
          "The runtime log followed, as text/event-stream: an event line per log line (JSON {container, time, text}; id = <nanoseconds>-<index>), note for the relay's own remarks (no id); resumes after Last-Event-ID without loss or repeats; `: ping` every 15 s; ends after 10 minutes (the client reconnects and resumes)",
        params: envParams,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            since: { type: "string", maxLength: 40, description: "ISO 8601: lines from this time (a first connection)" },
            tail: { type: "integer", minimum: 1, maximum: 100000, description: "the last N lines before following (a first connection; default 1000)" },
            lastEventId: { type: "string", maxLength: 40, description: "resume after this event id, for clients that cannot send the Last-Event-ID header (the header wins)" },
          },
        },
      },
    },
    async (req, reply) => {
      requireApp(req.principal, req.params.app);
      const cursor = parseCursor(lastEventIdOf(req.headers, req.query));
      const from = agentRequestFor(cursor, { sinceSeconds: sinceSeconds(req.query.since), tail: req.query.tail ?? 1000 });
      const { a, env, host } = await hostOf(req.params.app, req.params.env);
      const { body, close } = await relay.stream({ id: host.id, credentialHash: host.credential_hash }, { app: a.name, environment: env.name, follow: true, ...from });
      try {
        await serveEventStream(req, reply, registry, opts, new LogFeed(body, cursor));
      } finally {
        close();
      }
    },
  );

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
