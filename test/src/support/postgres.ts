import { randomBytes } from "node:crypto";
import pg from "pg";
import { dropAllWithPrefix } from "@slipway/control-plane/provisioner";

const ADMIN_DSN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A fresh database on the local PostgreSQL cluster; drop() removes it. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `slipway_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_DSN });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(ADMIN_DSN);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: ADMIN_DSN });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** Drops the environment databases and roles a platform made under its name prefix. */
export function dropDatabasesWithPrefix(prefix: string): Promise<void> {
  return dropAllWithPrefix(ADMIN_DSN, prefix);
}
