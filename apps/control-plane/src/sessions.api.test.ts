import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SHELL_MEDIA_TYPE, createLogger } from "@slipway/core";
import { buildApp } from "./app.js";
import { ShellRelay } from "./bus/shell-relay.js";
import { AuthService } from "./services/auth.service.js";
import { SessionService } from "./services/session.service.js";
import { testControlPlane, type DbKind, type TestControlPlane } from "./testing/harness.js";

// Issue 14, browser sessions: an API token exchanged for an httpOnly SameSite=Strict cookie, a
// CSRF token on every change, roles exactly as with the bearer token, and the session ending with
// its token. Over both embedded PGlite and PostgreSQL.

type Db = TestControlPlane["database"]["db"];
type Headers = Record<string, string>;

const TTL_MS = 12 * 3_600_000;
/** Every table a request could change, as sorted JSON rows (last uses are not a change the caller made). */
const TABLES = ["api_tokens", "sessions", "apps", "environments", "environment_variables", "domains", "deployments", "jobs", "activity"];
async function snapshot(db: Db): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of TABLES) {
    const rows = (await sql`SELECT * FROM ${sql.table(t)}`.execute(db)).rows as Array<Record<string, unknown>>;
    out[t] = rows.map(({ last_used_at: _lastUse, expires_at: expiresAt, ...rest }) => JSON.stringify(t === "sessions" ? rest : { ...rest, expiresAt })).sort();
  }
  return out;
}
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

describe.each<DbKind>(["pglite", "postgres"])("browser sessions on %s", (kind) => {
  let cp: TestControlPlane;
  let app: FastifyInstance;
  let db: Db;
  /** The API's clock runs this far ahead of the real one (expiry without waiting). */
  let clockOffsetMs = 0;
  const clock = () => new Date(Date.now() + clockOffsetMs);
  /** Every line the API logged, at trace level. */
  const logLines: string[] = [];
  /** Every cookie value and CSRF token handed out, to look for in logs and the feed. */
  const secrets: string[] = [];
  const tokens: Record<"deployer" | "viewer", { token: string; id: string }> = {} as never;

  const admin = (method: string, url: string, payload?: unknown) =>
    app.inject({ method: method as "GET", url, headers: { authorization: `Bearer ${cp.adminToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
  const call = (method: string, url: string, headers: Headers, payload?: unknown) =>
    app.inject({ method: method as "GET", url, headers, ...(payload !== undefined ? { payload: payload as object } : {}) });

  interface Signed { cookie: string; value: string; csrf: string; setCookie: string; body: Record<string, unknown> }
  async function signIn(token: string, headers: Headers = {}): Promise<Signed> {
    const res = await call("POST", "/v1/sessions", headers, { token });
    expect(res.statusCode, res.body).toBe(201);
    const setCookie = String(res.headers["set-cookie"]);
    const value = /^slipway_session=([^;]*)/.exec(setCookie)![1]!;
    const body = res.json() as Record<string, unknown>;
    secrets.push(value, body.csrfToken as string);
    return { cookie: `slipway_session=${value}`, value, csrf: body.csrfToken as string, setCookie, body };
  }
  const withCookie = (s: Signed, extra: Headers = {}): Headers => ({ cookie: s.cookie, ...extra });
  const withCsrf = (s: Signed, extra: Headers = {}): Headers => ({ cookie: s.cookie, "x-csrf-token": s.csrf, ...extra });
  const sessionRows = async () => (await sql<{ secret_hash: string; token_id: string; expires_at: Date }>`SELECT secret_hash, token_id, expires_at FROM sessions`.execute(db)).rows;

  beforeAll(async () => {
    cp = await testControlPlane(kind);
    db = cp.database.db;
    const log = createLogger("test", "trace", { write: (line: string) => void logLines.push(line) });
    const auth = new AuthService(db, log, clock);
    // The harness's app with this test's clock and log, and the shell route (its relay is never reached: refused before).
    const shells = new ShellRelay(() => Promise.reject(new Error("no NATS in this test")), log);
    app = await buildApp({ db, log, ...cp.services, auth, sessions: new SessionService(db, auth, log, { ttlMs: TTL_MS, now: clock }), shells, joinTokenTtlMs: 60_000, readiness: [] });
    for (const name of ["shop", "other"]) {
      expect((await admin("POST", "/v1/apps", { name, repository: `https://git.example.test/${name}.git` })).statusCode).toBe(201);
    }
    for (const role of ["deployer", "viewer"] as const) {
      const res = await admin("POST", "/v1/tokens", { name: `${role}-shop`, role, apps: ["shop"] });
      expect(res.statusCode).toBe(201);
      tokens[role] = res.json();
    }
  });
  afterAll(async () => {
    await app?.close();
    await cp?.close();
  });

  it("signs in: a random cookie with exactly HttpOnly, SameSite=Strict and Path=/, stored only as a hash; the cookie authenticates reads", async () => {
    const s = await signIn(cp.adminToken);
    expect(s.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s.setCookie).toBe(`slipway_session=${s.value}; Path=/; HttpOnly; SameSite=Strict`);
    expect(s.body).toEqual({ csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), principal: { name: "bootstrap-admin", role: "admin", apps: [] }, expiresAt: expect.any(String) });
    expect(Math.abs(Date.parse(s.body.expiresAt as string) - Date.now() - TTL_MS)).toBeLessThan(60_000);
    // The database has the hash, never the secret or the CSRF token.
    const rows = (await sql`SELECT * FROM sessions`.execute(db)).rows;
    expect(rows.some((r) => (r as { secret_hash: string }).secret_hash === sha256(s.value))).toBe(true);
    for (const secret of [s.value, s.csrf]) expect(JSON.stringify(rows)).not.toContain(secret);

    const apps = await call("GET", "/v1/apps", withCookie(s));
    expect(apps.statusCode, apps.body).toBe(200);
    expect(apps.json().map((a: { name: string }) => a.name).sort()).toEqual(["other", "shop"]);
    const current = await call("GET", "/v1/sessions/current", withCookie(s));
    expect(current.statusCode).toBe(200);
    expect(current.headers["cache-control"]).toBe("no-store");
    expect(current.json()).toEqual(s.body);
    // A bearer header wins: there is no session then.
    const bearer = await call("GET", "/v1/sessions/current", { authorization: `Bearer ${cp.adminToken}`, cookie: s.cookie });
    expect({ status: bearer.statusCode, code: bearer.json().error?.code }).toEqual({ status: 404, code: "not_found" });
  });

  it("a change with the cookie needs the session's CSRF token (403 before anything runs); with it, it works", async () => {
    const s = await signIn(cp.adminToken);
    const url = "/v1/apps/shop/environments/test/variables";
    const before = await snapshot(db);
    const flipped = s.csrf.slice(0, -1) + (s.csrf.endsWith("A") ? "B" : "A");
    for (const headers of [withCookie(s), withCookie(s, { "x-csrf-token": "" }), withCookie(s, { "x-csrf-token": s.csrf.slice(1) }), withCookie(s, { "x-csrf-token": flipped })]) {
      const res = await call("PATCH", url, headers, { GREETING: "hi" });
      expect({ status: res.statusCode, body: res.json() }).toEqual({ status: 403, body: { error: { code: "forbidden", message: "missing or wrong CSRF token" } } });
    }
    // Another session's CSRF token is not this one's.
    const other = await signIn(cp.adminToken);
    expect((await call("PATCH", url, withCookie(s, { "x-csrf-token": other.csrf }), { GREETING: "hi" })).statusCode).toBe(403);
    // A POST, a DELETE, the shell: the same.
    expect((await call("POST", "/v1/apps", withCookie(s), { name: "nope", repository: "https://git.example.test/nope.git" })).statusCode).toBe(403);
    expect((await call("DELETE", "/v1/apps/other?confirm=other", withCookie(s))).statusCode).toBe(403);
    expect((await call("DELETE", "/v1/sessions/current", withCookie(s))).statusCode).toBe(403);
    expect((await app.inject({ method: "POST", url: "/v1/apps/shop/environments/test/shell", headers: withCookie(s, { "content-type": SHELL_MEDIA_TYPE }), payload: "" })).statusCode).toBe(403);
    const after = await snapshot(db);
    // Only the second sign-in happened.
    expect({ ...after, sessions: [], activity: [] }).toEqual({ ...before, sessions: [], activity: [] });
    expect(after.sessions!.length).toBe(before.sessions!.length + 1);

    const ok = await call("PATCH", url, withCsrf(s), { GREETING: "hi" });
    expect(ok.statusCode, ok.body).toBe(200);
    expect((await admin("GET", `${url}?reveal=true`)).json()).toMatchObject({ GREETING: "hi" });
    const feed = (await admin("GET", "/v1/activity")).json() as Array<{ action: string; actor: string }>;
    expect(feed[0]).toMatchObject({ actor: "bootstrap-admin" });
  });

  it("refuses requests from another site, even with the CSRF token, and sign-ins from another site", async () => {
    const s = await signIn(cp.adminToken);
    const url = "/v1/apps/shop/environments/test/variables";
    const before = await snapshot(db);
    for (const extra of [{ origin: "https://evil.example" }, { origin: "null" }, { origin: "http://localhost.evil.example" }, { "sec-fetch-site": "cross-site" }, { "sec-fetch-site": "same-site" }]) {
      const res = await call("PATCH", url, withCsrf(s, extra), { GREETING: "evil" });
      expect({ extra, status: res.statusCode, code: res.json().error?.code, message: res.json().error?.message }).toEqual({ extra, status: 403, code: "forbidden", message: expect.stringMatching(/^cross-site request refused/) });
      // Reads too: a sibling host of the same site gets nothing with the cookie.
      expect((await call("GET", url, withCookie(s, extra))).statusCode).toBe(403);
    }
    const signInRes = await call("POST", "/v1/sessions", { origin: "https://evil.example" }, { token: cp.adminToken });
    expect({ status: signInRes.statusCode, code: signInRes.json().error?.code }).toEqual({ status: 403, code: "forbidden" });
    expect(signInRes.headers["set-cookie"]).toBeUndefined();
    expect(await snapshot(db)).toEqual(before);

    // The dashboard's own origin (the Host the request came to), as a browser sends it.
    const same = await call("PATCH", url, withCsrf(s, { origin: "http://localhost:80", "sec-fetch-site": "same-origin" }), { GREETING: "same" });
    expect(same.statusCode, same.body).toBe(200);
    expect((await call("PATCH", url, withCsrf(s, { host: "slipway.example.test", origin: "http://slipway.example.test" }), { GREETING: "same" })).statusCode).toBe(200);
    expect((await call("PATCH", url, withCsrf(s, { host: "127.0.0.1:8443", "x-forwarded-host": "slipway.example.test", origin: "https://slipway.example.test" }), { GREETING: "same" })).statusCode).toBe(200);
    expect((await call("GET", url, withCookie(s, { "sec-fetch-site": "none" }))).statusCode).toBe(200);
    // A WebSocket handshake: SameSite does not stop a sibling host's page, and no CORS check applies, so it must carry this origin.
    const ws = { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" };
    expect((await call("GET", "/v1/apps", withCookie(s, ws))).statusCode).toBe(403);
    expect((await call("GET", "/v1/apps", withCookie(s, { ...ws, origin: "https://evil.example" }))).statusCode).toBe(403);
    expect((await call("GET", "/v1/apps", withCookie(s, { ...ws, origin: "http://localhost" }))).statusCode).not.toBe(403);
    // Bearer clients (the CLI, scripts) are not browsers: no Origin rule, no CSRF token.
    expect((await call("PATCH", url, { authorization: `Bearer ${cp.adminToken}`, origin: "https://elsewhere.example" }, { GREETING: "cli" })).statusCode).toBe(200);
  });

  it("a viewer's cookie changes nothing (403 as with its bearer token); it reads its app and may sign out", async () => {
    const s = await signIn(tokens.viewer.token);
    expect(s.body.principal).toEqual({ name: "viewer-shop", role: "viewer", apps: ["shop"] });
    const before = await snapshot(db);
    for (const [method, url, body] of [["PATCH", "/v1/apps/shop/environments/test/variables", { A: "1" }], ["POST", "/v1/apps/shop/environments/test/deployments", {}], ["DELETE", "/v1/apps/shop?confirm=shop", undefined], ["POST", "/v1/tokens", { name: "x", role: "admin" }]] as const) {
      const viaCookie = await call(method, url, withCsrf(s), body);
      const viaBearer = await call(method, url, { authorization: `Bearer ${tokens.viewer.token}` }, body);
      expect({ url, status: viaCookie.statusCode, body: viaCookie.json() }).toEqual({ url, status: 403, body: viaBearer.json() });
    }
    expect(await snapshot(db)).toEqual(before);
    expect((await call("GET", "/v1/apps/shop", withCookie(s))).statusCode).toBe(200);
    expect((await call("GET", "/v1/apps/other", withCookie(s))).statusCode).toBe(403);
    expect((await call("GET", "/v1/apps/shop/environments/test/variables?reveal=true", withCookie(s))).statusCode).toBe(403);
    const out = await call("DELETE", "/v1/sessions/current", withCsrf(s));
    expect(out.statusCode, out.body).toBe(204);
  });

  it("a deployer's cookie is scoped to its apps, and opens no shell in live", async () => {
    const s = await signIn(tokens.deployer.token);
    const before = await snapshot(db);
    for (const [method, url, body] of [["GET", "/v1/apps/other", undefined], ["PATCH", "/v1/apps/other/environments/test/variables", { A: "1" }], ["GET", "/v1/tokens", undefined], ["GET", "/v1/hosts", undefined]] as const) {
      const res = await call(method, url, withCsrf(s), body);
      expect({ url, status: res.statusCode, code: res.json().error?.code }).toEqual({ url, status: 403, code: "forbidden" });
    }
    const live = await app.inject({ method: "POST", url: "/v1/apps/shop/environments/live/shell", headers: withCsrf(s, { "content-type": SHELL_MEDIA_TYPE }), payload: "" });
    expect({ status: live.statusCode, code: live.json().error?.code }).toEqual({ status: 403, code: "forbidden" });
    expect(await snapshot(db)).toEqual(before);
    expect((await call("PATCH", "/v1/apps/shop/environments/test/variables", withCsrf(s), { A: "1" })).statusCode).toBe(200);

    // A deployment, its log followed with the cookie (it ends when the deployment is cancelled).
    const d = await call("POST", "/v1/apps/shop/environments/test/deployments", withCsrf(s), {});
    expect(d.statusCode, d.body).toBe(202);
    expect((await call("POST", `/v1/deployments/${d.json().id}/cancel`, withCsrf(s))).statusCode).toBe(202);
    const log = await call("GET", `/v1/deployments/${d.json().id}/log?follow=true`, withCookie(s));
    expect(log.statusCode, log.body).toBe(200);
    expect(log.headers["content-type"]).toMatch(/^text\/plain/);
    // The dashboard's live stream of it (Server-Sent Events): the same cookie, and it ends with the final state.
    const events = await call("GET", `/v1/deployments/${d.json().id}/log/events`, withCookie(s));
    expect(events.statusCode, events.body).toBe(200);
    expect(events.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(events.body).toMatch(/event: end\ndata: \{"state":"cancelled"/);
    // Another app's stream is refused before it starts, as with the bearer token.
    expect((await call("GET", "/v1/apps/other/events", withCookie(s))).statusCode).toBe(403);
  });

  it("revoking the token ends its sessions at once: the next request is 401 and the cookie is cleared", async () => {
    const created = await admin("POST", "/v1/tokens", { name: "short-lived", role: "deployer", apps: ["shop"] });
    const { token, id } = created.json() as { token: string; id: string };
    const s = await signIn(token);
    const s2 = await signIn(token);
    expect((await call("GET", "/v1/apps/shop", withCookie(s))).statusCode).toBe(200);
    expect((await sessionRows()).filter((r) => r.token_id === id)).toHaveLength(2);

    expect((await admin("DELETE", `/v1/tokens/${id}`)).statusCode).toBe(200);
    for (const x of [s, s2]) {
      const res = await call("GET", "/v1/apps/shop", withCookie(x));
      expect({ status: res.statusCode, code: res.json().error?.code }).toEqual({ status: 401, code: "unauthenticated" });
      expect(res.headers["set-cookie"]).toBe("slipway_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    }
    expect((await sessionRows()).filter((r) => r.token_id === id)).toHaveLength(0);
    // And a revoked token signs in no more.
    expect((await call("POST", "/v1/sessions", {}, { token })).statusCode).toBe(401);
  });

  it("expires: sliding with use, never beyond the token's expiry; expired ones are pruned", async () => {
    const s = await signIn(tokens.deployer.token);
    const start = Date.parse(s.body.expiresAt as string) - TTL_MS;
    try {
      // Used after 11 h: it slides to 11 h + 12 h.
      clockOffsetMs = 11 * 3_600_000;
      const mid = await call("GET", "/v1/sessions/current", withCookie(s));
      expect(mid.statusCode).toBe(200);
      expect(Date.parse(mid.json().expiresAt) - start).toBeGreaterThanOrEqual(23 * 3_600_000 - 1000);
      // 20 h after sign-in it still works (it would not without the slide) ...
      clockOffsetMs = 20 * 3_600_000;
      expect((await call("GET", "/v1/apps/shop", withCookie(s))).statusCode).toBe(200);
      // ... and 12 h after its last use it is over.
      clockOffsetMs = 32 * 3_600_000 + 60_000;
      const late = await call("GET", "/v1/apps/shop", withCookie(s));
      expect({ status: late.statusCode, message: late.json().error?.message }).toEqual({ status: 401, message: expect.stringMatching(/expired/) });
      expect(late.headers["set-cookie"]).toMatch(/^slipway_session=; .*Max-Age=0/);
    } finally {
      clockOffsetMs = 0;
    }

    // A token that expires in an hour: its session ends then, however recently used.
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const short = (await admin("POST", "/v1/tokens", { name: "one-hour", role: "viewer", apps: ["shop"], expiresAt })).json() as { token: string; id: string };
    const t = await signIn(short.token);
    expect(t.body.expiresAt).toBe(expiresAt);
    try {
      clockOffsetMs = 30 * 60_000;
      expect((await call("GET", "/v1/sessions/current", withCookie(t))).json().expiresAt).toBe(expiresAt);
      clockOffsetMs = 3_600_000 + 1000;
      // Pruning removes what can no longer be used: the expired token's session, every expired one.
      expect((await sessionRows()).some((r) => r.token_id === short.id)).toBe(true);
      const auth = new AuthService(db, createLogger("test", "silent"), clock);
      expect(await new SessionService(db, auth, createLogger("test", "silent"), { ttlMs: TTL_MS, now: clock }).prune()).toBeGreaterThanOrEqual(1);
      expect((await sessionRows()).some((r) => r.token_id === short.id)).toBe(false);
      expect((await sessionRows()).every((r) => r.expires_at.getTime() > clock().getTime())).toBe(true);
      const res = await call("GET", "/v1/apps/shop", withCookie(t));
      expect({ status: res.statusCode, code: res.json().error?.code }).toEqual({ status: 401, code: "unauthenticated" });
    } finally {
      clockOffsetMs = 0;
    }
  });

  it("signs out: the row is removed, the cookie cleared, the next request 401; both ends are in the feed by the token's name", async () => {
    const s = await signIn(tokens.deployer.token);
    const hash = sha256(s.value);
    expect((await sessionRows()).some((r) => r.secret_hash === hash)).toBe(true);
    const out = await call("DELETE", "/v1/sessions/current", withCsrf(s, { origin: "http://localhost" }));
    expect(out.statusCode, out.body).toBe(204);
    expect(out.headers["set-cookie"]).toBe("slipway_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    expect((await sessionRows()).some((r) => r.secret_hash === hash)).toBe(false);
    expect((await call("GET", "/v1/apps/shop", withCookie(s))).statusCode).toBe(401);
    expect((await call("DELETE", "/v1/sessions/current", withCsrf(s))).statusCode).toBe(401);
    // With a bearer token there is no session to end.
    expect((await call("DELETE", "/v1/sessions/current", { authorization: `Bearer ${tokens.deployer.token}` })).statusCode).toBe(404);

    const feed = (await admin("GET", "/v1/activity?limit=500")).json() as Array<{ action: string; actor: string; details: Record<string, unknown> }>;
    const mine = feed.filter((a) => a.action.startsWith("session.") && a.details.tokenId === tokens.deployer.id);
    expect(mine.map((a) => a.action)).toContain("session.ended");
    expect(mine.map((a) => a.action)).toContain("session.created");
    expect(mine.every((a) => a.actor === "deployer-shop" && a.details.name === "deployer-shop")).toBe(true);
  });

  it("a wrong token is 401 with the API's error body and stores nothing; several session cookies are refused", async () => {
    const before = await snapshot(db);
    for (const token of ["slw_nope", cp.adminToken + "x", " "]) {
      const res = await call("POST", "/v1/sessions", {}, { token });
      expect({ status: res.statusCode, code: res.json().error?.code, cookie: res.headers["set-cookie"] }).toEqual({ status: 401, code: "unauthenticated", cookie: undefined });
    }
    for (const body of [{}, { token: "" }, { token: {} }, { token: "x", extra: 1 }]) {
      const res = await call("POST", "/v1/sessions", {}, body);
      expect({ body, status: res.statusCode, code: res.json().error?.code }).toEqual({ body, status: 400, code: "invalid_request" });
    }
    // A cookie that is no session.
    for (const cookie of ["slipway_session=", "slipway_session=abc", `slipway_session=${"A".repeat(43)}`]) {
      const res = await call("GET", "/v1/apps", { cookie });
      expect({ cookie, status: res.statusCode, code: res.json().error?.code }).toEqual({ cookie, status: 401, code: "unauthenticated" });
    }
    expect(await snapshot(db)).toEqual(before);
    // A cookie of the same name set by another host under the domain: which one is ours cannot be told.
    const s = await signIn(cp.adminToken);
    const res = await call("GET", "/v1/apps", { cookie: `slipway_session=${"B".repeat(43)}; ${s.cookie}` });
    expect({ status: res.statusCode, message: res.json().error?.message }).toEqual({ status: 401, message: expect.stringMatching(/2 slipway_session cookies/) });
    // Other cookies beside it are fine.
    expect((await call("GET", "/v1/apps", { cookie: `theme=dark; ${s.cookie}; other=1` })).statusCode).toBe(200);
  });

  it("marks the cookie Secure when the API is reached over https (a proxy saying so, or an https public URL)", async () => {
    const res = await call("POST", "/v1/sessions", { "x-forwarded-proto": "https" }, { token: cp.adminToken });
    expect(res.statusCode).toBe(201);
    expect(res.headers["set-cookie"]).toMatch(/^slipway_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Secure$/);
    secrets.push(/^slipway_session=([^;]*)/.exec(String(res.headers["set-cookie"]))![1]!, res.json().csrfToken);
    const log = createLogger("test", "silent");
    const behindProxy = await buildApp({ db, log, ...cp.services, publicUrl: "https://slipway.example.test", joinTokenTtlMs: 60_000, readiness: [] });
    try {
      const r = await behindProxy.inject({ method: "POST", url: "/v1/sessions", payload: { token: cp.adminToken } });
      expect(r.headers["set-cookie"]).toMatch(/; Secure$/);
      const value = /^slipway_session=([^;]*)/.exec(String(r.headers["set-cookie"]))![1]!;
      secrets.push(value, r.json().csrfToken);
      // Its public origin is the dashboard's, whatever Host the proxy forwards.
      const ok = await behindProxy.inject({ method: "PATCH", url: "/v1/apps/shop/environments/test/variables", headers: { host: "127.0.0.1:7700", origin: "https://slipway.example.test", cookie: `slipway_session=${value}`, "x-csrf-token": r.json().csrfToken }, payload: { B: "2" } });
      expect(ok.statusCode, ok.body).toBe(200);
    } finally {
      await behindProxy.close();
    }
  });

  it("a token used through its session shows as used", async () => {
    const created = (await admin("POST", "/v1/tokens", { name: "dash-only", role: "viewer", apps: ["shop"] })).json() as { token: string; id: string };
    const lastUsed = async () => ((await admin("GET", "/v1/tokens")).json() as Array<{ id: string; lastUsedAt: string | null }>).find((t) => t.id === created.id)!.lastUsedAt;
    expect(await lastUsed()).toBeNull();
    const s = await signIn(created.token);
    expect(await lastUsed()).not.toBeNull();
    await sql`UPDATE api_tokens SET last_used_at = NULL WHERE id = ${created.id}`.execute(db);
    expect((await call("GET", "/v1/apps/shop", withCookie(s))).statusCode).toBe(200);
    expect(await lastUsed()).not.toBeNull();
  });

  it("rotating SLIPWAY_ADMIN_TOKEN ends the sessions of the bootstrap token it replaces", async () => {
    const s = await signIn(cp.adminToken);
    const old = cp.adminToken;
    const oldId = ((await admin("GET", "/v1/tokens")).json() as Array<{ id: string; bootstrap: boolean; revokedAt: string | null }>).find((t) => t.bootstrap && t.revokedAt === null)!.id;
    const next = `slw_${randomBytes(24).toString("hex")}`;
    await new AuthService(db, createLogger("test", "silent")).bootstrapAdmin(mkdtempSync(path.join(tmpdir(), "slipway-sessions-")), next);
    cp.adminToken = next;
    secrets.push(old);
    expect((await sessionRows()).filter((r) => r.token_id === oldId)).toEqual([]);
    expect((await call("GET", "/v1/apps", withCookie(s))).statusCode).toBe(401);
    expect((await admin("GET", "/v1/apps")).statusCode).toBe(200);
  });

  // Last: it looks through everything the tests above logged and recorded.
  it("no cookie value, CSRF token or API token appears in the logs or the activity feed", async () => {
    expect(secrets.length).toBeGreaterThanOrEqual(20);
    expect(logLines.length).toBeGreaterThan(50);
    const logs = logLines.join("");
    const feed = JSON.stringify((await admin("GET", "/v1/activity?limit=500")).json());
    expect(feed).toContain("session.created");
    for (const secret of [...secrets, cp.adminToken, tokens.deployer.token, tokens.viewer.token]) {
      expect(logs.includes(secret), "a secret in the log").toBe(false);
      expect(feed.includes(secret), "a secret in the activity feed").toBe(false);
    }
  });
});
