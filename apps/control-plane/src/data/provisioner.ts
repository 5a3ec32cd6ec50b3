import { createHash } from "node:crypto";
import pg from "pg";
import { DATABASE_NAME_PREFIX_PATTERN, environmentDatabaseName, type Logger } from "@slipway/core";

/** One environment's database: its own database and its own login role that owns it. */
export interface EnvironmentDatabase {
  database: string;
  role: string;
}

/**
 * Creates and drops the environments' databases on the cluster given by an
 * admin DSN. Every call is idempotent. Least privilege: each role owns only
 * its database, and CONNECT is revoked from PUBLIC, so one environment's
 * credentials cannot even connect to another environment's database.
 */
export class DatabaseProvisioner {
  /**
   * What this process already provisioned: database → fingerprint of role and password.
   * Deployments call `ensure` every time; the round of role/grant statements on a fresh
   * admin connection runs once per environment and process (a database dropped behind the
   * platform's back comes back at the first deployment after the control plane restarts).
   */
  private readonly provisioned = new Map<string, string>();

  constructor(
    private readonly adminUrl: string,
    private readonly log: Logger,
    /** Prefix of every database and role name, so several platforms (or test runs) can share a cluster. */
    private readonly prefix = "slw",
  ) {
    if (!new RegExp(DATABASE_NAME_PREFIX_PATTERN).test(prefix)) throw new Error(`invalid database name prefix '${prefix}'`);
  }

  /**
   * The names a new environment's database and role get: `<prefix>_e_<32 hex of its id>`.
   * Recorded on the environment at first provisioning; only the recorded names are used after.
   */
  names(environmentId: string): EnvironmentDatabase {
    const name = environmentDatabaseName(this.prefix, environmentId);
    return { database: name, role: name };
  }

  /**
   * The names environments provisioned before migration 0010 got, derived from app and
   * environment names (`shop-api`/`live` and `shop`/`api-live` both gave `<prefix>_shop_api_live`).
   * Only for recording those environments' existing databases; never for a new one.
   */
  legacyNames(app: string, env: string): EnvironmentDatabase {
    const base = `${this.prefix}_${app}_${env}`.replace(/-/g, "_");
    if (base.length <= 55) return { database: base, role: base };
    const short = `${base.slice(0, 46)}_${createHash("sha256").update(base).digest("hex").slice(0, 8)}`;
    return { database: short, role: short };
  }

  private async withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ connectionString: this.adminUrl });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }

  /** Creates (or updates the password of) the role, then the database it owns. */
  async ensure(names: EnvironmentDatabase, password: string): Promise<void> {
    const fingerprint = fingerprintOf(names, password);
    if (this.provisioned.get(names.database) === fingerprint) return;
    await this.withAdmin(async (c) => {
      const role = pg.escapeIdentifier(names.role);
      const db = pg.escapeIdentifier(names.database);
      const lit = pg.escapeLiteral(password);
      // Two first provisionings at once (two requests, or two control planes) would both try CREATE ROLE
      // and the loser would fail: one at a time per role, across every process on the cluster.
      await c.query("SELECT pg_advisory_lock(hashtext($1))", [`slipway-provision:${names.role}`]);
      try {
        await this.provisionLocked(c, names, role, db, lit);
      } finally {
        await c.query("SELECT pg_advisory_unlock(hashtext($1))", [`slipway-provision:${names.role}`]);
      }
    });
    this.provisioned.set(names.database, fingerprint);
  }

  /** Whether `ensure(names, password)` would do nothing: this process provisioned them already. */
  ensured(names: EnvironmentDatabase, password: string): boolean {
    return this.provisioned.get(names.database) === fingerprintOf(names, password);
  }

  private async provisionLocked(c: pg.Client, names: EnvironmentDatabase, role: string, db: string, lit: string): Promise<void> {
    const exists = await c.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [names.role]);
    // INHERIT: on PostgreSQL 15 the right to create in `public` comes from the implicit
    // pg_database_owner membership of the database's owner, which NOINHERIT would cut.
    if (exists.rowCount) await c.query(`ALTER ROLE ${role} WITH LOGIN INHERIT PASSWORD ${lit}`);
    else await c.query(`CREATE ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT PASSWORD ${lit}`);
    const dbExists = await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [names.database]);
    // CREATE DATABASE cannot run in a transaction; a concurrent creator makes this fail with 42P04, which is fine.
    if (!dbExists.rowCount) {
      await c.query(`CREATE DATABASE ${db} OWNER ${role}`).catch((err: { code?: string }) => {
        if (err.code !== "42P04") throw err;
      });
      this.log.info({ database: names.database }, "created environment database");
    }
    await c.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    await c.query(`GRANT ALL ON DATABASE ${db} TO ${role}`);
  }

  /** Drops the database (terminating its sessions) and the role. Missing ones are fine. */
  async drop(names: EnvironmentDatabase): Promise<void> {
    this.provisioned.delete(names.database);
    await this.withAdmin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(names.database)} WITH (FORCE)`);
      await c.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(names.role)}`);
      this.log.info({ database: names.database }, "dropped environment database");
    });
  }
}

/** A connection URL for `role` to `database` at host:port (from the admin URL unless given). */
export function databaseUrl(adminUrl: string, names: EnvironmentDatabase, password: string, host?: string): string {
  const u = new URL(adminUrl);
  u.username = encodeURIComponent(names.role);
  u.password = encodeURIComponent(password);
  if (host) u.hostname = host;
  u.pathname = `/${names.database}`;
  u.search = "";
  return u.toString();
}

/** Drops every database and role whose name starts with `<prefix>_` (test clean-up). */
export async function dropAllWithPrefix(adminUrl: string, prefix: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const like = `${prefix}\\_%`;
    for (const r of (await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1", [like])).rows) {
      await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(r.datname)} WITH (FORCE)`);
    }
    for (const r of (await c.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname LIKE $1", [like])).rows) {
      await c.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(r.rolname)}`);
    }
  } finally {
    await c.end();
  }
}

function fingerprintOf(names: EnvironmentDatabase, password: string): string {
  return createHash("sha256").update(`${names.role}\0${password}`).digest("hex");
}
