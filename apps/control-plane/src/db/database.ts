import { mkdirSync } from "node:fs";
import path from "node:path";
import { Kysely, Migrator, PostgresDialect, sql, type Migration, type MigrationProvider } from "kysely";
import pg from "pg";
import type { Database } from "./schema.js";
import * as m0001 from "./migrations/0001-initial.js";
import * as m0002 from "./migrations/0002-deployment-queue.js";
import * as m0003 from "./migrations/0003-environments.js";
import * as m0004 from "./migrations/0004-data.js";
import * as m0005 from "./migrations/0005-metrics.js";
import * as m0006 from "./migrations/0006-fleet.js";
import * as m0007 from "./migrations/0007-job-indexes.js";
import * as m0008 from "./migrations/0008-host-labels.js";
import * as m0009 from "./migrations/0009-desired-observed.js";
import * as m0010 from "./migrations/0010-environment-identity.js";
import * as m0011 from "./migrations/0011-token-lifecycle.js";
import * as m0012 from "./migrations/0012-repository-credential.js";
import * as m0013 from "./migrations/0013-host-nats-key.js";
import * as m0014 from "./migrations/0014-backup-sha256.js";
import * as m0015 from "./migrations/0015-environment-storage.js";
import * as m0016 from "./migrations/0016-environment-limits.js";
import * as m0017 from "./migrations/0017-git-integration.js";
import * as m0018 from "./migrations/0018-sessions.js";
import * as m0019 from "./migrations/0019-certificates.js";
import * as m0020 from "./migrations/0020-environment-forwards.js";
import * as m0021 from "./migrations/0021-uploaded-certificates.js";
import * as m0022 from "./migrations/0022-https-redirect.js";
import * as m0023 from "./migrations/0023-served-certificates.js";
import * as m0024 from "./migrations/0024-leases.js";
import * as m0025 from "./migrations/0025-hosts-fillfactor.js";

export type Db = Kysely<Database>;

const migrations: Record<string, Migration> = { "0001-initial": m0001, "0002-deployment-queue": m0002, "0003-environments": m0003, "0004-data": m0004, "0005-metrics": m0005, "0006-fleet": m0006, "0007-job-indexes": m0007, "0008-host-labels": m0008, "0009-desired-observed": m0009, "0010-environment-identity": m0010, "0011-token-lifecycle": m0011, "0012-repository-credential": m0012, "0013-host-nats-key": m0013, "0014-backup-sha256": m0014, "0015-environment-storage": m0015, "0016-environment-limits": m0016, "0017-git-integration": m0017, "0018-sessions": m0018, "0019-certificates": m0019, "0020-environment-forwards": m0020, "0021-uploaded-certificates": m0021, "0022-https-redirect": m0022, "0023-served-certificates": m0023, "0024-leases": m0024, "0025-hosts-fillfactor": m0025 };

class StaticMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

export interface DatabaseHandle {
  db: Db;
  kind: "postgres" | "pglite";
  close(): Promise<void>;
}

/**
 * Opens the platform database: PostgreSQL when a DSN is given, else PGlite in
 * `<dataDir>/pglite` (or in memory with dataDir "memory://"). Runs migrations.
 */
export async function openDatabase(opts: { databaseUrl?: string; dataDir?: string; onIdleError?: (err: Error) => void; pgliteLoadDataDir?: Blob; migrate?: boolean }): Promise<DatabaseHandle> {
  let handle: DatabaseHandle;
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 10 });
    // An idle client whose server connection drops (PostgreSQL restarted, connection killed) emits
    // 'error' on the pool; unhandled, it would crash the process. The pool replaces the client.
    pool.on("error", (err) => opts.onIdleError?.(err));
    // The pool listens to a client only while it is idle: a connection that drops while checked out
    // (in a transaction, a query) would emit 'error' with no listener and exit the process. A
    // listener for the connection's whole life makes it fail the statement that holds it instead.
    pool.on("connect", (client) => client.on("error", (err) => opts.onIdleError?.(err)));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    handle = { db, kind: "postgres", close: () => db.destroy() };
  } else {
    const { PGlite } = await import("@electric-sql/pglite");
    const { PGliteDialect } = await import("kysely-pglite-dialect");
    let dir: string | undefined;
    if (opts.dataDir && opts.dataDir !== "memory://") {
      dir = path.join(opts.dataDir, "pglite");
      mkdirSync(dir, { recursive: true });
    }
    // pgliteLoadDataDir: an in-memory PGlite started from a tarball of a data directory (tests start from a migrated template).
    const pglite = dir ? new PGlite(dir) : new PGlite(opts.pgliteLoadDataDir ? { loadDataDir: opts.pgliteLoadDataDir } : {});
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    handle = {
      db,
      kind: "pglite",
      close: async () => {
        await db.destroy();
        if (!pglite.closed) await pglite.close();
      },
    };
  }
  if (opts.migrate !== false) await migrate(handle.db);
  return handle;
}

export async function migrate(db: Kysely<any>): Promise<void> {
  // Unordered: migrations are numbered by topic and may land out of order across branches.
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider(), allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error");
    throw new Error(`database migration ${failed?.migrationName ?? ""} failed: ${String((error as Error).message ?? error)}`, { cause: error });
  }
}

/** `count(*)` arrives as a string from pg and a number from PGlite. */
export function toNumber(v: unknown): number {
  return typeof v === "number" ? v : Number(v ?? 0);
}

/** jsonb columns are written as JSON text. */
export function json(v: unknown): string {
  return JSON.stringify(v);
}

/** One round trip to the database (readiness). */
export async function ping(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}
