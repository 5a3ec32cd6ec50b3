import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { ForbiddenError, UnauthenticatedError, InvalidRequestError, isValidAppName, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as tokens from "../repositories/tokens.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";

export interface Principal {
  tokenId: string;
  name: string;
  role: "admin" | "deployer";
  apps: string[];
}

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

export class AuthService {
  constructor(private readonly db: Db, private readonly log: Logger) {}

  /**
   * Creates the first admin token when none exists (or the preset one) and
   * writes it to `<dataDir>/admin-token` (0600). Returns it when it was created
   * now, so the caller prints it once.
   */
  async bootstrapAdmin(dataDir: string, preset?: string): Promise<string | undefined> {
    const file = path.join(dataDir, "admin-token");
    if (preset) {
      if (!(await tokens.findApiTokenByHash(this.db, hashToken(preset)))) {
        await tokens.insertApiToken(this.db, { id: randomUUID(), name: "bootstrap-admin", role: "admin", apps: [], tokenHash: hashToken(preset) });
      }
      await writeSecretFile(file, preset);
      return undefined;
    }
    if ((await tokens.countAdminTokens(this.db)) > 0) return undefined;
    const token = generateToken("slw");
    await tokens.insertApiToken(this.db, { id: randomUUID(), name: "bootstrap-admin", role: "admin", apps: [], tokenHash: hashToken(token) });
    await writeSecretFile(file, token);
    this.log.info({ file }, "created the first admin token");
    return token;
  }

  /** Resolves an Authorization header; throws UnauthenticatedError. */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (!header) throw new UnauthenticatedError("missing bearer token: send 'Authorization: Bearer <token>'");
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new UnauthenticatedError("malformed Authorization header: expected 'Bearer <token>'");
    const row = await tokens.findApiTokenByHash(this.db, hashToken(m[1]!));
    if (!row) throw new UnauthenticatedError("invalid or revoked token");
    return { tokenId: row.id, name: row.name, role: row.role, apps: row.apps };
  }

  async createToken(by: Principal, input: { name: string; role: "admin" | "deployer"; apps?: string[] }): Promise<string> {
    requireAdmin(by);
    const apps = input.apps ?? [];
    const bad = apps.filter((a) => !isValidAppName(a));
    if (bad.length) throw new InvalidRequestError(`invalid app names: ${bad.join(", ")}`, { details: { apps: "invalid names" } });
    if (input.role === "deployer" && apps.length === 0) {
      throw new InvalidRequestError("a deployer token needs at least one app in 'apps'", { details: { apps: "required for deployer" } });
    }
    const token = generateToken("slw");
    await this.db.transaction().execute(async (trx) => {
      await tokens.insertApiToken(trx, { id: randomUUID(), name: input.name, role: input.role, apps, tokenHash: hashToken(token) });
      await recordActivity(trx, { actor: by.name, action: "token.created", details: { name: input.name, role: input.role, apps } });
    });
    return token;
  }

  async createJoinToken(by: Principal, ttlMs: number): Promise<{ token: string; expiresAt: Date }> {
    requireAdmin(by);
    const token = generateToken("slwjoin");
    const expiresAt = new Date(Date.now() + ttlMs);
    await this.db.transaction().execute(async (trx) => {
      await tokens.insertJoinToken(trx, { id: randomUUID(), tokenHash: hashToken(token), expiresAt });
      await recordActivity(trx, { actor: by.name, action: "join_token.created", details: { expiresAt: expiresAt.toISOString() } });
    });
    return { token, expiresAt };
  }
}

export function requireAdmin(p: Principal): void {
  if (p.role !== "admin") throw new ForbiddenError("this call needs an admin token");
}
export function requireApp(p: Principal, app: string): void {
  if (p.role !== "admin" && !p.apps.includes(app)) throw new ForbiddenError(`this token may not act on app '${app}'`);
}

async function writeSecretFile(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content + "\n", { mode: 0o600 });
  await chmod(file, 0o600);
}
