// `slipway tokens list|create|revoke`: API tokens (admins).
import { NAME_PATTERN } from "@slipway/core";
import { UsageError } from "../config.js";
import { ago, table } from "../format.js";
import { enc, print, type Command, type Values } from "./command.js";

const ROLES = ["admin", "deployer", "viewer"] as const;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

/** `--expires`: a time as given (RFC 3339) or a duration from now (30m, 12h, 90d, 2w). */
export function expiryTime(raw: string, now = Date.now()): string {
  const m = /^(\d+)(m|h|d|w)$/.exec(raw);
  if (m) return new Date(now + Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]).toISOString();
  if (!/^\d{4}-\d\d-\d\dT/.test(raw) || Number.isNaN(Date.parse(raw))) throw new UsageError(`--expires '${raw}' is neither a time (2030-01-31T12:00:00Z) nor a duration (12h, 90d, 2w)`);
  return raw;
}

/** The body of `POST /v1/tokens` from the command line; refuses what the API would refuse anyway. */
export function tokenCreateBody(name: string, opts: Values, now = Date.now()): { name: string; role: string; apps?: string[]; expiresAt?: string } {
  const role = opts.role;
  if (typeof role !== "string") throw new UsageError(`tokens create needs --role ${ROLES.join("|")}`);
  if (!(ROLES as readonly string[]).includes(role)) throw new UsageError(`--role '${role}' is not one of ${ROLES.join(", ")}`);
  const apps = typeof opts.apps === "string" ? opts.apps.split(",").map((a) => a.trim()).filter(Boolean) : [];
  const nameRe = new RegExp(NAME_PATTERN);
  const bad = apps.filter((a) => !nameRe.test(a));
  if (bad.length) throw new UsageError(`not app names: ${bad.join(", ")}`);
  if (role === "admin" && apps.length > 0) throw new UsageError("an admin token reaches every app: drop --apps");
  if (role !== "admin" && apps.length === 0) throw new UsageError(`a ${role} token needs --apps <app>[,<app>...]`);
  return { name, role, ...(apps.length ? { apps } : {}), ...(typeof opts.expires === "string" ? { expiresAt: expiryTime(opts.expires, now) } : {}) };
}

function state(t: { revokedAt: string | null; expiresAt: string | null }, now = Date.now()): string {
  if (t.revokedAt) return "revoked";
  if (t.expiresAt && Date.parse(t.expiresAt) <= now) return "expired";
  return "active";
}

export const tokensCommands: Command[] = [
  {
    name: "tokens list",
    args: [],
    summary: "API tokens that work: role, apps, expiry, last use (admins; never the secrets)",
    options: { all: { type: "boolean", short: "a", description: "also revoked and expired tokens" } },
    async run(ctx) {
      const all = await ctx.client().call<any[]>("GET", "/tokens");
      const list = ctx.opts.all ? all : all.filter((t) => state(t) === "active");
      print(ctx, list, () =>
        table([
          ["ID", "NAME", "ROLE", "APPS", "STATE", "EXPIRES", "LAST USED", "CREATED"],
          ...list.map((t) => [t.id, `${t.name}${t.bootstrap ? " (bootstrap)" : ""}`, t.role, t.role === "admin" ? "*" : t.apps.join(","), state(t), t.expiresAt ?? "never", t.lastUsedAt ? ago(t.lastUsedAt) : "never", ago(t.createdAt)]),
        ]),
      );
      return 0;
    },
  },
  {
    name: "tokens create",
    args: ["name"],
    summary: "Create an API token and print it (it is shown once): admin, deployer or viewer of named apps",
    options: {
      role: { type: "string", description: "admin (everything), deployer (deploy, variables, domains of its apps) or viewer (reads its apps)" },
      apps: { type: "string", description: "the apps a deployer or viewer may use, comma-separated" },
      expires: { type: "string", description: "when it stops working: a time (RFC 3339) or a duration from now (12h, 90d)" },
    },
    async run(ctx) {
      const body = tokenCreateBody(ctx.args[0]!, ctx.opts);
      const t = await ctx.client().call("POST", "/tokens", body);
      if (ctx.json) {
        print(ctx, t, () => "");
        return 0;
      }
      // The secret alone on stdout (for `$(slipway tokens create …)`), the rest on stderr.
      ctx.io.err(`token '${t.name}' (${t.role}${t.apps.length ? ` of ${t.apps.join(", ")}` : ""}), id ${t.id}, ${t.expiresAt ? `expires ${t.expiresAt}` : "does not expire"}; it is shown only now:\n`);
      ctx.io.out(`${t.token}\n`);
      return 0;
    },
  },
  {
    name: "tokens revoke",
    args: ["id"],
    summary: "Revoke an API token: refused from its next call (the last admin token cannot be revoked)",
    async run(ctx) {
      const t = await ctx.client().call("DELETE", `/tokens/${enc(ctx.args[0]!)}`);
      print(ctx, t, () => `revoked token '${t.name}' (${t.id}) at ${t.revokedAt}\n`);
      return 0;
    },
  },
];
