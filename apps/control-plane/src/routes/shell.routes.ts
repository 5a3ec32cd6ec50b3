import type { Readable } from "node:stream";
import type { FastifyPluginAsync } from "fastify";
import { ConflictError, InvalidRequestError, SHELL_MEDIA_TYPE, ShellFrame, encodeShellFrame } from "@slipway/core";
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
 * request: the request body carries the client's frames (first Open with the
 * command and terminal, then Stdin, StdinEnd, Resize), the response body the
 * agent's (Started, Stdout, Stderr, then Exit or Error). Refusals before the
 * session starts are ordinary JSON errors. Every session opened is in the
 * activity feed. Nothing of the command is in the URL: URLs end up in
 * request logs and proxies' access logs.
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
  app.post<{ Params: { app: string; env: string } }>(
    "/apps/:app/environments/:env/shell",
    {
      schema: {
        summary: `Run a shell or a command in a running container of the environment; both bodies are ${SHELL_MEDIA_TYPE} frames`,
        description: `The body starts with an Open frame (type ${ShellFrame.Open}): JSON {"command": ["ls", "-l"], "tty": false, "rows": 24, "cols": 80}, every field optional (default command: /bin/sh). No query parameters.`,
        params: envParams,
        querystring: { type: "object", additionalProperties: false, properties: {} },
      },
    },
    async (req, reply) => {
      requireApp(req.principal, req.params.app);
      if (!req.headers["content-type"]?.startsWith(SHELL_MEDIA_TYPE)) throw new InvalidRequestError(`the request body must be ${SHELL_MEDIA_TYPE} frames`);
      const input = req.body as Readable;
      const opened = await readOpenFrame(input);
      const { command, tty, rows, cols } = shellOptions(opened.options);
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
      const session = await relay.open({ id: host.id, credentialHash: host.credential_hash }, { app: a.name, environment: env.name, command, tty, rows, cols }, onFrame);
      await recordActivity(db, { actor: req.principal.name, app: a.name, environment: env.name, action: "shell.opened", details: { command: command.length ? command : ["/bin/sh"], container: session.container, tty } });
      req.log.info({ app: a.name, environment: env.name, container: session.container }, "shell session opened");
      reply.hijack();
      res.writeHead(200, { "content-type": SHELL_MEDIA_TYPE, "cache-control": "no-store", "x-accel-buffering": "no" });
      res.flushHeaders();
      streaming = true;
      for (const f of pending) res.write(f);
      // Input that came with the Open frame first, then the rest as it is typed.
      if (opened.rest.length > 0) session.send(opened.rest);
      input.on("data", (chunk: Buffer) => session.send(chunk));
      input.resume();
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

/** The Open frame is small: a command line and a terminal size. */
export const OPEN_FRAME_MAX = 64 * 1024;
export const OPEN_FRAME_TIMEOUT_MS = 10_000;

/** Reads the body's first frame, which must be Open; leaves the stream paused with what followed it in `rest`. */
function readOpenFrame(input: Readable): Promise<{ options: unknown; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let finished = false;
    const finish = (err: Error | undefined, value?: { options: unknown; rest: Buffer }) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      input.off("data", onData);
      input.off("end", onEnd);
      input.off("error", onError);
      input.pause();
      if (err) reject(err);
      else resolve(value!);
    };
    const refuse = (message: string) => finish(new InvalidRequestError(message, { details: { body: message } }));
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (buf.length < 5) return;
      if (buf.readUInt8(0) !== ShellFrame.Open) return refuse(`the request body must start with an Open frame (type ${ShellFrame.Open}) carrying the command`);
      const len = buf.readUInt32BE(1);
      if (len > OPEN_FRAME_MAX) return refuse(`the Open frame is larger than ${OPEN_FRAME_MAX} bytes`);
      if (buf.length < 5 + len) return;
      let options: unknown;
      try {
        options = JSON.parse(buf.subarray(5, 5 + len).toString("utf8"));
      } catch {
        return refuse("the Open frame must hold a JSON object");
      }
      finish(undefined, { options, rest: buf.subarray(5 + len) });
    };
    const onEnd = () => refuse("the request body ended before its Open frame");
    const onError = (err: Error) => finish(err);
    const timer = setTimeout(() => refuse(`no Open frame within ${OPEN_FRAME_TIMEOUT_MS / 1000} s`), OPEN_FRAME_TIMEOUT_MS);
    input.on("data", onData);
    input.on("end", onEnd);
    input.on("error", onError);
  });
}

/** Validates the Open frame's options: the command (default: the container's /bin/sh) and the terminal. */
export function shellOptions(raw: unknown): { command: string[]; tty: boolean; rows: number; cols: number } {
  const bad = (field: string, why: string) => new InvalidRequestError(`${field} ${why}`, { details: { [field]: why } });
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad("body", "must start with an Open frame holding a JSON object");
  const o = raw as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!["command", "tty", "rows", "cols"].includes(key)) throw bad(key, "is not an option of a shell");
  const command = o.command ?? [];
  if (!Array.isArray(command) || (o.command !== undefined && (command.length === 0 || command.length > 200)) || !command.every((c) => typeof c === "string")) {
    throw bad("command", "must be an array of 1 to 200 strings");
  }
  if (o.tty !== undefined && typeof o.tty !== "boolean") throw bad("tty", "must be true or false");
  const size = (field: "rows" | "cols") => {
    const v = o[field] ?? 0;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 1000) throw bad(field, "must be an integer from 0 to 1000");
    return v;
  };
  return { command: command as string[], tty: o.tty === true, rows: size("rows"), cols: size("cols") };
}
