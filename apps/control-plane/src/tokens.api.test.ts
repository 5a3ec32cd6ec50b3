import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SHELL_MEDIA_TYPE, createLogger } from "@slipway/core";
import { buildApp } from "./app.js";
import { LogRelay } from "./bus/log-relay.js";
import { ShellRelay } from "./bus/shell-relay.js";
import { AuthService, hashToken } from "./services/auth.service.js";
import { DrainService } from "./services/drain.service.js";
import { Lifecycle } from "./services/lifecycle.service.js";
import { PlacementService } from "./services/placement.service.js";
import { testControlPlane, type DbKind, type TestControlPlane } from "./testing/harness.js";

// Issue 11, "Tokens and roles": each attack below failed before the fix (a revoked or expired
// token still worked, there was no viewer, a deployer could prune every backup with retention
// 0/0/0, a replaced SLIPWAY_ADMIN_TOKEN stayed valid). Over both embedded PGlite and PostgreSQL.

type Db = TestControlPlane["database"]["db"];
type Route = { method: string; path: string };

/** Every table a request could change, as sorted JSON rows (a token's last use is not a change the caller made). */
const TABLES = ["api_tokens", "join_tokens", "hosts", "apps", "environments", "deployments", "jobs", "activity", "environment_variables", "domains", "backups", "content_copies"];
async function snapshot(db: Db): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of TABLES) {
    const rows = (await sql`SELECT * FROM ${sql.table(t)}`.execute(db)).rows as Array<Record<string, unknown>>;
    out[t] = rows.map(({ last_used_at: _lastUse, ...rest }) => JSON.stringify(rest)).sort();
  }
  return out;
}

/** The API's routes as its OpenAPI document lists them (so a route added later is covered too). */
async function documentedRoutes(app: FastifyInstance): Promise<Route[]> {
  const doc = (await app.inject({ method: "GET", url: "/docs/json" })).json() as { paths: Record<string, Record<string, unknown>> };
  return Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.keys(ops)
      .filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))
      .map((m) => ({ method: m.toUpperCase(), path: p })),
  );
}
const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function fill(route: Route, value: (name: string, route: Route) => string): string {
  return route.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(value(name, route)));
}

describe.each<DbKind>(["pglite", "postgres"])("tokens and roles on %s", (kind) => {
  let cp: TestControlPlane;
  let app: FastifyInstance;
  let adminToken: string;
  /** The API's clock runs this far ahead of the real one (expiry without waiting). */
  let clockOffsetMs = 0;
  const log = createLogger("test", "silent");
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const call = (method: string, url: string, payload?: unknown, headers: Record<string, string> = bearer(adminToken)) =>
    app.inject({ method: method as "GET", url, headers, ...(payload !== undefined ? { payload: payload as object } : {}) });
  const createToken = async (body: Record<string, unknown>) => {
    const res = await call("POST", "/v1/tokens", body);
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { token: string; id: string };
  };
  /** Ids of things that exist, per app: a deployment, a backup, a content copy, a domain. */
  const ids: Record<string, { deployment: string; backup: string; copy: string; hostname: string }> = {};

  beforeAll(async () => {
    cp = await testControlPlane(kind);
    adminToken = cp.adminToken;
    const db = cp.database.db;
    // The harness's app without the NATS relays and drains: this one has every route the product has
    // (the relays are never reached: every request below is refused, or finds no running container).
    const lifecycle = new Lifecycle(log);
    const placement = new PlacementService(() => cp.services.hosts.onlineWindowMs());
    app = await buildApp({
      db,
      log,
      ...cp.services,
      auth: new AuthService(db, log, () => new Date(Date.now() + clockOffsetMs)),
      drains: new DrainService(db, lifecycle, cp.services.deployments, placement, log),
      logs: new LogRelay(() => ({ url: "nats://127.0.0.1:9" }), log),
      shells: new ShellRelay(() => Promise.reject(new Error("no NATS in this test")), log),
      joinTokenTtlMs: 60_000,
      readiness: [],
      // Live event streams end after 50 ms here (a client would reconnect), so a read of every GET route ends.
      streams: { pollIntervalMs: 10, maxDurationMs: 50 },
    });
    for (const name of ["shop", "other"]) {
      expect((await call("POST", "/v1/apps", { name, repository: `https://git.example.test/${name}.git` })).statusCode).toBe(201);
      expect((await call("PATCH", `/v1/apps/${name}/environments/test/variables`, { API_KEY: `secret-of-${name}` })).statusCode).toBe(200);
      const hostname = `www.${name}.test`; // not under the base domain example.test: those are the platform's
      expect((await call("POST", `/v1/apps/${name}/environments/live/domains`, { hostname })).statusCode).toBe(201);
      expect((await call("POST", `/v1/apps/${name}/environments`, { name: "qa" })).statusCode).toBe(201);
      const deployment = await call("POST", `/v1/apps/${name}/environments/qa/deployments`, {});
      expect(deployment.statusCode, deployment.body).toBe(202);
      // A content copy, and the backup of its target it takes first.
      const copy = await call("POST", `/v1/apps/${name}/environments/test/content-copies`, { from: "live", confirm: true });
      expect(copy.statusCode, copy.body).toBe(202);
      ids[name] = { deployment: deployment.json().id, backup: copy.json().safetyBackupId, copy: copy.json().id, hostname };
    }
  });
  afterAll(async () => {
    await app?.close();
    await cp?.close();
  });

  it("lists tokens without their secrets, and a revoked token gets 401 on the very next call", async () => {
    const { token, id } = await createToken({ name: "ci-shop", role: "deployer", apps: ["shop"] });
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await call("GET", "/v1/apps/shop", undefined, bearer(token))).statusCode).toBe(200);

    const list = await call("GET", "/v1/tokens");
    expect(list.statusCode).toBe(200);
    const rows = list.json() as Array<Record<string, unknown>>;
    expect(rows.find((t) => t.id === id)).toEqual({
      id,
      name: "ci-shop",
      role: "deployer",
      apps: ["shop"],
      bootstrap: false,
      createdAt: expect.stringMatching(/^\d{4}-/),
      expiresAt: null,
      lastUsedAt: expect.stringMatching(/^\d{4}-/),
      revokedAt: null,
    });
    expect(rows.filter((t) => t.bootstrap && t.revokedAt === null)).toEqual([expect.objectContaining({ role: "admin", name: "bootstrap-admin" })]);
    for (const secret of [token, adminToken, hashToken(token), hashToken(adminToken)]) expect(list.body).not.toContain(secret);

    // Only an admin lists or revokes.
    expect((await call("GET", "/v1/tokens", undefined, bearer(token))).statusCode).toBe(403);
    expect((await call("DELETE", `/v1/tokens/${id}`, undefined, bearer(token))).statusCode).toBe(403);

    const revoked = await call("DELETE", `/v1/tokens/${id}`);
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ id, name: "ci-shop", revokedAt: expect.stringMatching(/^\d{4}-/) });
    const next = await call("GET", "/v1/apps/shop", undefined, bearer(token));
    expect(next.statusCode).toBe(401);
    expect(next.json().error.code).toBe("unauthenticated");
    expect((await call("GET", "/v1/tokens")).json().find((t: { id: string }) => t.id === id).revokedAt).toBe(revoked.json().revokedAt);
    // Again: nothing more happens; an unknown id is 404.
    expect((await call("DELETE", `/v1/tokens/${id}`)).json().revokedAt).toBe(revoked.json().revokedAt);
    expect((await call("DELETE", "/v1/tokens/00000000-0000-4000-8000-000000000000")).statusCode).toBe(404);

    const activity = await call("GET", "/v1/activity");
    const entries = (activity.json() as Array<{ action: string; actor: string; details: { id?: string; name?: string } }>).filter((a) => a.details?.name === "ci-shop");
    expect(entries.map((a) => a.action).sort()).toEqual(["token.created", "token.revoked"]);
    expect(entries.every((a) => a.actor === "bootstrap-admin")).toBe(true);
    expect(activity.body).not.toContain(token);
  });

  it("an expired token gets 401 saying it expired; expiresAt must be a time in the future", async () => {
    const count = async () => (await snapshot(cp.database.db)).api_tokens!.length;
    const before = await count();
    for (const expiresAt of ["tomorrow", "2026-13-45T00:00:00Z", new Date(Date.now() - 60_000).toISOString()]) {
      const res = await call("POST", "/v1/tokens", { name: "short", role: "deployer", apps: ["shop"], expiresAt });
      expect({ expiresAt, status: res.statusCode, code: res.json().error?.code }).toEqual({ expiresAt, status: 400, code: "invalid_request" });
      expect(res.json().error.details).toHaveProperty("expiresAt");
    }
    expect(await count()).toBe(before);

    const expiresAt = new Date(Date.now() + 5 * 60_000).toISOString();
    const created = await call("POST", "/v1/tokens", { name: "short", role: "deployer", apps: ["shop"], expiresAt });
    expect(created.statusCode).toBe(201);
    expect(created.json().expiresAt).toBe(expiresAt);
    const token = created.json().token as string;
    expect((await call("GET", "/v1/apps/shop", undefined, bearer(token))).statusCode).toBe(200);

    clockOffsetMs = 5 * 60_000 + 1;
    try {
      const res = await call("GET", "/v1/apps/shop", undefined, bearer(token));
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toMatchObject({ code: "unauthenticated", message: expect.stringMatching(/expired/) });
      // The admin token has no expiry.
      expect((await call("GET", "/v1/apps/shop")).statusCode).toBe(200);
    } finally {
      clockOffsetMs = 0;
    }
    expect((await call("GET", "/v1/tokens")).json().find((t: { id: string }) => t.id === created.json().id).expiresAt).toBe(expiresAt);
  });

  it("a viewer reads the apps it was given, sees no secret value and changes nothing through any mutating route", async () => {
    const noApps = await call("POST", "/v1/tokens", { name: "dash", role: "viewer" });
    expect(noApps.statusCode).toBe(400);
    expect(noApps.json().error.details).toHaveProperty("apps");
    const { token, id } = await createToken({ name: "dash", role: "viewer", apps: ["shop"] });
    const viewer = bearer(token);

    const routes = await documentedRoutes(app);
    const value = (name: string, r: Route): string => {
      if (name === "app") return "shop";
      if (name === "env") return "test";
      if (name === "hostname") return ids.shop!.hostname;
      if (r.path.startsWith("/v1/deployments/")) return ids.shop!.deployment;
      if (r.path.startsWith("/v1/backups/")) return ids.shop!.backup;
      if (r.path.startsWith("/v1/tokens/")) return id;
      return "00000000-0000-4000-8000-000000000000";
    };

    // Reads of its app: every GET answers (200, or 404/409 for what is not there), never 403 or 5xx.
    // (The terminal's WebSocket is a GET that runs commands, not a read: a viewer is refused it, like POST …/shell.)
    const shellWs = "/v1/apps/{app}/environments/{env}/shell/ws";
    expect((await call("GET", fill({ method: "GET", path: shellWs }, value), undefined, viewer)).statusCode).toBe(403);
    for (const r of routes.filter((x) => x.method === "GET" && x.path !== shellWs && (x.path.includes("{app}") || x.path.startsWith("/v1/deployments/")))) {
      const res = await call("GET", fill(r, value), undefined, viewer);
      expect({ route: `${r.method} ${r.path}`, forbidden: res.statusCode === 403, failed: res.statusCode >= 500 }).toEqual({ route: `${r.method} ${r.path}`, forbidden: false, failed: false });
    }
    const vars = await call("GET", "/v1/apps/shop/environments/test/variables", undefined, viewer);
    expect(vars.statusCode).toBe(200);
    expect(vars.body).not.toContain("secret-of-shop");
    expect((await call("GET", "/v1/apps", undefined, viewer)).json().map((a: { name: string }) => a.name)).toEqual(["shop"]);
    for (const url of ["/v1/apps/shop/environments/test/variables?reveal=true", "/v1/apps/other", "/v1/apps/other/environments/test/variables", "/v1/tokens", "/v1/hosts", "/v1/activity"]) {
      const res = await call("GET", url, undefined, viewer);
      expect({ url, status: res.statusCode, code: res.json().error?.code }).toEqual({ url, status: 403, code: "forbidden" });
      expect(res.body).not.toContain("secret-of-");
    }

    // Every route that changes something, as the OpenAPI document lists them: 403, and nothing changed.
    // Signing in and out change nothing but the caller's own browser session, which a viewer may (sessions.api.test.ts).
    const mutating = routes.filter((r) => MUTATING.has(r.method) && !r.path.startsWith("/v1/sessions"));
    expect(mutating.map((r) => `${r.method} ${r.path}`)).toEqual(
      expect.arrayContaining([
        "POST /v1/tokens",
        "DELETE /v1/tokens/{id}",
        "POST /v1/apps/{app}/environments/{env}/deployments",
        "PATCH /v1/apps/{app}/environments/{env}/variables",
        "PUT /v1/apps/{app}/environments/{env}/backup-schedule",
        "POST /v1/apps/{app}/environments/{env}/shell",
        "POST /v1/backups/{id}/restore",
        "POST /v1/hosts/{id}/drain",
        "DELETE /v1/apps/{app}",
      ]),
    );
    expect(mutating.length).toBeGreaterThanOrEqual(25);
    const before = await snapshot(cp.database.db);
    for (const r of mutating) {
      const res = await call(r.method, fill(r, value), r.method === "DELETE" ? undefined : {}, viewer);
      const route = `${r.method} ${r.path}`;
      expect({ route, status: res.statusCode, code: res.json().error?.code }).toEqual({ route, status: 403, code: "forbidden" });
    }
    expect(await snapshot(cp.database.db)).toEqual(before);
  });

  it("a deployer cannot touch an app it was not given, through any route, and opens no shell in live", async () => {
    const { token } = await createToken({ name: "ci-shop-2", role: "deployer", apps: ["shop"] });
    const deployer = bearer(token);
    const routes = await documentedRoutes(app);
    const value = (name: string, r: Route): string => {
      if (name === "app") return "other";
      if (name === "env") return "test";
      if (name === "hostname") return ids.other!.hostname;
      if (r.path.startsWith("/v1/deployments/")) return ids.other!.deployment;
      if (r.path.startsWith("/v1/backups/")) return ids.other!.backup;
      if (r.path.startsWith("/v1/content-copies/")) return ids.other!.copy;
      return "00000000-0000-4000-8000-000000000000";
    };
    // Everything of `other` (by name or by id), and everything that is an admin's (tokens, hosts, the whole feed).
    const targets = routes.filter((r) => r.path.includes("{app}") || /^\/v1\/(deployments|backups|content-copies|tokens|join-tokens|hosts)\b/.test(r.path) || r.path === "/v1/activity");
    expect(targets.length).toBeGreaterThanOrEqual(30);
    const before = await snapshot(cp.database.db);
    for (const r of targets) {
      const res = await call(r.method, fill(r, value), MUTATING.has(r.method) && r.method !== "DELETE" ? {} : undefined, deployer);
      const route = `${r.method} ${r.path}`;
      expect({ route, status: res.statusCode, code: res.json().error?.code }).toEqual({ route, status: 403, code: "forbidden" });
      expect(res.body).not.toContain("secret-of-other");
    }
    expect(await snapshot(cp.database.db)).toEqual(before);

    // Its own app it may change; a shell only outside live (in test there is no running container here).
    expect((await call("PATCH", "/v1/apps/shop/environments/test/variables", { GREETING: "hi" }, deployer)).statusCode).toBe(200);
    const shellHeaders = { ...deployer, "content-type": SHELL_MEDIA_TYPE };
    const live = await app.inject({ method: "POST", url: "/v1/apps/shop/environments/live/shell", headers: shellHeaders, payload: "" });
    expect({ status: live.statusCode, code: live.json().error?.code }).toEqual({ status: 403, code: "forbidden" });
    const test = await app.inject({ method: "POST", url: "/v1/apps/shop/environments/test/shell", headers: shellHeaders, payload: "" });
    expect(test.statusCode).not.toBe(403);
  });

  it("only an admin may set backup retention below 1 daily, 1 weekly, 1 monthly (it prunes scheduled backups)", async () => {
    const { token } = await createToken({ name: "ci-shop-3", role: "deployer", apps: ["shop"] });
    const { token: viewerToken } = await createToken({ name: "dash-2", role: "viewer", apps: ["shop"] });
    const url = "/v1/apps/shop/environments/live/backup-schedule";
    const before = (await call("GET", url)).json();
    expect(before).toMatchObject({ enabled: true });
    for (const retention of [{ daily: 0, weekly: 0, monthly: 0 }, { daily: 7, weekly: 0, monthly: 12 }, { daily: 1, weekly: 1, monthly: 0 }]) {
      const res = await call("PUT", url, { enabled: true, retention }, bearer(token));
      expect({ retention, status: res.statusCode, code: res.json().error?.code }).toEqual({ retention, status: 403, code: "forbidden" });
      expect(res.json().error.message).toMatch(/admin/);
    }
    expect((await call("PUT", url, { enabled: true, retention: { daily: 0, weekly: 0, monthly: 0 } }, bearer(viewerToken))).statusCode).toBe(403);
    expect((await call("GET", url)).json()).toEqual(before);

    expect((await call("PUT", url, { enabled: true, retention: { daily: 1, weekly: 1, monthly: 1 } }, bearer(token))).statusCode).toBe(200);
    expect((await call("GET", url)).json()).toEqual({ enabled: true, retention: { daily: 1, weekly: 1, monthly: 1 } });
    expect((await call("PUT", url, { enabled: true, retention: { daily: 0, weekly: 0, monthly: 0 } })).statusCode).toBe(200);
    expect((await call("GET", url)).json()).toEqual({ enabled: true, retention: { daily: 0, weekly: 0, monthly: 0 } });
  });

  // Last: it replaces the admin token the other tests use.
  it("a new SLIPWAY_ADMIN_TOKEN at start revokes the previous bootstrap token; a revoked one never comes back; the last admin stays", async () => {
    const first = adminToken;
    const { token: ops, id: opsId } = await createToken({ name: "ops", role: "admin" });
    const dir = mkdtempSync(path.join(tmpdir(), "slipway-bootstrap-"));
    const start = (preset?: string) => new AuthService(cp.database.db, log).bootstrapAdmin(dir, preset);

    // The same token again: nothing changes.
    await start(first);
    expect((await call("GET", "/v1/apps", undefined, bearer(first))).statusCode).toBe(200);

    const second = `slw_${randomBytes(24).toString("hex")}`;
    await start(second);
    expect(readFileSync(path.join(dir, "admin-token"), "utf8")).toBe(`${second}\n`);
    const old = await call("GET", "/v1/apps", undefined, bearer(first));
    expect({ status: old.statusCode, code: old.json().error?.code }).toEqual({ status: 401, code: "unauthenticated" });
    expect((await call("GET", "/v1/apps", undefined, bearer(second))).statusCode).toBe(200);
    expect((await call("GET", "/v1/apps", undefined, bearer(ops))).statusCode).toBe(200);
    adminToken = second;

    const bootstrap = ((await call("GET", "/v1/tokens")).json() as Array<{ bootstrap: boolean; revokedAt: string | null; role: string }>).filter((t) => t.bootstrap);
    expect(bootstrap.filter((t) => t.revokedAt === null)).toHaveLength(1);
    expect(bootstrap.filter((t) => t.revokedAt !== null)).toHaveLength(1);
    const feed = (await call("GET", "/v1/activity")).json() as Array<{ action: string; details: { reason?: string } }>;
    expect(feed.some((a) => a.action === "token.revoked" && /SLIPWAY_ADMIN_TOKEN/.test(a.details.reason ?? ""))).toBe(true);

    // Configuration cannot bring a revoked token back.
    await expect(start(first)).rejects.toThrow(/revoked/);
    expect((await call("GET", "/v1/apps", undefined, bearer(first))).statusCode).toBe(401);

    // The last admin token cannot be revoked (nobody could create another).
    expect((await call("DELETE", `/v1/tokens/${opsId}`)).statusCode).toBe(200);
    const secondId = ((await call("GET", "/v1/tokens")).json() as Array<{ id: string; bootstrap: boolean; revokedAt: string | null }>).find((t) => t.bootstrap && t.revokedAt === null)!.id;
    const last = await call("DELETE", `/v1/tokens/${secondId}`);
    expect({ status: last.statusCode, code: last.json().error?.code }).toEqual({ status: 409, code: "conflict" });
    expect((await call("GET", "/v1/apps")).statusCode).toBe(200);
  });
});
