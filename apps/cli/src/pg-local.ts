// The PostgreSQL client tools on this machine (pg_dump, pg_restore, createdb, dropdb), for
// `slipway pull db` and `slipway push db`: found on PATH, run with the password in their
// environment only, their failure reduced to one line.
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import path from "node:path";
import { pgConnection, type PgConnection } from "@slipway/core";
import { CommandError, UsageError } from "./config.js";

export type PgTool = "pg_dump" | "pg_restore" | "createdb" | "dropdb";

/**
 * The flags of every restore: objects owned by and granted to roles of the platform's database
 * become the local user's; what the archive holds is dropped first; one transaction, so a
 * failed restore leaves the target as it was (the platform's own restores run the same way).
 */
export const LOCAL_RESTORE_FLAGS = ["--no-owner", "--no-privileges", "--clean", "--if-exists", "--single-transaction", "--exit-on-error"];

/** The tools that are not on PATH, or a CommandError naming them and how to get them. */
export function requireTools(env: NodeJS.ProcessEnv, tools: PgTool[]): void {
  const dirs = (env.PATH ?? "").split(path.delimiter).filter(Boolean);
  const missing = tools.filter((t) => !dirs.some((d) => isExecutable(path.join(d, t))));
  if (missing.length > 0) {
    throw new CommandError(`${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not on PATH: install the PostgreSQL client tools (Debian/Ubuntu: apt-get install postgresql-client; macOS: brew install libpq and add its bin to PATH)`);
  }
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The local database of an environment when no URL is given: `<app>_<env>`. */
export function localDatabaseName(app: string, env: string): string {
  return `${app}_${env}`;
}

/**
 * Where pull restores into (--to) or push dumps from (--from): a postgres:// URL, or the local
 * database `<app>_<env>` on the server libpq reaches by default (PGHOST, PGPORT, PGUSER, the
 * local socket).
 */
export function databaseTarget(url: string | undefined, app: string, env: string, option: "--to" | "--from"): PgConnection {
  if (url === undefined) return pgConnection(`postgres:///${encodeURIComponent(localDatabaseName(app, env))}`);
  try {
    return pgConnection(url);
  } catch (err) {
    throw new UsageError(`${option} '${url.replace(/\/\/[^@/]*@/, "//***@")}': ${(err as Error).message} (example: postgres://user@127.0.0.1:5432/mydb)`);
  }
}

/** pg tool output that is only the tool repeating what failed: its last meaningful line says why. */
function lastLine(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l && !/^(pg_restore|pg_dump): (detail|hint): /.test(l) && !/^Command was: /.test(l));
  return (lines.find((l) => /error:/i.test(l)) ?? lines.at(-1) ?? "").replace(/^(pg_dump|pg_restore|createdb|dropdb): (error: )?/, "");
}

/**
 * Runs one tool to its end; resolves with its stderr when it exited 0, else throws a
 * CommandError of one line (`pg_restore failed: <why>`). `signal` kills it (AbortError).
 */
export function runTool(tool: PgTool, args: string[], conn: Pick<PgConnection, "env">, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { env: { ...env, ...conn.env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (s: string) => (stderr = (stderr + s).slice(-16_384)));
    const onAbort = () => child.kill("SIGTERM");
    signal?.addEventListener("abort", onAbort, { once: true });
    child.once("error", (err) => {
      signal?.removeEventListener("abort", onAbort);
      reject(new CommandError(`${tool} could not be started: ${err.message}`));
    });
    child.once("close", (code, sig) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) return reject(Object.assign(new Error(`${tool} stopped`), { name: "AbortError" }));
      if (code === 0) return resolve(stderr);
      reject(new CommandError(`${tool} failed${sig ? ` (killed by ${sig})` : ""}: ${lastLine(stderr) || `exit code ${code}`}`));
    });
  });
}

/** createdb of the local `name`; false when it already exists (nothing done), throws otherwise. */
export async function createLocalDatabase(conn: PgConnection, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<boolean> {
  // createdb takes the name as an argument, not --dbname (that is the database it connects to).
  const args = conn.args.filter((a) => !a.startsWith("--dbname=")).concat(["--", conn.database]);
  try {
    await runTool("createdb", args, conn, env, signal);
    return true;
  } catch (err) {
    if (err instanceof CommandError && /already exists/.test(err.message)) return false;
    throw err;
  }
}

export async function dropLocalDatabase(conn: PgConnection, env: NodeJS.ProcessEnv): Promise<void> {
  const args = conn.args.filter((a) => !a.startsWith("--dbname=")).concat(["--if-exists", "--", conn.database]);
  await runTool("dropdb", args, conn, env);
}
