import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyPluginAsync, FastifyReply } from "fastify";

/**
 * What every dashboard response carries. The pages are the package's own files only: scripts
 * and styles from this origin, no inline script or style (the build emits none), no framing.
 * connect-src 'self' covers the API and its event streams (same origin).
 */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
});

/** Paths that are never a dashboard page: an unknown one keeps the API's 404 error body. */
const NOT_PAGES = ["/v1", "/docs", "/metrics", "/healthz", "/readyz", "/assets"];

export function isDashboardPath(url: string): boolean {
  const p = url.split("?")[0]!;
  return !NOT_PAGES.some((prefix) => p === prefix || p.startsWith(`${prefix}/`));
}

/**
 * The built dashboard (apps/web's dist: index.html and assets/): `configured` (SLIPWAY_WEB_DIR)
 * when set, else the @slipway/web package installed beside the control plane. Undefined when
 * that directory has no index.html (not built).
 */
export function resolveWebDir(configured: string | undefined): string | undefined {
  let dir = configured;
  if (dir === undefined) {
    try {
      dir = path.join(path.dirname(createRequire(import.meta.url).resolve("@slipway/web/package.json")), "dist");
    } catch {
      return undefined;
    }
  }
  return existsSync(path.join(dir, "index.html")) ? dir : undefined;
}

const NOT_BUILT =
  "The Slipway dashboard is not built here (npm run build builds apps/web; SLIPWAY_WEB_DIR points at another build).\n" +
  "The REST API is at /v1, its documentation at /docs.\n";

/**
 * The web dashboard on the API's origin (issue 14): `/assets/*` are the build's content-hashed
 * files (cached for a year, never revalidated; .br/.gz beside them are served to clients that
 * take them), and every other GET that is not the API's is a page of the single-page app:
 * index.html, never cached, so a new build is picked up at the next load. `dir` undefined (not
 * built): `/` says so in a line of text; the API is unaffected either way.
 */
export const webRoutes: FastifyPluginAsync<{ dir: string | undefined }> = async (app, { dir }) => {
  if (dir === undefined) {
    app.log.warn("the web dashboard is not built: / answers with a note (npm run build, or SLIPWAY_WEB_DIR)");
    app.get("/", { schema: { hide: true } }, async (_req, reply) => reply.type("text/plain; charset=utf-8").header("x-content-type-options", "nosniff").send(NOT_BUILT));
    return;
  }
  app.log.info({ dir }, "serving the web dashboard");

  app.addHook("onSend", async (_req, reply, payload) => {
    reply.headers(DASHBOARD_HEADERS);
    return payload;
  });

  await app.register(fastifyStatic, {
    root: path.join(dir, "assets"),
    prefix: "/assets/",
    // Names carry their content's hash: a file never changes under its name.
    immutable: true,
    maxAge: 365 * 24 * 3600 * 1000,
    preCompressed: true,
    index: false,
    // Answers for files that are not there come from the API's 404 handler.
    wildcard: true,
    decorateReply: false,
    schemaHide: true,
  });

  const indexHtml = path.join(dir, "index.html");
  const page = async (reply: FastifyReply) => {
    // Read at each load (a few hundred bytes): a rebuild is served without a restart.
    const html = await readFile(indexHtml).catch(() => undefined);
    if (html === undefined) return reply.status(503).type("text/plain; charset=utf-8").send(NOT_BUILT);
    return reply.type("text/html; charset=utf-8").header("cache-control", "no-cache").send(html);
  };
  app.get("/", { schema: { hide: true } }, async (_req, reply) => page(reply));
  app.get("/*", { schema: { hide: true } }, async (req, reply) => {
    if (!isDashboardPath(req.url)) return reply.callNotFound();
    return page(reply);
  });
};
