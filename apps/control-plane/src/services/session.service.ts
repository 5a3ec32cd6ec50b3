import { createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { UnauthenticatedError, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as sessions from "../repositories/sessions.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { hashToken, useToken, type AuthService, type Principal } from "./auth.service.js";

/** What a browser session is as the API shows it: who, until when, and the CSRF token its changes carry. */
export interface SessionView {
  principal: { name: string; role: Principal["role"]; apps: string[] };
  /** The session ends then unless used before (sliding), never after its token's expiry. */
  expiresAt: string;
  csrfToken: string;
}

/** A request's session once its secret was checked. */
export interface AuthenticatedSession {
  /** The row's id: not the secret (the secret is only ever in the cookie). */
  id: string;
  principal: Principal;
  expiresAt: Date;
  csrfToken: string;
}

/** SLIPWAY_SESSION_TTL_HOURS' default: a working day of inactivity. */
export const DEFAULT_SESSION_TTL_MS = 12 * 3_600_000;

/** 256 random bits, base64url: exactly 43 characters. Anything else is not a session secret. */
const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** The expiry slides at most once a minute per session (one small UPDATE a minute, not one per request). */
const SLIDE_RESOLUTION_MS = 60_000;

export function isSessionSecret(value: string): boolean {
  return SECRET_PATTERN.test(value);
}

/**
 * The session's CSRF token: HMAC-SHA256 keyed with the session's secret. Nothing to store, bound
 * to its session, and unforgeable without the secret, which only the httpOnly cookie holds (the
 * database has its SHA-256 hash, another function of it, so a copy of the database yields neither).
 */
export function csrfTokenOf(secret: string): string {
  return createHmac("sha256", secret).update("slipway csrf v1").digest("base64url");
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches(secret: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const expected = Buffer.from(csrfTokenOf(secret));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Browser sessions for the dashboard: an API token exchanged for a random secret that travels in
 * an httpOnly cookie. A session is bound to its token: the token's role, apps and expiry apply,
 * and revoking the token ends its sessions from the very next request (the token is looked up on
 * every use, as for bearer authentication). A session lives `ttlMs` after its last use, never
 * beyond its token's expiry. Safe to use concurrently; several replicas share the table.
 */
export class SessionService {
  private readonly ttlMs: number;
  private readonly now: () => Date;

  constructor(
    private readonly db: Db,
    private readonly auth: AuthService,
    private readonly log: Logger,
    opts: { ttlMs: number; now?: () => Date },
  ) {
    this.ttlMs = opts.ttlMs;
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * Signs in with an API token, checked exactly as a bearer token is (unknown, revoked, expired:
   * UnauthenticatedError, and nothing is stored). Returns the new session's secret (for the cookie,
   * nowhere else) and its view. Recorded in the activity feed under the token's name.
   */
  async signIn(token: string): Promise<{ secret: string; view: SessionView }> {
    const { principal, expiresAt: tokenExpiresAt } = await this.auth.resolveToken(token);
    const now = this.now();
    const expiresAt = this.expiryAt(now, tokenExpiresAt);
    const secret = randomBytes(32).toString("base64url");
    const id = randomUUID();
    await this.db.transaction().execute(async (trx) => {
      await sessions.insertSession(trx, { id, secretHash: hashToken(secret), tokenId: principal.tokenId, now, expiresAt });
      await recordActivity(trx, { actor: principal.name, action: "session.created", details: { tokenId: principal.tokenId, name: principal.name, role: principal.role, expiresAt: expiresAt.toISOString() } });
    });
    this.log.info({ tokenId: principal.tokenId, sessionId: id }, "signed in");
    return { secret, view: viewOf({ principal, expiresAt, csrfToken: csrfTokenOf(secret) }) };
  }

  /**
   * The session of a cookie's secret, checked on every request: unknown, signed out, expired, or
   * bound to a token that is revoked or expired → UnauthenticatedError. Slides the expiry forward
   * and records the token's use, each at most once a minute.
   */
  async authenticate(secret: string): Promise<AuthenticatedSession> {
    if (!isSessionSecret(secret)) throw new UnauthenticatedError("invalid session cookie: sign in again");
    const found = await sessions.findSessionByHash(this.db, hashToken(secret));
    if (!found) throw new UnauthenticatedError("no such session (signed out, expired, or its token was revoked): sign in again");
    const now = this.now();
    if (found.session.expires_at.getTime() <= now.getTime()) {
      await sessions.deleteSession(this.db, found.session.id);
      throw new UnauthenticatedError(`the session expired at ${found.session.expires_at.toISOString()}: sign in again`);
    }
    const principal = await useToken(this.db, found.token, now);
    let expiresAt = found.session.expires_at;
    const slid = this.expiryAt(now, found.token.expires_at);
    if (slid.getTime() - expiresAt.getTime() >= SLIDE_RESOLUTION_MS) {
      await sessions.extendSession(this.db, found.session.id, now, slid);
      expiresAt = slid;
    }
    return { id: found.session.id, principal, expiresAt, csrfToken: csrfTokenOf(secret) };
  }

  /** Ends the session (its row is deleted); recorded in the activity feed. Idempotent. */
  async signOut(session: AuthenticatedSession): Promise<void> {
    const p = session.principal;
    await this.db.transaction().execute(async (trx) => {
      if (await sessions.deleteSession(trx, session.id)) {
        await recordActivity(trx, { actor: p.name, action: "session.ended", details: { tokenId: p.tokenId, name: p.name, role: p.role, reason: "signed out" } });
      }
    });
    this.log.info({ tokenId: p.tokenId, sessionId: session.id }, "signed out");
  }

  /** Deletes sessions that cannot be used any more (expired, or their token revoked or expired). Called periodically. */
  async prune(): Promise<number> {
    return sessions.pruneSessions(this.db, this.now());
  }

  view(session: AuthenticatedSession): SessionView {
    return viewOf(session);
  }

  private expiryAt(now: Date, tokenExpiresAt: Date | null): Date {
    const sliding = now.getTime() + this.ttlMs;
    return new Date(tokenExpiresAt ? Math.min(sliding, tokenExpiresAt.getTime()) : sliding);
  }
}

function viewOf(s: { principal: Principal; expiresAt: Date; csrfToken: string }): SessionView {
  return { principal: { name: s.principal.name, role: s.principal.role, apps: s.principal.apps }, expiresAt: s.expiresAt.toISOString(), csrfToken: s.csrfToken };
}
