import type { FastifyPluginAsync } from "fastify";
import { ForbiddenError, NotFoundError } from "@slipway/core";
import { ROLES } from "../services/auth.service.js";
import type { AuthenticatedSession, SessionService } from "../services/session.service.js";
import { clearedSessionCookie, cookieIsSecure, crossSiteRefusal, sessionCookie, type SessionCookieOptions } from "./session-cookie.js";

/** A session as the API shows it; the serializer drops anything else. */
const sessionView = {
  type: "object",
  properties: {
    csrfToken: { type: "string", description: "send it as X-CSRF-Token with every call that changes something" },
    principal: {
      type: "object",
      properties: { name: { type: "string" }, role: { type: "string", enum: ROLES }, apps: { type: "array", items: { type: "string" } } },
      required: ["name", "role", "apps"],
    },
    expiresAt: { type: "string", format: "date-time", description: "slides with use, never beyond the token's expiry" },
  },
  required: ["csrfToken", "principal", "expiresAt"],
} as const;

/** `POST /v1/sessions`: outside the authenticated scope (the token is in the body). */
export const signInRoutes: FastifyPluginAsync<{ sessions: SessionService } & SessionCookieOptions> = async (app, opts) => {
  const { sessions } = opts;
  app.post<{ Body: { token: string } }>(
    "/sessions",
    {
      schema: {
        summary: "Sign in to the dashboard: exchange an API token for a session cookie (HttpOnly, SameSite=Strict) and its CSRF token",
        description: "The token is checked as a bearer token is (revoked, expired: 401, nothing stored). The session has the token's role and apps and ends with it. Calls with the cookie that change something must send X-CSRF-Token.",
        security: [],
        body: { type: "object", additionalProperties: false, required: ["token"], properties: { token: { type: "string", minLength: 1, maxLength: 4096 } } },
        response: { 201: sessionView },
      },
      // A sign-in from another site would sign the browser in as someone else (login CSRF): refused before the body is read.
      onRequest: async (req) => {
        const refusal = crossSiteRefusal(req.headers, opts);
        if (refusal) throw new ForbiddenError(`cross-site request refused: ${refusal}`);
      },
    },
    async (req, reply) => {
      const { secret, view } = await sessions.signIn(req.body.token);
      return reply.status(201).header("cache-control", "no-store").header("set-cookie", sessionCookie(secret, cookieIsSecure(req, opts))).send(view);
    },
  );
};

/** The current session: inside the authenticated scope, so only a request that came with its cookie has one. */
export const sessionRoutes: FastifyPluginAsync<{ sessions: SessionService } & SessionCookieOptions> = async (app, opts) => {
  const { sessions } = opts;
  const current = (session: AuthenticatedSession | null): AuthenticatedSession => {
    if (!session) throw new NotFoundError("this request has no session: it was authenticated by its bearer token, not by the session cookie");
    return session;
  };
  app.get(
    "/sessions/current",
    { schema: { summary: "The session the cookie belongs to: who, until when, and its CSRF token (404 with a bearer token)", response: { 200: sessionView } } },
    async (req, reply) => reply.header("cache-control", "no-store").send(sessions.view(current(req.session))),
  );
  app.delete(
    "/sessions/current",
    { schema: { summary: "Sign out: the session ends and the cookie is cleared (404 with a bearer token)" } },
    async (req, reply) => {
      await sessions.signOut(current(req.session));
      return reply.status(204).header("set-cookie", clearedSessionCookie(cookieIsSecure(req, opts))).send();
    },
  );
};
