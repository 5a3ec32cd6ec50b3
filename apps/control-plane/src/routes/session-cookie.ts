import type { FastifyReply, FastifyRequest } from "fastify";
import { ForbiddenError, UnauthenticatedError } from "@slipway/core";
import { csrfMatches, type AuthenticatedSession, type SessionService } from "../services/session.service.js";

/** The browser session's cookie; its value is the session's secret (256 random bits, base64url). */
export const SESSION_COOKIE = "slipway_session";
/** The header every change made with the cookie carries: the session's CSRF token. */
export const CSRF_HEADER = "x-csrf-token";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** How the API decides what is "this site": its public address, when configured. */
export interface SessionCookieOptions {
  /** SLIPWAY_PUBLIC_URL: an https one marks the cookie Secure; its origin is accepted as an Origin. */
  publicUrl?: string;
}

/**
 * The session cookie's values in a Cookie header: none, one, or several (a sibling host under the
 * same domain can set a cookie of this name with `Domain=` or another `Path`; then which one is
 * ours cannot be told, and the request is refused rather than guessed).
 */
export function sessionCookieValues(header: string | undefined): string[] {
  if (!header) return [];
  const out: string[] = [];
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    out.push(part.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1"));
  }
  return out;
}

/**
 * Whether the cookie must be Secure: the API serves HTTPS itself, its public URL is https, or a
 * proxy says the request came over https (X-Forwarded-Proto, Forwarded). Trusting that header
 * for this is safe: Secure only ever restricts where the browser sends the cookie.
 */
export function cookieIsSecure(req: FastifyRequest, opts: SessionCookieOptions): boolean {
  if (req.protocol === "https" || opts.publicUrl?.startsWith("https:")) return true;
  const forwardedProto = firstValue(req.headers["x-forwarded-proto"]);
  if (forwardedProto?.trim().toLowerCase() === "https") return true;
  return /(?:^|[;,\s])proto="?https"?(?:$|[;,\s])/i.test(firstValue(req.headers.forwarded) ?? "");
}

export function sessionCookie(secret: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${secret}; Path=/; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}
export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}

/**
 * Why a request that a browser may have sent from another site is refused, or undefined.
 * SameSite=Strict keeps the cookie off cross-site requests, but not off requests from a sibling
 * host of the same site (an application under the same domain), nor off WebSocket handshakes,
 * which no CORS check guards. So: a `Sec-Fetch-Site` other than same-origin or none is refused;
 * an `Origin` must be this API's own (the Host or X-Forwarded-Host the request came to, or the
 * public URL's origin); a WebSocket upgrade must carry an `Origin` (browsers always send one).
 * Non-browser clients send neither header and are not affected.
 */
export function crossSiteRefusal(headers: FastifyRequest["headers"], opts: SessionCookieOptions): string | undefined {
  const site = firstValue(headers["sec-fetch-site"])?.toLowerCase();
  if (site !== undefined && site !== "same-origin" && site !== "none") return `a ${site} request (Sec-Fetch-Site) may not use the session cookie`;
  const origin = firstValue(headers.origin);
  if (origin === undefined) {
    if (firstValue(headers.upgrade)?.toLowerCase() === "websocket") return "a WebSocket upgrade without an Origin header may not use the session cookie";
    return undefined;
  }
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return `the Origin '${origin.slice(0, 100)}' is not this API's`;
  }
  if (o.origin === "null" || (o.protocol !== "http:" && o.protocol !== "https:")) return `the Origin '${origin.slice(0, 100)}' is not this API's`;
  const own = [firstValue(headers["x-forwarded-host"])?.split(",")[0]?.trim(), headers.host].filter((h): h is string => Boolean(h)).map((h) => hostAs(o.protocol, h));
  if (own.includes(o.host)) return undefined;
  if (opts.publicUrl && new URL(opts.publicUrl).origin === o.origin) return undefined;
  return `the Origin '${origin.slice(0, 100)}' is not this API's`;
}

/**
 * Authenticates a request by its session cookie, in this order, before any body is read:
 * several cookies of that name → 401; a request from another site → 403; a change (any method
 * but GET, HEAD, OPTIONS) without the session's CSRF token in `X-CSRF-Token` → 403; then the
 * session itself (401 when it is unknown, expired or its token revoked or expired, and the
 * answer clears the cookie).
 */
export async function authenticateBySession(req: FastifyRequest, reply: FastifyReply, secrets: string[], sessions: SessionService, opts: SessionCookieOptions): Promise<AuthenticatedSession> {
  if (secrets.length > 1) {
    throw new UnauthenticatedError(`the request carries ${secrets.length} ${SESSION_COOKIE} cookies (another host under this domain may have set one): clear this site's cookies and sign in again`);
  }
  const refusal = crossSiteRefusal(req.headers, opts);
  if (refusal) throw new ForbiddenError(`cross-site request refused: ${refusal}`);
  const secret = secrets[0]!;
  if (!SAFE_METHODS.has(req.method) && !csrfMatches(secret, firstValue(req.headers[CSRF_HEADER]))) throw new ForbiddenError("missing or wrong CSRF token");
  try {
    return await sessions.authenticate(secret);
  } catch (err) {
    if (err instanceof UnauthenticatedError) reply.header("set-cookie", clearedSessionCookie(cookieIsSecure(req, opts)));
    throw err;
  }
}

function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A Host header as an origin's host: lower case, without the scheme's default port. */
function hostAs(protocol: string, host: string): string {
  try {
    return new URL(`${protocol}//${host}`).host;
  } catch {
    return "";
  }
}
