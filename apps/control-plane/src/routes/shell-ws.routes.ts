import websocket from "@fastify/websocket";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { ConflictError, ForbiddenError, InvalidRequestError, SHELL_MAX_FRAME, ShellFrame, ShellFrameReader, SlipwayError, encodeShellFrame } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import { findHost } from "../repositories/hosts.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { requireApp } from "../services/auth.service.js";
import type { ShellRelay, ShellSession } from "../bus/shell-relay.js";
import { envParams } from "./schemas.js";
import { errorBody } from "./error-body.js";
import { OPEN_FRAME_MAX, OPEN_FRAME_TIMEOUT_MS, shellOptions } from "./shell.routes.js";
import { crossSiteRefusal, type SessionCookieOptions } from "./session-cookie.js";

/** What the route needs of a WebSocket (ws's, as @fastify/websocket hands it over). */
interface Socket {
  readonly readyState: number;
  send(data: Buffer): void;
  close(code?: number, reason?: string): void;
  on(event: "message", listener: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): void;
  on(event: "close", listener: () => void): void;
}
const OPEN = 1;

/** Close codes: the session ended (Exit), the agent reported an Error, a refusal after the upgrade is 4000 + its HTTP status. */
export const WS_CLOSE = { exit: 1000, error: 1011, refusedBase: 4000 } as const;

/** Client frames after Open: what the agent takes (the Open frame is the control plane's). */
const CLIENT_FRAMES = new Set<number>([ShellFrame.Stdin, ShellFrame.StdinEnd, ShellFrame.Resize]);

/**
 * `GET …/shell/ws`: the shell of `POST …/shell` over a WebSocket, for browsers (they cannot stream
 * a request body over HTTP/1.1). Every WebSocket message is one or more shell frames, binary, in
 * core's encoding (a type byte, a 4-byte big-endian length, the payload), the same frames as the
 * POST route's bodies: the client sends Open first (JSON {command?, tty?, rows?, cols?}), then
 * Stdin, StdinEnd, Resize; the server sends Started, Stdout, Stderr and last Exit or Error, then
 * closes (1000 after Exit, 1011 after Error). A refusal after the upgrade (a bad Open frame, an
 * environment that is not running, an unavailable host) is an Error frame with the API's message
 * and a close with 4000 + the HTTP status it would have had.
 *
 * Before the upgrade, refused with an HTTP status: another site's Origin (403; WebSockets are not
 * covered by CORS, and a browser sends the session cookie with them: this is the CSRF defence; a
 * cookie-authenticated request was already checked by the session hook, a bearer one with an
 * Origin is checked here), a token without the app (403), a viewer (403: a shell changes things),
 * a deployer in live (403, as for POST …/shell).
 */
export const shellWsRoutes: FastifyPluginAsync<{ db: Db; relay: ShellRelay } & SessionCookieOptions> = async (app, { db, relay, publicUrl }) => {
  // Each message carries at most one frame's worth (the frames' own limit), plus its head.
  await app.register(websocket, { options: { maxPayload: SHELL_MAX_FRAME + 5 } });
  // A handshake refused before the upgrade (by the session hook, which runs before the plugin's own
  // hooks, or here) gets its HTTP answer; then its socket is done with (it would otherwise stay open).
  app.addHook("onResponse", async (req) => {
    if (req.headers.upgrade?.toLowerCase() !== "websocket") return;
    const socket = req.raw.socket;
    // end(): the answer written so far still reaches the client (destroy() would drop it).
    socket?.end();
    setTimeout(() => socket?.destroy(), 2000).unref();
  });
  const open = new Set<() => void>();
  app.addHook("preClose", (done) => {
    for (const close of open) close();
    done();
  });

  app.route<{ Params: { app: string; env: string } }>({
    method: "GET",
    url: "/apps/:app/environments/:env/shell/ws",
    schema: {
      summary: "The shell of POST …/shell over a WebSocket (for browsers): binary messages of the same frames, Open first; a foreign Origin is refused with 403 before the upgrade. A request without Upgrade: websocket gets 426.",
      params: envParams,
      querystring: { type: "object", additionalProperties: false, properties: {} },
    },
    preValidation: async (req: FastifyRequest<{ Params: { app: string; env: string } }>) => {
      if (req.headers.origin !== undefined) {
        const refusal = crossSiteRefusal(req.headers, publicUrl ? { publicUrl } : {});
        if (refusal) throw new ForbiddenError(`cross-site WebSocket refused: ${refusal}`);
      }
      requireApp(req.principal, req.params.app);
      if (req.principal.role === "viewer") throw new ForbiddenError(`the token '${req.principal.name}' is a viewer's: it opens no shell`);
      if (req.principal.role === "deployer" && req.params.env === "live") throw new ForbiddenError("a deployer token opens no shell in live (it would read every secret there): ask an admin");
    },
    handler: async (_req, reply) => reply.status(426).header("upgrade", "websocket").send(errorBody("invalid_request", "this route is a WebSocket: connect with Upgrade: websocket (the POST …/shell route streams the same frames over HTTP)")),
    wsHandler: (raw, req) => {
      const socket = raw as unknown as Socket;
      const reader = new ShellFrameReader();
      let session: ShellSession | undefined;
      let gone = false;
      let starting = false;
      const early: Buffer[] = [];
      const send = (type: number, payload: Uint8Array | string = new Uint8Array()) => {
        if (socket.readyState === OPEN) socket.send(encodeShellFrame(type, payload));
      };
      const refuse = (err: unknown) => {
        const e = err instanceof SlipwayError ? err : undefined;
        if (!e) req.log.warn({ err }, "shell WebSocket failed");
        send(ShellFrame.Error, e ? e.message : "internal error; see the control plane's log");
        if (socket.readyState === OPEN) socket.close(e ? WS_CLOSE.refusedBase + e.httpStatus : WS_CLOSE.error);
      };
      const timer = setTimeout(() => {
        if (!session && !starting) refuse(new InvalidRequestError(`no Open frame within ${OPEN_FRAME_TIMEOUT_MS / 1000} s`));
      }, OPEN_FRAME_TIMEOUT_MS);

      const start = async (options: unknown) => {
        const { command, tty, rows, cols } = shellOptions(options);
        const a = await apps.getAppByName(db, req.params.app);
        const env = await apps.getEnvironment(db, a, req.params.env);
        if (!env.host_id || env.state !== "running") throw new ConflictError(`environment ${a.name}/${env.name} is ${env.state}: a shell needs a running container`);
        const host = await findHost(db, env.host_id);
        if (!host || host.admin_state === "revoked") throw new ConflictError(`the host of ${a.name}/${env.name} is not available`);
        const s = await relay.open({ id: host.id, credentialHash: host.credential_hash }, { app: a.name, environment: env.name, command, tty, rows, cols }, (type, payload) => {
          send(type, payload);
          if (type === ShellFrame.Exit && socket.readyState === OPEN) socket.close(WS_CLOSE.exit);
          if (type === ShellFrame.Error && socket.readyState === OPEN) socket.close(WS_CLOSE.error);
        });
        await recordActivity(db, { actor: req.principal.name, app: a.name, environment: env.name, action: "shell.opened", details: { command: command.length ? command : ["/bin/sh"], container: s.container, tty, via: "websocket" } });
        req.log.info({ app: a.name, environment: env.name, container: s.container }, "shell session opened (WebSocket)");
        if (gone) {
          s.close();
          return;
        }
        session = s;
        const stop = () => s.close();
        open.add(stop);
        void s.done.finally(() => open.delete(stop));
        for (const b of early.splice(0)) s.send(b);
      };

      socket.on("message", (data) => {
        const chunk = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
        let frames: Array<{ type: number; payload: Buffer }>;
        try {
          frames = reader.push(chunk);
        } catch (err) {
          return refuse(new InvalidRequestError((err as Error).message));
        }
        for (const f of frames) {
          if (!session && !starting) {
            // The first frame: Open, with the command and the terminal (as the POST route's body starts).
            if (f.type !== ShellFrame.Open) return refuse(new InvalidRequestError(`the first message must be an Open frame (type ${ShellFrame.Open}) carrying the command`));
            if (f.payload.length > OPEN_FRAME_MAX) return refuse(new InvalidRequestError(`the Open frame is larger than ${OPEN_FRAME_MAX} bytes`));
            let options: unknown;
            try {
              options = JSON.parse(f.payload.toString("utf8"));
            } catch {
              return refuse(new InvalidRequestError("the Open frame must hold a JSON object"));
            }
            starting = true;
            clearTimeout(timer);
            start(options).catch(refuse);
            continue;
          }
          if (!CLIENT_FRAMES.has(f.type)) return refuse(new InvalidRequestError(`frame type ${f.type} is not one a client sends after Open (Stdin ${ShellFrame.Stdin}, StdinEnd ${ShellFrame.StdinEnd}, Resize ${ShellFrame.Resize})`));
          const frame = encodeShellFrame(f.type, f.payload);
          if (session) session.send(frame);
          else if (early.length < 256) early.push(frame);
        }
      });
      socket.on("close", () => {
        gone = true;
        clearTimeout(timer);
        session?.close();
      });
    },
  });
};
