import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { Kysely } from "kysely";
import { migrate, openDatabase } from "../db/database.js";

/**
 * Test databases cloned from a migrated template, for the integration harness
 * and the end-to-end platform (exported as `@slipway/control-plane/testing`).
 * Migrating costs a few hundred milliseconds on PostgreSQL and a PGlite initdb
 * about two seconds: both are paid once per migration set, not once per suite.
 */

const TEMPLATE_PREFIX = "slipway_tpl_";
/** Key of the advisory lock under which one process (of any parallel run) builds the template. */
const TEMPLATE_LOCK = "slipway-test-template";

/**
 * A hash of the migration files, so that a changed or added migration makes a
 * new template. The sources are hashed both from src/ and from dist/ (the
 * end-to-end platform runs the built control plane), so the integration and
 * end-to-end tests share one template; dist's files only when src/ is absent.
 */
export function migrationsHash(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    { dir: path.resolve(here, "../../src/db/migrations"), ext: /(?<!\.d)\.ts$/ },
    { dir: path.resolve(here, "../db/migrations"), ext: /\.js$/ },
  ];
  const found = candidates.find((c) => existsSync(c.dir) && readdirSync(c.dir).some((f) => c.ext.test(f)));
  if (!found) throw new Error(`no migrations found next to ${here}`);
  const h = createHash("sha256");
  for (const f of readdirSync(found.dir).filter((f) => found.ext.test(f)).sort()) h.update(f).update("\0").update(readFileSync(path.join(found.dir, f))).update("\0");
  return h.digest("hex").slice(0, 16);
}

function databaseUrl(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

async function withClient<T>(adminUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const templates = new Map<string, Promise<string>>();

/**
 * The name of the migrated template on the cluster of `adminUrl`, built if it
 * does not exist yet. Safe to call concurrently from parallel processes: the
 * check and the build happen under a session advisory lock (released also when
 * the process dies), and the template appears under its final name only once
 * migrated. Templates of other migration hashes are dropped then.
 */
export function ensureTemplateDatabase(adminUrl: string): Promise<string> {
  let p = templates.get(adminUrl);
  if (!p) {
    p = buildTemplate(adminUrl);
    templates.set(adminUrl, p);
    p.catch(() => templates.delete(adminUrl));
  }
  return p;
}

async function buildTemplate(adminUrl: string): Promise<string> {
  const name = `${TEMPLATE_PREFIX}${migrationsHash()}`;
  return withClient(adminUrl, async (c) => {
    await c.query("SELECT pg_advisory_lock(hashtext($1))", [TEMPLATE_LOCK]);
    try {
      const { rows } = await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1", [`${TEMPLATE_PREFIX.replace(/_/g, "\\_")}%`]);
      // Older migration sets, and a half-built template of a process that died: only the lock holder builds.
      for (const r of rows.filter((r) => r.datname !== name)) await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(r.datname)} WITH (FORCE)`);
      if (rows.some((r) => r.datname === name)) return name;
      const building = `${name}_building`;
      await c.query(`CREATE DATABASE ${pg.escapeIdentifier(building)}`);
      const handle = await openDatabase({ databaseUrl: databaseUrl(adminUrl, building) });
      // Closing ends every pooled connection: PostgreSQL refuses to copy (or rename) a database that has any.
      await handle.close();
      await c.query(`ALTER DATABASE ${pg.escapeIdentifier(building)} RENAME TO ${pg.escapeIdentifier(name)}`);
      return name;
    } finally {
      await c.query("SELECT pg_advisory_unlock(hashtext($1))", [TEMPLATE_LOCK]);
    }
  });
}

/**
 * Creates database `name` as a copy of the migrated template and returns its
 * URL; the control plane's migration on opening it finds nothing to do.
 */
export async function createDatabaseFromTemplate(adminUrl: string, name: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const template = await ensureTemplateDatabase(adminUrl);
    try {
      await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(template)}`));
      return databaseUrl(adminUrl, name);
    } catch (err) {
      // 3D000: another run (another checkout, other migrations) dropped this template meanwhile: build it again.
      if ((err as { code?: string }).code !== "3D000" || attempt > 2) throw err;
      templates.delete(adminUrl);
    }
  }
}

/** Drops a database made by createDatabaseFromTemplate (connections still open are ended). */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`));
}

let pgliteTemplate: Promise<Blob> | undefined;

/**
 * A migrated PGlite data directory as a tarball, for `new PGlite({ loadDataDir })`.
 * Measured here: loading it takes 0.4–1 s where a fresh PGlite (initdb) and the
 * migrations take 2–5 s. Kept in the system's temporary directory under the
 * migration hash and PGlite's version, written whole then renamed (parallel
 * workers may both write it; either copy is right), so each run after the
 * first only reads it.
 */
export function pgliteTemplateDump(): Promise<Blob> {
  pgliteTemplate ??= (async () => {
    // The package's exports hide its package.json: read it beside the resolved entry point (dist/…).
    const entry = createRequire(import.meta.url).resolve("@electric-sql/pglite");
    const version = (JSON.parse(readFileSync(path.resolve(path.dirname(entry), "../package.json"), "utf8")) as { version: string }).version;
    const prefix = "slipway-pglite-template-";
    const file = path.join(tmpdir(), `${prefix}${migrationsHash()}-${version}.tar`);
    if (existsSync(file)) return new Blob([readFileSync(file)]);
    const { PGlite } = await import("@electric-sql/pglite");
    const { PGliteDialect } = await import("kysely-pglite-dialect");
    const pglite = new PGlite();
    const db = new Kysely<unknown>({ dialect: new PGliteDialect(pglite) });
    await migrate(db);
    const dump = await pglite.dumpDataDir("none");
    await db.destroy();
    const partial = `${file}.${process.pid}.partial`;
    writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
    renameSync(partial, file);
    for (const f of readdirSync(tmpdir())) {
      if (f.startsWith(prefix) && f.endsWith(".tar") && path.join(tmpdir(), f) !== file) rmSync(path.join(tmpdir(), f), { force: true });
    }
    return dump;
  })();
  pgliteTemplate.catch(() => (pgliteTemplate = undefined));
  return pgliteTemplate;
}
