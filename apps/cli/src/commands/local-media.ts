// The local loop's media half (issue 13): `slipway pull media` downloads an environment's media
// into a folder, `slipway push media` makes the environment's media the folder's files again
// (after a safety backup). Like the database, they travel as backups: a media-only backup
// downloaded as a tar, and a tar uploaded as a backup that the ordinary restore puts in place.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { CommandError, UsageError } from "../config.js";
import { bytes } from "../format.js";
import { clearFolder, extractTo, folderState, listFolder, packFolder } from "../media-folder.js";
import { postStream, ProgressLine } from "../transfer.js";
import { enc, envPath, print, type Command, type Ctx } from "./command.js";
import { confirms, errorText, restoreUpload, undoCommand, waitForBackup } from "./local-db.js";

/** What `pull media` and `push media` will do, from their arguments alone (nothing is read or sent). */
export interface LocalMediaPlan {
  app: string;
  env: string;
  /** The folder as the user would write it: --to / --from, or `./<app>-<env>-media`. */
  dir: string;
  /** The folder's absolute path. */
  abs: string;
  /** Whether --to / --from named the folder. */
  named: boolean;
}

function folderOf(value: unknown, option: string, app: string, env: string, cwd: string): Pick<LocalMediaPlan, "dir" | "abs" | "named"> {
  if (value === undefined) {
    const dir = `./${app}-${env}-media`;
    return { dir, abs: path.resolve(cwd, dir), named: false };
  }
  if (typeof value !== "string" || value.trim() === "") throw new UsageError(`${option} needs a folder`);
  return { dir: value, abs: path.resolve(cwd, value), named: true };
}

export function pullMediaPlan(args: string[], opts: Ctx["opts"], cwd = process.cwd()): LocalMediaPlan & { force: boolean } {
  const [app, env] = args as [string, string];
  const folder = folderOf(opts.to, "--to", app, env, cwd);
  const force = opts.force === true;
  if (force && !folder.named) throw new UsageError(`--force writes into a folder that is not empty only when --to names it: slipway pull media ${app} ${env} --to <dir> --force`);
  return { app, env, ...folder, force };
}

export function pushMediaPlan(args: string[], opts: Ctx["opts"], canAsk: boolean, cwd = process.cwd()): LocalMediaPlan & { confirmed: boolean } {
  const [app, env] = args as [string, string];
  const folder = folderOf(opts.from, "--from", app, env, cwd);
  const confirmed = opts["yes-i-am-sure"] === true;
  if (!confirmed && !canAsk) throw new UsageError(`push media replaces the media of ${app}/${env}: run it in a terminal to confirm by typing ${app}/${env}, or add --yes-i-am-sure`);
  return { app, env, ...folder, confirmed };
}

const files = (n: number) => `${n} file${n === 1 ? "" : "s"}`;

function numberHeader(res: Response, name: string): number | undefined {
  const v = res.headers.get(name);
  return v !== null && /^\d+$/.test(v) ? Number(v) : undefined;
}

async function pull(ctx: Ctx): Promise<number> {
  const plan = pullMediaPlan(ctx.args, ctx.opts);
  const { app, env, dir, abs } = plan;
  // The local side first: a folder that is in the way is found before the platform works.
  const state = await folderState(abs, dir);
  if (state === "not-empty" && !plan.force) {
    throw new CommandError(
      plan.named
        ? `${dir} is not empty: add --force to write the media into it (files of the same names are overwritten, the others stay)`
        : `${dir} exists and is not empty: pull into another folder with --to <dir>, or into this one with --to ${dir} --force`,
    );
  }
  const client = ctx.client();
  const b = await client.call("POST", `${envPath(app, env)}/backups`, { database: false, media: true });
  ctx.io.err(`backing up the media of ${app}/${env} (backup ${b.id})\n`);
  try {
    const done = await waitForBackup(ctx, b.id);
    if (done.state !== "succeeded") throw new CommandError(`backup ${b.id} of ${app}/${env} ${done.state}${done.error ? `: ${errorText(done.error)}` : ""}`);
  } catch (err) {
    if (ctx.io.signal?.aborted) ctx.io.err(`slipway: stopped; backup ${b.id} stays on the platform\n`);
    throw err;
  }
  try {
    if (state === "missing") await mkdir(abs, { recursive: true });
    const res = await client.open(`/backups/${enc(b.id)}/media`, ctx.io.signal);
    const objects = numberHeader(res, "x-slipway-media-objects");
    const total = numberHeader(res, "x-slipway-media-bytes");
    const progress = new ProgressLine(ctx.io, "downloading", total, undefined, objects);
    if (!res.body) throw new CommandError("the control plane sent no body");
    const got = await extractTo(abs, res.body as unknown as AsyncIterable<Uint8Array>, (n, f) => progress.update(n, f));
    progress.done(got.bytes, "", got.files);
    if ((objects !== undefined && got.entries !== objects) || (total !== undefined && got.bytes !== total)) {
      throw new CommandError(`the download of backup ${b.id} ended after ${got.entries} of ${objects ?? "?"} objects, ${bytes(got.bytes)} of ${total === undefined ? "?" : bytes(total)}: try again`);
    }
    const result = { app, environment: env, backup: b.id, folder: abs, files: got.files, bytes: got.bytes };
    print(ctx, result, () => `pulled the media of ${app}/${env} into ${dir}: backup ${b.id}, ${files(got.files)}, ${bytes(got.bytes)}\n`);
    return 0;
  } catch (err) {
    // Nothing half-made is left behind, unless it went into a folder that held something already.
    if (state !== "not-empty") await clearFolder(abs, state === "missing").catch(() => undefined);
    if (ctx.io.signal?.aborted) ctx.io.err(`slipway: stopped; backup ${b.id} stays on the platform\n`);
    throw err;
  }
}

async function push(ctx: Ctx): Promise<number> {
  const plan = pushMediaPlan(ctx.args, ctx.opts, ctx.io.prompt !== undefined);
  const { app, env, dir, abs } = plan;
  if ((await folderState(abs, dir)) === "missing") {
    throw new CommandError(`${dir} does not exist${plan.named ? "" : `: pull the media first (slipway pull media ${app} ${env}), or name a folder with --from`}`);
  }
  const client = ctx.client();
  // Refusals of the platform (no such environment, another app's token) before the folder is read.
  await client.call("GET", envPath(app, env));
  const folder = await listFolder(abs, dir);
  const n = folder.files.length;
  ctx.io.err(`${dir}: ${files(n)}, ${bytes(folder.bytes)}\n`);
  if (!plan.confirmed) {
    const what = n === 0 ? `nothing: ${dir} is empty, so every media object of ${app}/${env} is removed` : `the ${files(n)} in ${dir} (objects that are not in the folder are removed)`;
    const answer = await ctx.io.prompt!(`This replaces the media of ${app}/${env} with ${what}; a safety backup of ${app}/${env}'s media is taken first.\nType ${app}/${env} to confirm: `);
    if (!confirms(answer, app, env)) throw new CommandError(`not confirmed (the answer was not ${app}/${env}): nothing was sent`);
  }
  const progress = new ProgressLine(ctx.io, "uploading", folder.bytes, undefined, n);
  const tar = packFolder(folder.files, (sent, f) => progress.update(sent, f));
  const up = await postStream<any>(client, `${envPath(app, env)}/backups/upload?part=media`, tar, { contentType: "application/x-tar", io: ctx.io });
  progress.done(folder.bytes, "", n);
  if (up.mediaObjects !== n || up.mediaBytes !== folder.bytes) {
    throw new CommandError(`the platform stored ${files(up.mediaObjects)} of ${bytes(up.mediaBytes)}, not the folder's ${files(n)} of ${bytes(folder.bytes)} (backup ${up.id}): nothing was restored`);
  }
  const r = await restoreUpload(ctx, app, env, up.id, { changed: "the media were", previous: "the previous ones" });
  const result = { app, environment: env, backup: up.id, restore: r.restoreId, safetyBackup: r.safetyBackupId, folder: abs, files: n, bytes: folder.bytes };
  print(ctx, result, () => `pushed ${files(n)} (${bytes(folder.bytes)}) from ${dir} to ${app}/${env} (backup ${up.id})\nsafety backup ${r.safetyBackupId} holds the media as they were before; to put them back: ${undoCommand(r.safetyBackupId)}\n`);
  return 0;
}

export const localMediaCommands: Command[] = [
  {
    name: "pull media",
    args: ["app", "env"],
    summary: "Download an environment's media into a folder: a new media backup, downloaded and extracted into ./<app>-<env>-media (or --to), which must be new or empty",
    options: {
      to: { type: "string", description: "extract into this folder instead (made when missing)" },
      force: { type: "boolean", description: "with --to: write into the folder even when it is not empty (files of the same names are overwritten, the others stay)" },
    },
    run: pull,
  },
  {
    name: "push media",
    args: ["app", "env"],
    summary: "Replace an environment's media with a folder's files (./<app>-<env>-media, or --from), after a safety backup; asks you to type <app>/<env>",
    options: {
      from: { type: "string", description: "send this folder instead" },
      "yes-i-am-sure": { type: "boolean", description: "do not ask (needed without a terminal)" },
    },
    run: push,
  },
];
