import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type DatabaseHandle } from "./database.js";

const PG_ADMIN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";

// A PostgreSQL connection that drops while checked out (a restart, a failover, a killed backend)
// must fail the transaction holding it, not the control plane.
describe("the database pool survives a connection dropped mid-transaction", () => {
  const name = `slw_db_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Pool({ connectionString: PG_ADMIN, max: 1 });
  let handle: DatabaseHandle;
  const dropped: string[] = [];

  beforeAll(async () => {
    await admin.query(`CREATE DATABASE ${name}`);
    handle = await openDatabase({ databaseUrl: PG_ADMIN.replace(/\/[^/]*$/, `/${name}`), onIdleError: (err) => dropped.push(err.message) });
  });
  afterAll(async () => {
    await handle?.close();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  });

  it("the transaction fails with the reason, the error is reported, and the next query works", async () => {
    const tx = handle.db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
      await admin.query("select pg_terminate_backend($1)", [rows[0]!.pid]);
      // Give the terminated backend's goodbye time to arrive on the idle-in-transaction client.
      await new Promise((r) => setTimeout(r, 200));
      await sql`select 1`.execute(trx);
    });
    await expect(tx).rejects.toThrow(/terminat|Connection/i);
    expect(dropped.join(" ")).toMatch(/terminat/i);
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(handle.db);
    expect(rows[0]!.one).toBe(1);
  });
});
