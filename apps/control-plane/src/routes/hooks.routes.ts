import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import type { HookService } from "../hooks/hook.service.js";
import { WebhookRejected } from "../hooks/hook.service.js";
import type { GitAccess } from "../git/git-access.js";
import { requireAdmin } from "../services/auth.service.js";
import { appParams } from "./schemas.js";
import { errorBody } from "./error-body.js";

/** A push event is small; GitHub caps its payloads at 25 MB, a push of many commits stays far below this. */
const WEBHOOK_BODY_LIMIT = 5 * 1024 * 1024;

function requestBase(req: FastifyRequest): string {
  return `${req.protocol}://${req.host}`;
}

/**
 * POST /v1/hooks/{app}: where git hosts deliver push events. No bearer token: the delivery is
 * authenticated by its signature (or GitLab's token) with the app's webhook secret, checked over
 * the raw body as it arrived.
 */
export const hookReceiverRoutes: FastifyPluginAsync<{ hooks: HookService }> = async (app, { hooks }) => {
  // The signature is over the bytes as sent: the body is kept raw (any content type; the parser decides).
  app.removeAllContentTypeParsers();
  // Refused before the body is read when the app has no webhook (or does not exist).
  app.addHook<{ Params: { app: string } }>("onRequest", async (req, reply) => {
    try {
      await hooks.precheck(req.params.app);
    } catch (err) {
      if (err instanceof WebhookRejected) return reply.status(err.status).send(errorBody("unauthenticated", err.message));
      throw err;
    }
  });
  app.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: WEBHOOK_BODY_LIMIT }, (_req, body, done) => done(null, body));
  app.post<{ Params: { app: string } }>(
    "/hooks/:app",
    { schema: { summary: "A git host's push webhook (GitHub, GitLab, Gitea/Forgejo, Bitbucket); authenticated by its signature", params: appParams }, bodyLimit: WEBHOOK_BODY_LIMIT },
    async (req, reply) => {
      try {
        const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const outcome = await hooks.receive(req.params.app, req.headers, body);
        const { failed, ...answer } = outcome as typeof outcome & { failed?: boolean };
        // 503 when an environment could not be deployed: the delivery is not recorded, a redelivery tries again.
        return reply.status(failed ? 503 : outcome.outcome === "duplicate" ? 200 : 202).send(answer);
      } catch (err) {
        if (err instanceof WebhookRejected) {
          const code = err.status === 401 ? "unauthenticated" : err.status === 415 ? "unsupported_media_type" : "invalid_request";
          return reply.status(err.status).send(errorBody(code, err.message));
        }
        throw err;
      }
    },
  );
};

/** The webhook's settings, the deploy key and the git hosts' pinned SSH keys (token-authenticated, under /v1). */
export const hookRoutes: FastifyPluginAsync<{ hooks: HookService; access: GitAccess }> = async (app, { hooks, access }) => {
  app.get<{ Params: { app: string } }>("/apps/:app/hooks", { schema: { summary: "The app's push webhook: URL, secret, poll interval, last sync", params: appParams } }, async (req) =>
    hooks.get(req.principal, req.params.app, requestBase(req)),
  );
  app.patch<{ Params: { app: string }; Body: { pollIntervalSeconds: number | null } }>(
    "/apps/:app/hooks",
    {
      schema: {
        params: appParams,
        body: {
          type: "object",
          additionalProperties: false,
          required: ["pollIntervalSeconds"],
          properties: { pollIntervalSeconds: { anyOf: [{ type: "integer", minimum: 0, maximum: 86400 }, { type: "null" }], description: "seconds between background fetches; 0 = never (webhooks only); null = the platform's default" } },
        },
      },
    },
    async (req) => hooks.setPollInterval(req.principal, req.params.app, req.body.pollIntervalSeconds, requestBase(req)),
  );
  app.post<{ Params: { app: string } }>("/apps/:app/hooks/rotate", { schema: { summary: "A new webhook secret (the old one stops working)", params: appParams } }, async (req) =>
    hooks.rotate(req.principal, req.params.app, requestBase(req)),
  );
  app.get<{ Params: { app: string } }>("/apps/:app/deploy-key", { schema: { summary: "The app's SSH deploy key (public part): add it to the repository, read-only", params: appParams } }, async (req) =>
    hooks.deployKey(req.principal, req.params.app),
  );
  app.post<{ Params: { app: string } }>("/apps/:app/deploy-key/rotate", { schema: { summary: "A new deploy key (the old one stops working once removed from the git host)", params: appParams } }, async (req) =>
    hooks.rotateDeployKey(req.principal, req.params.app),
  );
  const hostParams = { type: "object", required: ["host"], properties: { host: { type: "string", minLength: 1, maxLength: 300 } } } as const;
  app.get("/git-host-keys", { schema: { summary: "The git hosts' pinned SSH host keys" } }, async (req) => {
    requireAdmin(req.principal);
    return access.listHostKeys();
  });
  app.put<{ Params: { host: string }; Body: { keys: string } }>(
    "/git-host-keys/:host",
    {
      schema: {
        summary: "Pin a git host's SSH keys (known_hosts lines, as ssh-keyscan prints them); replaces what was pinned",
        params: hostParams,
        body: { type: "object", additionalProperties: false, required: ["keys"], properties: { keys: { type: "string", minLength: 1, maxLength: 20000 } } },
      },
    },
    async (req) => {
      requireAdmin(req.principal);
      return access.pinHostKeys(req.principal.name, req.params.host, req.body.keys);
    },
  );
  app.delete<{ Params: { host: string } }>("/git-host-keys/:host", { schema: { summary: "Forget a git host's keys: the next use pins what it presents", params: hostParams } }, async (req, reply) => {
    requireAdmin(req.principal);
    await access.unpinHostKeys(req.params.host);
    return reply.status(204).send();
  });
};
