import type { Readable } from "node:stream";
import type { FastifyPluginAsync } from "fastify";
import { ConflictError, InvalidRequestError, SHELL_MEDIA_TYPE, encodeShellFrame } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import { findHost } from "../repositories/hosts.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { requireApp } from "../services/auth.service.js";
import type { ShellRelay } from "../bus/shell-relay.js";
import { envParams } from "./schemas.js";

/**
 * `POST …/shell`: a command (default /bin/sh) in a running container of the
 * environment, with input and output streamed both ways over the one HTTP
 * request: the request body carries the client's frames (Stdin, StdinEnd,
 * Resize), the response body the agent's (Started, Stdout, Stderr, then Exit
 * or Error). Refusals before the session starts are ordinary JSON errors.
 * Every session opened is in the activity feed.
 */
export const shellRoutes: FastifyPluginAsync<{ db: Db; relay: ShellRelay }> = async (app, { db, relay }) => {
  // The body is the client's input as it is typed: handed to the route as a stream, never buffered.
  app.addContentTypeParser(SHELL_MEDIA_TYPE, (_req, payload, done) => done(null, payload));
  // Open sessions end when the control plane stops, rather than keeping it from stopping.
  const open = new Set<() => void>();
  app.addHook("preClose", (done) => {
    for (const close of open) close();
    done();
  });
  app.post<{ Params: { app: string; env: string }; Querystring: { command?: string; tty?: boolean; rows?: number; cols?: number } }>(
    "/apps/:app/environments/:env/shell",
    {
      schema: {
        summary: `Run a shell or a command in a running container of the environment; both bodies are ${SHELL_MEDIA_TYPE} frames`,
        params: envParams,
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            command: { type: "string", maxLength: 16_384, description: "JSON array: the command and its arguments (default: /bin/sh)" },
            tty: { type: "boolean" },
            rows: { type: "integer", minimum: 0, maximum: 1000 },
            cols: { type: "integer", minimum: 0, maximum: 1000 },
          },
        },
      },
    },
    async (req, reply) => {
      requireApp(req.principal, req.params.app);
      if (!req.headers["content-type"]?.startsWith(SHELL_MEDIA_TYPE)) throw new InvalidRequestError(`the request body must be ${SHELL_MEDIA_TYPE} frames`);
      let command: string[] = [];
      if (req.query.command !== undefined) {
        try {
          command = JSON.parse(req.query.command) as string[];
        } catch {
          command = undefined as unknown as string[];
        }
        if (!Array.isArray(command) || command.length === 0 || command.length > 200 || !command.every((c) => typeof c === "string")) {
          throw new InvalidRequestError("command must be a JSON array of 1 to 200 strings", { details: { command: "not a JSON array of strings" } });
        }
      }
      const a = await apps.getAppByName(db, req.params.app);
      const env = await apps.getEnvironment(db, a, req.params.env);
      if (!env.host_id || env.state !== "running") throw new ConflictError(`environment ${a.name}/${env.name} is ${env.state}: a shell needs a running container`);
      const host = await findHost(db, env.host_id);
      if (!host || host.admin_state === "revoked") throw new ConflictError(`the host of ${a.name}/${env.name} is not available`);
      const res = reply.raw;
      const pending: Buffer[] = [];
      let streaming = false;
      // Frames that come before the response head is written wait here; the response ends when the session does.
      const onFrame = (type: number, payload: Buffer) => {
        const frame = encodeShellFrame(type, payload);
        if (streaming) res.write(frame);
        else pending.push(frame);
      };
      const session = await relay.open({ id: host.id, credentialHash: host.credential_hash }, { app: a.name, environment: env.name, command, tty: req.query.tty === true, rows: req.query.rows ?? 0, cols: req.query.cols ?? 0 }, onFrame);
      await recordActivity(db, { actor: req.principal.name, app: a.name, environment: env.name, action: "shell.opened", details: { command: command.length ? command : ["/bin/sh"], container: session.container, tty: req.query.tty === true } });
      req.log.info({ app: a.name, environment: env.name, container: session.container }, "shell session opened");
      reply.hijack();
      res.writeHead(200, { "content-type": SHELL_MEDIA_TYPE, "cache-control": "no-store", "x-accel-buffering": "no" });
      res.flushHeaders();
      streaming = true;
      for (const f of pending) res.write(f);
      const input = req.body as Readable;
      input.on("data", (chunk: Buffer) => session.send(chunk));
      // The client went away (maybe while the session started): the agent ends the command.
      const stop = () => session.close();
      res.on("close", stop);
      if (res.destroyed || !res.socket || res.socket.destroyed) stop();
      open.add(stop);
      try {
        await session.done;
      } finally {
        open.delete(stop);
      }
      if (!res.writableEnded) res.end();
    },
  );
};
