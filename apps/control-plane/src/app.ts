import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from "fastify";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { InvalidRequestError, SlipwayError, type Logger } from "@slipway/core";
import { authorizeRequest, type AuthService, type Principal } from "./services/auth.service.js";
import type { AppService } from "./services/app.service.js";
import type { DeploymentService } from "./services/deployment.service.js";
import type { EnvironmentService } from "./services/environment.service.js";
import type { DataService } from "./data/data.service.js";
import { dataRoutes } from "./routes/data.routes.js";
import type { HostService } from "./services/host.service.js";
import type { MetricsService } from "./metrics/metrics.service.js";
import { envMetricsRoutes } from "./routes/env-metrics.routes.js";
import type { DrainService } from "./services/drain.service.js";
import type { LogRelay } from "./bus/log-relay.js";
import type { ShellRelay } from "./bus/shell-relay.js";
import { logsRoutes } from "./routes/logs.routes.js";
import { shellRoutes } from "./routes/shell.routes.js";
import { shellWsRoutes } from "./routes/shell-ws.routes.js";
import type { Db } from "./db/database.js";
import { systemRoutes } from "./routes/system.routes.js";
import { resolveWebDir, webRoutes } from "./routes/web.routes.js";
import { errorBody } from "./routes/error-body.js";
import { unacceptableValueAt } from "./routes/schemas.js";
import { tokenRoutes } from "./routes/tokens.routes.js";
import { appRoutes } from "./routes/apps.routes.js";
import { deploymentRoutes } from "./routes/deployments.routes.js";
import { hostRoutes } from "./routes/hosts.routes.js";
import { activityRoutes } from "./routes/activity.routes.js";
import { metricsRoutes } from "./routes/metrics.routes.js";
import { hookReceiverRoutes, hookRoutes } from "./routes/hooks.routes.js";
import type { HookService } from "./hooks/hook.service.js";
import type { GitAccess } from "./git/git-access.js";
import { LiveService } from "./services/live.service.js";
import { liveRoutes } from "./routes/live.routes.js";
import type { EventStreamOptions } from "./routes/event-stream.js";
import { DEFAULT_SESSION_TTL_MS, SessionService, type AuthenticatedSession } from "./services/session.service.js";
import { signInRoutes, sessionRoutes } from "./routes/sessions.routes.js";
import { authenticateBySession, sessionCookieValues, SESSION_COOKIE } from "./routes/session-cookie.js";
import { certificateRoutes } from "./routes/certificates.routes.js";
import type { CertificateService } from "./tls/certificate.service.js";

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal;
    /** The browser session the request came with; null when it was authenticated by a bearer token. */
    session: AuthenticatedSession | null;
  }
}

export interface AppDeps {
  db: Db;
  log: Logger;
  auth: AuthService;
  apps: AppService;
  deployments: DeploymentService;
  environments: EnvironmentService;
  data: DataService;
  hosts: HostService;
  /** Environment metrics: the API route and the per-environment Prometheus series; absent = neither. */
  metrics?: MetricsService;
  drains?: DrainService;
  logs?: LogRelay;
  shells?: ShellRelay;
  joinTokenTtlMs: number;
  /** Extra readiness checks (database, NATS); each throws when not ready. */
  readiness: Array<() => Promise<void>>;
  logPollIntervalMs?: number;
  /** Push webhooks, deploy keys and git host keys; absent = none of those routes. */
  hooks?: { hooks: HookService; access: GitAccess };
  /** Browser sessions (the dashboard's sign-in); absent = sessions with the default TTL. */
  sessions?: SessionService;
  /** SLIPWAY_PUBLIC_URL: an https one marks the session cookie Secure; its origin is accepted as the dashboard's. */
  publicUrl?: string;
  /** The live streams (Server-Sent Events): poll interval, heartbeat, limits; absent = the defaults. */
  streams?: Partial<EventStreamOptions>;
  /** TLS for the REST API (PEM certificate chain and key); absent = plain HTTP. */
  https?: { cert: Buffer; key: Buffer };
  /** The built web dashboard (SLIPWAY_WEB_DIR); absent = @slipway/web's dist beside the control plane. */
  webDir?: string;
  /** Stored certificates: upload, list, remove (/v1/certificates); absent = none of those routes. */
  certificates?: CertificateService;
}

/** Builds the REST API without listening, so tests can use `inject()`. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: "http" }) as unknown as FastifyBaseLogger,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: "array", allErrors: true } },
    bodyLimit: 1024 * 1024,
    // The router's own refusals (a malformed percent-encoding, a path parameter over 100 characters)
    // answer with the API's error body too, not fastify's default one (found by fuzz.api.test.ts).
    frameworkErrors: (err, _req, reply) => {
      void (reply as unknown as FastifyReply).status(err.statusCode ?? 400).send(errorBody("invalid_request", err.message));
    },
    ...(deps.https ? { https: deps.https } : {}),
  }) as unknown as FastifyInstance;

  await app.register(swagger, {
    openapi: {
      info: { title: "Slipway control plane", version: "1" },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" }, session: { type: "apiKey", in: "cookie", name: SESSION_COOKIE, description: "from POST /v1/sessions; changes also need X-CSRF-Token" } } },
      security: [{ bearer: [] }, { session: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof SlipwayError) {
      return reply.status(err.httpStatus).send(errorBody(err.code, err.message, err.details));
    }
    if (err.validation) {
      const details: Record<string, string> = {};
      for (const v of err.validation) {
        const field = (v.instancePath || "").replace(/^\//, "").replace(/\//g, ".") || String((v.params as { missingProperty?: string; additionalProperty?: string }).missingProperty ?? (v.params as { additionalProperty?: string }).additionalProperty ?? err.validationContext ?? "body");
        details[field] = v.message ?? "invalid";
      }
      const first = Object.entries(details)[0];
      return reply.status(400).send(errorBody("invalid_request", `invalid ${err.validationContext ?? "request"}: ${first ? `${first[0]} ${first[1]}` : err.message}`, details));
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send(errorBody(err.statusCode === 404 ? "not_found" : "invalid_request", err.message));
    }
    req.log.error({ err }, "unhandled error");
    return reply.status(500).send(errorBody("internal", "internal error; see the control plane's log"));
  });
  // After validation: what passed the schemas yet cannot be taken (Infinity, U+0000; see unacceptableValueAt).
  app.addHook("preHandler", async (req) => {
    for (const [part, value] of [["querystring", req.query], ["params", req.params], ["body", req.body]] as const) {
      const bad = unacceptableValueAt(value);
      if (bad) throw new InvalidRequestError(`invalid ${part}: ${bad.at} ${bad.problem}`, { details: { [bad.at]: bad.problem } });
    }
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send(errorBody("not_found", `no route ${req.method} ${req.url.split("?")[0]}`)));

  await app.register(systemRoutes, { readiness: deps.readiness });
  await app.register(webRoutes, { dir: resolveWebDir(deps.webDir) });
  await app.register(metricsRoutes, { db: deps.db, onlineWindowMs: () => deps.hosts.onlineWindowMs(), ...(deps.metrics ? { environments: () => deps.metrics!.snapshot() } : {}) });
  // Outside the token-authenticated scope: a delivery is authenticated by its signature.
  if (deps.hooks) await app.register(hookReceiverRoutes, { prefix: "/v1", hooks: deps.hooks.hooks });
  const sessions = deps.sessions ?? new SessionService(deps.db, deps.auth, deps.log.child({ component: "sessions" }), { ttlMs: DEFAULT_SESSION_TTL_MS });
  const cookieOptions = deps.publicUrl ? { publicUrl: deps.publicUrl } : {};
  // Outside the authenticated scope: the token to sign in with is in the body.
  await app.register(signInRoutes, { prefix: "/v1", sessions, ...cookieOptions });
  await app.register(
    async (v1) => {
      v1.decorateRequest("principal", null as unknown as Principal);
      v1.decorateRequest("session", null);
      v1.addHook("onRequest", async (req, reply) => {
        // A bearer header wins over a cookie (and needs no CSRF token: no browser sends it across sites).
        const cookies = req.headers.authorization === undefined ? sessionCookieValues(req.headers.cookie) : [];
        if (cookies.length > 0) {
          req.session = await authenticateBySession(req, reply, cookies, sessions, cookieOptions);
          req.principal = req.session.principal;
        } else {
          req.principal = await deps.auth.authenticate(req.headers.authorization);
        }
        // Role rules for every route, before the body is read: see authorizeRequest.
        authorizeRequest(req.principal, { method: req.method, route: req.routeOptions.url, params: req.params as Record<string, string | undefined>, query: req.query as Record<string, unknown> });
      });
      await v1.register(tokenRoutes, { auth: deps.auth, joinTokenTtlMs: deps.joinTokenTtlMs });
      await v1.register(sessionRoutes, { sessions, ...cookieOptions });
      await v1.register(appRoutes, { apps: deps.apps, environments: deps.environments });
      await v1.register(deploymentRoutes, { deployments: deps.deployments, pollIntervalMs: deps.logPollIntervalMs ?? 300 });
      await v1.register(hostRoutes, { hosts: deps.hosts, ...(deps.drains ? { drains: deps.drains } : {}) });
      await v1.register(dataRoutes, { data: deps.data });
      if (deps.metrics) await v1.register(envMetricsRoutes, { metrics: deps.metrics });
      if (deps.logs) await v1.register(logsRoutes, { db: deps.db, relay: deps.logs, ...(deps.streams ? { streams: deps.streams } : {}) });
      if (deps.shells) await v1.register(shellRoutes, { db: deps.db, relay: deps.shells });
      if (deps.shells) await v1.register(shellWsRoutes, { db: deps.db, relay: deps.shells, ...cookieOptions });
      await v1.register(activityRoutes, { db: deps.db });
      await v1.register(liveRoutes, { live: new LiveService(deps.db, deps.deployments, deps.apps, () => deps.hosts.onlineWindowMs()), ...(deps.streams ? { streams: deps.streams } : {}) });
      if (deps.hooks) await v1.register(hookRoutes, deps.hooks);
      if (deps.certificates) await v1.register(certificateRoutes, { certificates: deps.certificates });
    },
    { prefix: "/v1" },
  );
  return app;
}
