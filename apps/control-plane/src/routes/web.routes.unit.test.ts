import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorBody } from "./error-body.js";
import { isDashboardPath, resolveWebDir, webRoutes } from "./web.routes.js";

const INDEX = '<!doctype html><script type="module" src="/assets/app-ABC123.js"></script>';
const JS = "console.log('app')";

/** The app's shape around the plugin: an API route, the API's JSON 404, and the dashboard. */
async function server(dir: string | undefined): Promise<FastifyInstance> {
  const app = Fastify();
  app.setNotFoundHandler((req, reply) => reply.status(404).send(errorBody("not_found", `no route ${req.method} ${req.url.split("?")[0]}`)));
  app.get("/healthz", async () => ({ ok: true }));
  await app.register(async (v1) => v1.get("/apps", async () => []), { prefix: "/v1" });
  await app.register(webRoutes, { dir });
  return app;
}

describe("the web dashboard's routes", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "slipway-web-"));
  let app: FastifyInstance;
  beforeAll(async () => {
    mkdirSync(path.join(dir, "assets"));
    writeFileSync(path.join(dir, "index.html"), INDEX);
    writeFileSync(path.join(dir, "assets", "app-ABC123.js"), JS);
    writeFileSync(path.join(dir, "assets", "app-ABC123.js.gz"), gzipSync(JS));
    app = await server(dir);
  });
  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(["/", "/apps/shop", "/deployments/0198-x?tab=log", "/sign-in"])("answers %s with index.html, uncached, under the CSP", async (url) => {
    const res = await app.inject({ url });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe(INDEX);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["cache-control"]).toBe("no-cache");
    expect(res.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(res.headers["content-security-policy"]).not.toContain("unsafe-inline");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["referrer-policy"]).toBe("same-origin");
  });

  it("serves hashed assets for a year, compressed when the client takes it", async () => {
    const plain = await app.inject({ url: "/assets/app-ABC123.js" });
    expect(plain.statusCode).toBe(200);
    expect(plain.body).toBe(JS);
    expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(plain.headers["content-type"]).toMatch(/javascript/);
    expect(plain.headers["x-content-type-options"]).toBe("nosniff");
    const gz = await app.inject({ url: "/assets/app-ABC123.js", headers: { "accept-encoding": "gzip" } });
    expect(gz.headers["content-encoding"]).toBe("gzip");
  });

  it("leaves the API alone: its routes, and its JSON 404 for what does not exist", async () => {
    expect((await app.inject({ url: "/v1/apps" })).json()).toEqual([]);
    expect((await app.inject({ url: "/healthz" })).json()).toEqual({ ok: true });
    for (const url of ["/v1", "/v1/nope", "/v1/apps/shop/nope", "/assets/missing.js", "/healthz/x"]) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.json().error.code, url).toBe("not_found");
    }
    // Only GET pages: a POST elsewhere is the API's 404.
    expect((await app.inject({ method: "POST", url: "/apps/shop" })).statusCode).toBe(404);
  });

  it("says the dashboard is not built when there is no build; the API is unaffected", async () => {
    const bare = await server(undefined);
    const res = await bare.inject({ url: "/" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(res.body).toContain("dashboard is not built");
    expect((await bare.inject({ url: "/v1/apps" })).json()).toEqual([]);
    expect((await bare.inject({ url: "/apps/shop" })).statusCode).toBe(404);
    await bare.close();
  });

  it("finds the build where it is configured, else beside the control plane, else nowhere", () => {
    expect(resolveWebDir(dir)).toBe(dir);
    expect(resolveWebDir(path.join(dir, "assets"))).toBeUndefined();
    const installed = resolveWebDir(undefined);
    if (installed !== undefined) expect(installed).toMatch(/web[/\\]dist$/);
  });

  it("knows the API's paths from the pages", () => {
    expect(isDashboardPath("/apps/shop")).toBe(true);
    expect(isDashboardPath("/v1x")).toBe(true);
    expect(isDashboardPath("/v1/apps")).toBe(false);
    expect(isDashboardPath("/docs/json")).toBe(false);
    expect(isDashboardPath("/metrics?x")).toBe(false);
  });
});
