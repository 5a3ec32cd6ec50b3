import { randomBytes } from "node:crypto";
import { createDatabaseFromTemplate, dropDatabase } from "@slipway/control-plane/testing";
import { dropAllWithPrefix } from "@slipway/control-plane/provisioner";

const ADMIN_DSN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * A fresh, already migrated database on the local PostgreSQL cluster (a copy of the
 * template migrated once per migration set, so the control plane's migration is a no-op);
 * drop() removes it.
 */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `slipway_test_${randomBytes(6).toString("hex")}`;
  const url = await createDatabaseFromTemplate(ADMIN_DSN, name);
  return { url, drop: () => dropDatabase(ADMIN_DSN, name) };
}

/** Drops the environment databases and roles a platform made under its name prefix. */
export function dropDatabasesWithPrefix(prefix: string): Promise<void> {
  return dropAllWithPrefix(ADMIN_DSN, prefix);
}
