import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { ConflictError, ForbiddenError, InvalidRequestError, NotFoundError, UnauthenticatedError, isValidAppName, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as tokens from "../repositories/tokens.repository.js";
import * as sessions from "../repositories/sessions.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";

/**
 * What a token may do. admin: everything. deployer: the apps it names (deploy, variables,
 * domains, environments, backups, shells outside live); no secret values, nothing platform-wide.
 * viewer: reads (GET) of the apps it names; no secret values, no shell, no change at all.
 */
export type Role = "admin" | "deployer" | "viewer";
export const ROLES: readonly Role[] = ["admin", "deployer", "viewer"];

export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
  apps: string[];
}

/** An API token as the API shows it: never the secret, never its hash. */
export interface TokenView {
  id: string;
  name: string;
  role: Role;
  apps: string[];
  /** The token SLIPWAY_ADMIN_TOKEN set (or the one generated at the first start). */
  bootstrap: boolean;
  createdAt: string;
  expiresAt: string | null;
  /** To the minute: a use is written at most once a minute per token. */
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const BOOTSTRAP_NAME = "bootstrap-admin";
const LAST_USED_RESOLUTION_MS = 60_000;

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}
export function generateToken(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString("base64url")}`;
}
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * API tokens: authentication of every REST call (no cache: a revocation holds from the very
 * next call), creation, listing and revocation, and the bootstrap admin token.
 */
export class AuthService {
  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * At start: makes the preset token (SLIPWAY_ADMIN_TOKEN) the bootstrap admin token, revoking
   * the previous bootstrap token when it changed; without a preset, creates one when no admin
   * token works any more. Writes it to `<dataDir>/admin-token` (0600). Returns the token when it
   * was generated now, so the caller prints it once. Throws when the preset was revoked (the
   * configuration must not bring it back) or belongs to a token that is not an admin's.
   */
  async bootstrapAdmin(dataDir: string, preset?: string): Promise<string | undefined> {
    const file = path.join(dataDir, "admin-token");
    if (preset) {
      await this.installBootstrap(preset, "replaced by a new SLIPWAY_ADMIN_TOKEN");
      await writeSecretFile(file, preset);
      return undefined;
    }
    if ((await tokens.countUsableAdminTokens(this.db, this.now())) > 0) return undefined;
    const token = generateToken("slw");
    await this.installBootstrap(token, "replaced by a newly generated admin token");
    await writeSecretFile(file, token);
    this.log.info({ file }, "created the first admin token");
    return token;
  }

  /** One transaction: the token becomes the only unrevoked bootstrap token. */
  private async installBootstrap(token: string, reason: string): Promise<void> {
    const hash = hashToken(token);
    const now = this.now();
    const revoked = await this.db.transaction().execute(async (trx) => {
      const row = await tokens.findAnyApiTokenByHash(trx, hash);
      if (row?.revoked_at) throw new Error(`SLIPWAY_ADMIN_TOKEN is the token '${row.name}', revoked at ${row.revoked_at.toISOString()}: set a new one (at least 16 characters)`);
      if (row && row.role !== "admin") throw new Error(`SLIPWAY_ADMIN_TOKEN is the ${row.role} token '${row.name}', not an admin token: set a new one`);
      let id = row?.id;
      if (!row) {
        id = randomUUID();
        await tokens.insertApiToken(trx, { id, name: BOOTSTRAP_NAME, role: "admin", apps: [], tokenHash: hash, bootstrap: true, createdAt: now });
        await recordActivity(trx, { actor: "control-plane", action: "token.created", details: { id, name: BOOTSTRAP_NAME, role: "admin", apps: [], bootstrap: true } });
      } else if (!row.bootstrap) {
        await tokens.markBootstrapToken(trx, row.id);
      }
      const gone = await tokens.revokeOtherBootstrapTokens(trx, id!, now);
      await sessions.deleteSessionsOfTokens(trx, gone.map((g) => g.id));
      for (const g of gone) await recordActivity(trx, { actor: "control-plane", action: "token.revoked", details: { id: g.id, name: g.name, role: "admin", reason } });
      return gone;
    });
    if (revoked.length > 0) this.log.warn({ tokenIds: revoked.map((r) => r.id) }, `the previous bootstrap admin token is revoked: ${reason}`);
  }

  /**
   * Resolves an Authorization header against the database on every call (revoked and expired
   * tokens are refused at once); throws UnauthenticatedError.
   */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (!header) throw new UnauthenticatedError("missing bearer token: send 'Authorization: Bearer <token>' (or sign in: POST /v1/sessions)");
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new UnauthenticatedError("malformed Authorization header: expected 'Bearer <token>'");
    return (await this.resolveToken(m[1]!)).principal;
  }

  /**
   * The token's principal and expiry, exactly as bearer authentication checks it (unknown,
   * revoked and expired tokens are refused with UnauthenticatedError); records the use.
   */
  async resolveToken(secret: string): Promise<{ principal: Principal; expiresAt: Date | null }> {
    const row = await tokens.findApiTokenByHash(this.db, hashToken(secret));
    if (!row) throw new UnauthenticatedError("invalid or revoked token");
    return { principal: await useToken(this.db, row, this.now()), expiresAt: row.expires_at };
  }

  /** Creates a token; the secret is in the answer only. `expiresAt`: an ISO time in the future. */
  async createToken(by: Principal, input: { name: string; role: Role; apps?: string[]; expiresAt?: string }): Promise<{ token: string; view: TokenView }> {
    requireAdmin(by);
    // An admin token reaches every app: a list would only mislead.
    const apps = input.role === "admin" ? [] : (input.apps ?? []);
    const bad = apps.filter((a) => !isValidAppName(a));
    if (bad.length) throw new InvalidRequestError(`invalid app names: ${bad.join(", ")}`, { details: { apps: "invalid names" } });
    // A forgotten list must not mean "every app": deployers and viewers name theirs.
    if (input.role !== "admin" && apps.length === 0) {
      throw new InvalidRequestError(`a ${input.role} token needs at least one app in 'apps'`, { details: { apps: `required for ${input.role}` } });
    }
    const now = this.now();
    let expiresAt: Date | null = null;
    if (input.expiresAt !== undefined) {
      const t = Date.parse(input.expiresAt);
      if (Number.isNaN(t)) throw new InvalidRequestError(`expiresAt '${input.expiresAt}' is not a time: use ISO 8601, e.g. 2030-01-31T12:00:00Z`, { details: { expiresAt: "not a time" } });
      if (t <= now.getTime()) throw new InvalidRequestError(`expiresAt ${input.expiresAt} is not in the future`, { details: { expiresAt: "not in the future" } });
      expiresAt = new Date(t);
    }
    const token = generateToken("slw");
    const id = randomUUID();
    await this.db.transaction().execute(async (trx) => {
      await tokens.insertApiToken(trx, { id, name: input.name, role: input.role, apps, tokenHash: hashToken(token), expiresAt, createdAt: now });
      await recordActivity(trx, { actor: by.name, action: "token.created", details: { id, name: input.name, role: input.role, apps, expiresAt: expiresAt?.toISOString() ?? null } });
    });
    const view: TokenView = { id, name: input.name, role: input.role, apps, bootstrap: false, createdAt: now.toISOString(), expiresAt: expiresAt?.toISOString() ?? null, lastUsedAt: null, revokedAt: null };
    return { token, view };
  }

  /** Every token, revoked and expired ones too, oldest first. */
  async listTokens(by: Principal): Promise<TokenView[]> {
    requireAdmin(by);
    return (await tokens.listApiTokens(this.db)).map(toTokenView);
  }

  /**
   * Revokes a token: refused from the very next call. Idempotent (a revoked token stays as it
   * was). The last admin token that works cannot be revoked: nobody could create another.
   */
  async revokeToken(by: Principal, id: string): Promise<TokenView> {
    requireAdmin(by);
    const now = this.now();
    const row = await this.db.transaction().execute(async (trx) => {
      const t = await tokens.findApiToken(trx, id);
      if (!t) throw new NotFoundError(`token '${id}' does not exist`);
      if (t.revoked_at) return t;
      if (t.role === "admin") {
        const usable = await tokens.lockUsableAdminTokens(trx, now);
        if (usable.length === 1 && usable[0] === t.id) {
          throw new ConflictError(`'${t.name}' is the last admin token: create another admin token first (or restart with a new SLIPWAY_ADMIN_TOKEN, which revokes the bootstrap one)`);
        }
      }
      await tokens.revokeApiToken(trx, t.id, now);
      // Its browser sessions end with it (the join on every use refuses them anyway).
      await sessions.deleteSessionsOfTokens(trx, [t.id]);
      await recordActivity(trx, { actor: by.name, action: "token.revoked", details: { id: t.id, name: t.name, role: t.role, apps: t.apps } });
      return { ...t, revoked_at: now };
    });
    return toTokenView(row);
  }

  async createJoinToken(by: Principal, ttlMs: number): Promise<{ token: string; expiresAt: Date }> {
    requireAdmin(by);
    const token = generateToken("slwjoin");
    const expiresAt = new Date(this.now().getTime() + ttlMs);
    await this.db.transaction().execute(async (trx) => {
      await tokens.insertJoinToken(trx, { id: randomUUID(), tokenHash: hashToken(token), expiresAt });
      await recordActivity(trx, { actor: by.name, action: "join_token.created", details: { expiresAt: expiresAt.toISOString() } });
    });
    return { token, expiresAt };
  }
}

/**
 * The principal of a token that is not revoked (the caller found it so), refused with
 * UnauthenticatedError when it expired at `now`; records the use, at most once a minute.
 * Bearer tokens and browser sessions both go through here, so a token used through its session
 * shows as used.
 */
export async function useToken(db: Db, row: Pick<tokens.ApiTokenRow, "id" | "name" | "role" | "apps" | "expires_at" | "last_used_at">, now: Date): Promise<Principal> {
  if (row.expires_at && row.expires_at.getTime() <= now.getTime()) {
    throw new UnauthenticatedError(`the token '${row.name}' expired at ${row.expires_at.toISOString()}: ask an admin for a new one`);
  }
  if (!row.last_used_at || now.getTime() - row.last_used_at.getTime() >= LAST_USED_RESOLUTION_MS) {
    await tokens.touchApiToken(db, row.id, now, LAST_USED_RESOLUTION_MS);
  }
  return { tokenId: row.id, name: row.name, role: row.role, apps: row.apps };
}

function toTokenView(t: tokens.ApiTokenRow): TokenView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return { id: t.id, name: t.name, role: t.role, apps: t.apps, bootstrap: t.bootstrap, createdAt: t.created_at.toISOString(), expiresAt: iso(t.expires_at), lastUsedAt: iso(t.last_used_at), revokedAt: iso(t.revoked_at) };
}

/**
 * The role rules that hold for every route, checked as soon as the caller is known, before the
 * body is read or validated (a refused caller gets 403 whatever it sent, and nothing runs for it):
 * a viewer only reads (GET, HEAD) and may sign out of its session; a route with an `:app` parameter is for admins and the tokens
 * given that app; only an admin reveals secret values (`?reveal`); a deployer opens no shell in
 * live (a shell there reads every secret of the live environment). Services check again what is
 * theirs: admin-only calls, and things found by id (a deployment, a backup) and their app.
 */
export function authorizeRequest(p: Principal, req: { method: string; route: string | undefined; params: Record<string, string | undefined>; query: Record<string, unknown> }): void {
  if (p.role === "admin") return;
  // Signing out ends the caller's own browser session and changes nothing else: a viewer may.
  if (req.method === "DELETE" && req.route === "/v1/sessions/current") return;
  if (p.role === "viewer" && req.method !== "GET" && req.method !== "HEAD") {
    throw new ForbiddenError(`the token '${p.name}' is a viewer's: it reads, and this call (${req.method}) would change something`);
  }
  if (req.params.app !== undefined) requireApp(p, req.params.app);
  if (req.query.reveal !== undefined && String(req.query.reveal) !== "false") throw new ForbiddenError("only an admin token may reveal secret values");
  if (p.role === "deployer" && req.params.env === "live" && req.route?.endsWith("/environments/:env/shell")) {
    throw new ForbiddenError("a deployer token opens no shell in live (it would read every secret there): ask an admin");
  }
}

export function requireAdmin(p: Principal, message = "this call needs an admin token"): void {
  if (p.role !== "admin") throw new ForbiddenError(message);
}
export function requireApp(p: Principal, app: string): void {
  if (p.role !== "admin" && !p.apps.includes(app)) throw new ForbiddenError(`this token may not act on app '${app}'`);
}

async function writeSecretFile(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content + "\n", { mode: 0o600 });
  await chmod(file, 0o600);
}
