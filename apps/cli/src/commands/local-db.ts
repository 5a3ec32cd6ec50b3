// The local loop (issue 13): `slipway pull db` copies an environment's database into a local
// PostgreSQL, `slipway push db` puts a local database back (after a safety backup). Both go
// through backups: what travels is a pg_dump custom-format archive with its sha256.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { CUSTOM_ARCHIVE_HEADER_BYTES, customArchiveProblem, type PgConnection } from "@slipway/core";
import { CommandError, UsageError } from "../config.js";
import { bytes, duration } from "../format.js";
import { createLocalDatabase, databaseTarget, dropLocalDatabase, LOCAL_RESTORE_FLAGS, requireTools, runTool, type PgTool } from "../pg-local.js";
import { downloadTo, uploadFrom } from "../transfer.js";
import { TERMINAL, enc, envPath, print, until, type Command, type Ctx } from "./command.js";

/** What `pull db` and `push db` will do, from their arguments alone (nothing is run or sent). */
export interface LocalDbPlan {
  app: string;
  env: string;
  /** The local side: --to / --from, or the local database `<app>_<env>`. */
  local: PgConnection;
  /** Whether the local database is the default one (pull creates it, and refuses when it exists). */
  isDefault: boolean;
  tools: PgTool[];
}

/** How the local side is named in what the commands print. */
export function localName(plan: Pick<LocalDbPlan, "local" | "isDefault">): string {
  return plan.isDefault ? `the local database ${plan.local.database}` : plan.local.label;
}

export function pullPlan(args: string[], opts: Ctx["opts"]): LocalDbPlan {
  const [app, env] = args as [string, string];
  const to = typeof opts.to === "string" ? opts.to : undefined;
  return { app, env, local: databaseTarget(to, app, env, "--to"), isDefault: to === undefined, tools: to === undefined ? ["pg_restore", "createdb", "dropdb"] : ["pg_restore"] };
}

export function pushPlan(args: string[], opts: Ctx["opts"], canAsk: boolean): LocalDbPlan & { confirmed: boolean } {
  const [app, env] = args as [string, string];
  const from = typeof opts.from === "string" ? opts.from : undefined;
  const confirmed = opts["yes-i-am-sure"] === true;
  if (!confirmed && !canAsk) throw new UsageError(`push db replaces the database of ${app}/${env}: run it in a terminal to confirm by typing ${app}/${env}, or add --yes-i-am-sure`);
  return { app, env, local: databaseTarget(from, app, env, "--from"), isDefault: from === undefined, tools: ["pg_dump"], confirmed };
}

/** The typed confirmation: exactly `<app>/<env>`, surrounding blanks aside. */
export function confirms(answer: string | undefined, app: string, env: string): boolean {
  return answer?.trim() === `${app}/${env}`;
}

/** A private directory for the archive (it holds the data), removed whatever happens. */
async function withWorkDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), "slipway-db-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The archive file's problem as a custom-format archive (see customArchiveProblem), if any. */
async function archiveProblem(file: string): Promise<string | undefined> {
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(CUSTOM_ARCHIVE_HEADER_BYTES);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return customArchiveProblem(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Polls a backup until it ends, with its state (and on a terminal the time it has taken) on stderr. */
export async function waitForBackup(ctx: Ctx, id: string): Promise<any> {
  const started = Date.now();
  let last = "";
  const b = await until(ctx.io, async () => {
    const x = await ctx.client().call("GET", `/backups/${enc(id)}`);
    const line = `backup ${id}: ${x.state}`;
    if (ctx.io.errIsTTY) ctx.io.err(`\r\x1b[K${line} (${duration(Date.now() - started)})`);
    else if (line !== last) ctx.io.err(`${line}\n`);
    last = line;
    return TERMINAL.has(x.state) ? x : undefined;
  });
  if (ctx.io.errIsTTY) ctx.io.err("\n");
  return b;
}

/** Polls a restore until it ends, with each new phase and its bytes on stderr. */
export async function waitForRestore(ctx: Ctx, id: string): Promise<any> {
  let last = "";
  return until(ctx.io, async () => {
    const c = await ctx.client().call("GET", `/content-copies/${enc(id)}`);
    const line = `restore ${id}: ${c.state}${c.progress?.phase ? ` (${c.progress.phase}, ${bytes(c.progress.bytes ?? 0)})` : ""}`;
    if (line !== last) ctx.io.err(`${line}\n`);
    last = line;
    return TERMINAL.has(c.state) ? c : undefined;
  });
}

/** How to put a safety backup back. */
export const undoCommand = (id: string) => `slipway backups restore ${id} --yes`;

/**
 * Restores an uploaded backup into the environment (the platform takes a safety backup first) and
 * waits for it; a failure says where the previous content is. `what` names it for the failure:
 * "the database was … the previous one", "the media were … the previous ones".
 */
export async function restoreUpload(ctx: Ctx, app: string, env: string, backupId: string, what: { changed: string; previous: string }): Promise<{ restoreId: string; safetyBackupId: string }> {
  const r = await ctx.client().call("POST", `/backups/${enc(backupId)}/restore`, { confirm: true });
  ctx.io.err(`restoring backup ${backupId} into ${app}/${env} (restore ${r.id}), after safety backup ${r.safetyBackupId}\n`);
  let c: any;
  try {
    c = await waitForRestore(ctx, r.id);
  } catch (err) {
    if (ctx.io.signal?.aborted) ctx.io.err(`slipway: stopped waiting; restore ${r.id} goes on (safety backup ${r.safetyBackupId}: ${undoCommand(r.safetyBackupId)})\n`);
    throw err;
  }
  if (c.state !== "succeeded") {
    throw new CommandError(`restore ${r.id} into ${app}/${env} ${c.state}${c.error ? `: ${errorText(c.error)}` : ""}; if ${what.changed} changed, safety backup ${c.safetyBackupId} holds ${what.previous} (${undoCommand(c.safetyBackupId)})`);
  }
  return { restoreId: r.id, safetyBackupId: c.safetyBackupId };
}

export const errorText = (e: unknown) => (e && typeof e === "object" && "message" in e ? String((e as { message: unknown }).message) : e ? String(e) : "");

async function pull(ctx: Ctx): Promise<number> {
  const plan = pullPlan(ctx.args, ctx.opts);
  const { app, env, local } = plan;
  requireTools(ctx.io.env, plan.tools);
  const client = ctx.client();
  // The local side first: a database that is in the way is found before the platform works.
  if (plan.isDefault && !(await createLocalDatabase(local, ctx.io.env, ctx.io.signal))) {
    throw new CommandError(`a local database named ${local.database} already exists: drop it first (dropdb ${local.database}), or restore into it with --to postgres:///${local.database}`);
  }
  let backupId: string | undefined;
  try {
    const b = await client.call("POST", `${envPath(app, env)}/backups`, { database: true, media: false });
    backupId = b.id as string;
    ctx.io.err(`backing up the database of ${app}/${env} (backup ${b.id})\n`);
    const done = await waitForBackup(ctx, b.id);
    if (done.state !== "succeeded") throw new CommandError(`backup ${b.id} of ${app}/${env} ${done.state}${done.error ? `: ${errorText(done.error)}` : ""}`);
    return await withWorkDir(async (dir) => {
      const file = path.join(dir, `${app}-${env}.dump`);
      const got = await downloadTo(client, `/backups/${enc(b.id)}/database`, file, ctx.io, "downloading");
      const expected = got.expectedSha256 ?? done.databaseSha256 ?? undefined;
      if (got.expectedBytes !== undefined && got.bytes !== got.expectedBytes) throw new CommandError(`the download of backup ${b.id} ended after ${got.bytes} of ${got.expectedBytes} bytes: nothing was restored; try again`);
      if (expected && got.sha256 !== expected) throw new CommandError(`the downloaded archive's sha256 ${got.sha256} is not the backup's ${expected}: nothing was restored; try again`);
      const problem = await archiveProblem(file);
      if (problem) throw new CommandError(`backup ${b.id}'s database archive cannot be restored here: ${problem}`);
      ctx.io.err(`archive ${bytes(got.bytes)}, sha256 ${got.sha256}${expected ? " (checked)" : " (the backup recorded none to check against)"}\nrestoring into ${localName(plan)}\n`);
      await runTool("pg_restore", [...LOCAL_RESTORE_FLAGS, ...local.args, file], local, ctx.io.env, ctx.io.signal);
      const result = { app, environment: env, backup: b.id, database: local.database, target: local.label, bytes: got.bytes, sha256: got.sha256 };
      print(ctx, result, () => `pulled ${app}/${env} into the local database ${local.database}${plan.isDefault ? "" : ` (${local.label})`}: backup ${b.id}, ${bytes(got.bytes)}\n`);
      return 0;
    });
  } catch (err) {
    // Nothing half-made is left behind: the database this command created goes again.
    if (plan.isDefault) await dropLocalDatabase(local, ctx.io.env).catch(() => undefined);
    if (backupId && ctx.io.signal?.aborted) ctx.io.err(`slipway: stopped; backup ${backupId} stays on the platform\n`);
    throw err;
  }
}

async function push(ctx: Ctx): Promise<number> {
  const plan = pushPlan(ctx.args, ctx.opts, ctx.io.prompt !== undefined);
  const { app, env, local } = plan;
  requireTools(ctx.io.env, plan.tools);
  const client = ctx.client();
  // Refusals of the platform (no such environment, another app's token) before anything is dumped.
  await client.call("GET", envPath(app, env));
  return withWorkDir(async (dir) => {
    const file = path.join(dir, `${app}-${env}.dump`);
    ctx.io.err(`dumping ${localName(plan)}\n`);
    await runTool("pg_dump", ["--format=custom", `--file=${file}`, ...local.args], local, ctx.io.env, ctx.io.signal);
    const size = (await stat(file)).size;
    const problem = await archiveProblem(file);
    if (problem) throw new CommandError(`pg_dump wrote something the platform cannot restore: ${problem}`);
    const sha256 = await sha256File(file);
    ctx.io.err(`archive ${bytes(size)}, sha256 ${sha256}\n`);
    if (!plan.confirmed) {
      const answer = await ctx.io.prompt!(`This replaces the database of ${app}/${env} with ${localName(plan)} (a safety backup of ${app}/${env} is taken first).\nType ${app}/${env} to confirm: `);
      if (!confirms(answer, app, env)) throw new CommandError(`not confirmed (the answer was not ${app}/${env}): nothing was sent`);
    }
    const up = await uploadFrom<any>(client, `${envPath(app, env)}/backups/upload`, file, size, ctx.io, "uploading");
    if (up.databaseSha256 !== sha256) throw new CommandError(`the platform stored an archive with sha256 ${up.databaseSha256}, not this one's ${sha256} (backup ${up.id}): nothing was restored`);
    const r = await restoreUpload(ctx, app, env, up.id, { changed: "the database was", previous: "the previous one" });
    const result = { app, environment: env, backup: up.id, restore: r.restoreId, safetyBackup: r.safetyBackupId, source: local.label, bytes: size, sha256 };
    print(ctx, result, () => `pushed ${localName(plan)} to ${app}/${env} (backup ${up.id}, ${bytes(size)})\nsafety backup ${r.safetyBackupId} holds the database as it was before; to put it back: ${undoCommand(r.safetyBackupId)}\n`);
    return 0;
  });
}

export const localDbCommands: Command[] = [
  {
    name: "pull db",
    args: ["app", "env"],
    summary: "Copy an environment's database into a local PostgreSQL: a new backup, downloaded, checked and restored into a new local database <app>_<env> (or --to)",
    options: {
      to: { type: "string", description: "restore into this existing database instead (postgres://…); what the backup holds replaces its objects of the same names" },
    },
    run: pull,
  },
  {
    name: "push db",
    args: ["app", "env"],
    summary: "Replace an environment's database with a local one (pg_dump -Fc of <app>_<env>, or --from), after a safety backup; asks you to type <app>/<env>",
    options: {
      from: { type: "string", description: "dump this database instead (postgres://…)" },
      "yes-i-am-sure": { type: "boolean", description: "do not ask (needed without a terminal)" },
    },
    run: push,
  },
];
