import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { Kysely, Migrator, PostgresDialect, sql, type Migration } from "kysely";
import pg from "pg";
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

const PG_ADMIN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";
const before0010: Record<string, Migration> = { "0001-initial": m0001, "0002-deployment-queue": m0002, "0003-environments": m0003, "0004-data": m0004, "0005-metrics": m0005, "0006-fleet": m0006, "0007-job-indexes": m0007, "0008-host-labels": m0008, "0009-desired-observed": m0009 };

async function postgres(): Promise<{ db: Kysely<any>; close(): Promise<void> }> {
  const name = `slipway_m0010_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(PG_ADMIN);
  u.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: u.toString(), max: 2 });
  // pg-pool's end() resolves once its clients are told to end, before their sockets are closed: the DROP … WITH
  // (FORCE) below can terminate one of them, and an idle client's error without a listener is an uncaught exception.
  pool.on("error", () => undefined);
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    close: async () => {
      await db.destroy();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

async function pglite(): Promise<{ db: Kysely<any>; close(): Promise<void> }> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGliteDialect } = await import("kysely-pglite-dialect");
  const p = new PGlite();
  const db = new Kysely<any>({ dialect: new PGliteDialect(p) });
  return { db, close: () => db.destroy() };
}

// Migration 0010 on an installation that already has environments, including the collision it closes.
describe.each([["postgres", postgres], ["pglite", pglite]] as const)("migration 0010 over existing environments (%s)", (_kind, open) => {
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of closers) await c();
  });

  it("records media prefixes and default host labels where they are; of two equal labels the oldest keeps it; then the labels are unique", async () => {
    const { db, close } = await open();
    closers.push(close);
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => before0010 } }).migrateToLatest();
    expect(error).toBeUndefined();
    const app = (id: string, name: string, at: string) => db.insertInto("apps").values({ id, name, repository: "/r", settings: "{}", created_at: at, updated_at: at }).execute();
    const env = (id: string, appId: string, name: string, at: string) => db.insertInto("environments").values({ id, app_id: appId, name, branch: "main", state: "not_deployed", created_at: at, updated_at: at }).execute();
    await app("a1", "shop-api", "2026-01-01T00:00:00Z");
    await app("a2", "shop", "2026-02-01T00:00:00Z");
    await env("0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b", "a1", "live", "2026-01-01T00:00:00Z");
    await env("1F8E2A4C-1B3D-4E5F-8A9B-0C1D2E3F4A5B", "a2", "api-live", "2026-02-02T00:00:00Z");
    await env("2f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b", "a2", "test", "2026-02-01T00:00:00Z");

    await m0010.up(db);

    const rows = await db.selectFrom("environments").select(["id", "host_label", "media_prefix", "database_name", "database_role"]).orderBy("created_at").execute();
    expect(rows).toEqual([
      { id: "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b", host_label: "shop-api-live", media_prefix: "shop-api/live/", database_name: null, database_role: null },
      { id: "2f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b", host_label: "shop-test", media_prefix: "shop/test/", database_name: null, database_role: null },
      { id: "1F8E2A4C-1B3D-4E5F-8A9B-0C1D2E3F4A5B", host_label: "env-1f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b", media_prefix: "shop/api-live/", database_name: null, database_role: null },
    ]);
    const taken = await db
      .insertInto("environments")
      .values({ id: "3f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b", app_id: "a2", name: "qa", branch: "main", state: "not_deployed", host_label: "shop-api-live", media_prefix: "envs/x/" })
      .execute()
      .then(() => "inserted", (err: { code?: string; constraint?: string }) => `${err.code} ${err.constraint}`);
    expect(taken).toBe("23505 environments_host_label_unique");
    const unnamed = await sql`INSERT INTO environments (id, app_id, name, branch, state) VALUES ('x', 'a2', 'qb', 'main', 'not_deployed')`.execute(db).then(() => "inserted", (err: { code?: string }) => err.code);
    expect(unnamed).toBe("23502"); // NOT NULL: every environment has a host label and a media prefix
  });
});
