// What the platform's database backups are made of, shared by the agent (which writes and
// restores them), the control plane (which streams them in and out) and the CLI (which makes
// and restores them locally): the names inside a backup's location, its manifest, the one
// archive format a restore reads, and how pg_dump / pg_restore / createdb reach a database.

/** The database archive (`pg_dump -Fc`) inside a backup's location (backupLocation). */
export const BACKUP_DATABASE_KEY = "database.dump";
/** The manifest inside a backup's location, written last: a backup without one is incomplete. */
export const BACKUP_MANIFEST_KEY = "manifest.json";

/** `<backup location>manifest.json`: what a restore checks before it touches anything. */
export interface BackupManifest {
  backupId: string;
  app: string;
  environment: string;
  createdAt: string;
  database: { bytes: number; sha256: string } | null;
  media: { objects: number; bytes: number } | null;
}

/** How many leading bytes customArchiveProblem needs: magic, version (3), int and offset sizes, format. */
export const CUSTOM_ARCHIVE_HEADER_BYTES = 11;
const MAGIC = "PGDMP";
/** pg_backup_archiver.h: archCustom = 1 (archTar = 3, archDirectory = 5 also start their toc with PGDMP). */
const FORMAT_CUSTOM = 1;

/**
 * Why bytes that begin an archive are not a pg_dump custom-format archive (`pg_dump -Fc`), the
 * only format a restore takes (pg_restore reads it from a pipe; plain SQL needs psql, and
 * directory and tar archives cannot be streamed); undefined when they are one. `head` is the
 * first CUSTOM_ARCHIVE_HEADER_BYTES bytes or more (fewer: the archive is that short).
 */
export function customArchiveProblem(head: Uint8Array): string | undefined {
  const buf = Buffer.from(head.buffer, head.byteOffset, Math.min(head.byteLength, CUSTOM_ARCHIVE_HEADER_BYTES));
  if (buf.length === 0) return "it is empty";
  if (buf.subarray(0, MAGIC.length).toString("latin1") !== MAGIC) {
    const text = buf.toString("latin1");
    const sql = /^(--|SET |CREATE |BEGIN|\\connect|\/\*)/i.test(text) || /^[\x09\x0a\x0d\x20-\x7e]+$/.test(text);
    return sql
      ? "it looks like a plain SQL script, not a pg_dump custom-format archive (dump with pg_dump -Fc)"
      : "it does not start with PGDMP: not a pg_dump custom-format archive (dump with pg_dump -Fc)";
  }
  if (buf.length < CUSTOM_ARCHIVE_HEADER_BYTES) return "it ends within the archive header: the archive is truncated";
  const major = buf[5]!;
  if (major !== 1) return `its archive version ${major}.${buf[6]} is not one pg_restore knows`;
  const format = buf[10]!;
  if (format !== FORMAT_CUSTOM) {
    const name = format === 3 ? "tar" : format === 5 ? "directory" : `format ${format}`;
    return `it is a pg_dump ${name} archive, not a custom-format one (dump with pg_dump -Fc)`;
  }
  return undefined;
}

/** How pg_dump/pg_restore/createdb reach a database: arguments for everything but the password, which goes in the child's env. */
export interface PgConnection {
  args: string[];
  env: Record<string, string>;
  /** host:port/db, safe to log */
  label: string;
  /** The database's name. */
  database: string;
}

const QUERY_ENV: Record<string, string> = {
  sslmode: "PGSSLMODE",
  sslrootcert: "PGSSLROOTCERT",
  connect_timeout: "PGCONNECT_TIMEOUT",
  application_name: "PGAPPNAME",
};

/**
 * Takes a postgres:// URL apart. Command lines are visible to every user in `ps`, so the
 * password travels only as PGPASSWORD in the child's environment. A URL without a host
 * (`postgres:///db`) leaves host and port to libpq's defaults (PGHOST, the local socket).
 */
export function pgConnection(url: string): PgConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error("the database URL is not a valid URL");
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:") throw new Error(`unsupported database URL scheme '${u.protocol}'`);
  const host = u.searchParams.get("host") ?? u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = u.port || (host ? "5432" : "");
  const user = decodeURIComponent(u.username);
  const db = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (!db) throw new Error("the database URL names no database");
  // A --dbname containing "=" or "://" would be parsed by libpq as a connection string.
  const dbArg = db.includes("=") || db.includes("://") ? `dbname='${db.replace(/(['\\])/g, "\\$1")}'` : db;
  const env: Record<string, string> = { PGCONNECT_TIMEOUT: "15" };
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  for (const [param, name] of Object.entries(QUERY_ENV)) {
    const v = u.searchParams.get(param);
    if (v !== null) env[name] = v;
  }
  return {
    args: [...(host ? ["--host", host] : []), ...(port ? ["--port", port] : []), ...(user ? ["--username", user] : []), "--no-password", `--dbname=${dbArg}`],
    env,
    label: `${host || "(local)"}${port ? `:${port}` : ""}/${db}`,
    database: db,
  };
}
