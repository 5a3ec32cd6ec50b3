// Content: `slipway copy` between environments, `backups list|create|restore`.
import { UsageError } from "../config.js";
import { ago, table } from "../format.js";
import { TERMINAL, contentParts, detached, enc, envPath, print, until, type Command, type Ctx } from "./command.js";

/** Waits for a content copy or restore to end, printing each new phase; exit 0 when it succeeded. */
async function followCopy(ctx: Ctx, id: string): Promise<number> {
  let last = "";
  const c = await until(ctx.io, async () => {
    const x = await ctx.client().call("GET", `/content-copies/${enc(id)}`);
    const line = `${x.state}${x.progress?.phase ? ` (${x.progress.phase})` : ""}: ${x.progress?.bytes ?? 0} bytes, ${x.progress?.objects ?? 0} objects`;
    if (!ctx.json && line !== last) ctx.io.out(`${line}\n`);
    last = line;
    return TERMINAL.has(x.state) ? x : undefined;
  }).catch((err: unknown) => {
    if (ctx.io.signal?.aborted) return undefined;
    throw err;
  });
  if (!c) {
    ctx.io.err(`slipway: stopped waiting; ${id} goes on\n`);
    return 130;
  }
  if (ctx.json) ctx.io.out(`${JSON.stringify(c, null, 2)}\n`);
  else if (c.state !== "succeeded") ctx.io.err(`slipway: ${c.kind ?? "copy"} ${c.id} ${c.state}${c.error?.message ? `: ${c.error.message}` : ""}\n`);
  return c.state === "succeeded" ? 0 : 1;
}

export const dataCommands: Command[] = [
  {
    name: "copy",
    args: ["app", "target-env"],
    summary: "Replace an environment's database and/or media with another's (a backup of the target is taken first)",
    options: {
      from: { type: "string", description: "the source environment (required)" },
      database: { type: "boolean", description: "copy the database (default: both)" },
      media: { type: "boolean", description: "copy the media (default: both)" },
      yes: { type: "boolean", short: "y", description: "confirm that the target's content is replaced" },
      detach: { type: "boolean", short: "d", description: "print the copy's id and return at once" },
    },
    async run(ctx) {
      const [app, target] = ctx.args as [string, string];
      const from = ctx.opts.from;
      if (typeof from !== "string") throw new UsageError("copy needs --from <source env>");
      if (!ctx.opts.yes) throw new UsageError(`this replaces the content of ${app}/${target} with ${from}'s: add --yes`);
      const c = await ctx.client().call("POST", `${envPath(app, target)}/content-copies`, { from, ...contentParts(ctx.opts), confirm: true });
      if (ctx.opts.detach) return detached(ctx, c);
      if (!ctx.json) ctx.io.err(`content copy ${c.id}: ${app}/${from} → ${app}/${target}\n`);
      return followCopy(ctx, c.id);
    },
  },
  {
    name: "backups list",
    args: ["app", "env"],
    summary: "An environment's backups, newest first",
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const list = await ctx.client().call<any[]>("GET", `${envPath(app, env)}/backups`);
      print(ctx, list, () =>
        table([["ID", "KIND", "STATE", "PARTS", "SIZE", "CREATED"], ...list.map((b) => [b.id, b.kind, b.state, [b.database ? "database" : "", b.media ? "media" : ""].filter(Boolean).join("+"), b.sizeBytes === null ? "-" : `${b.sizeBytes} B`, ago(b.createdAt)])]),
      );
      return 0;
    },
  },
  {
    name: "backups create",
    args: ["app", "env"],
    summary: "Back up an environment now and wait until the backup is stored",
    options: {
      database: { type: "boolean", description: "the database (default: both)" },
      media: { type: "boolean", description: "the media (default: both)" },
      detach: { type: "boolean", short: "d", description: "print the backup's id and return at once" },
    },
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const b = await ctx.client().call("POST", `${envPath(app, env)}/backups`, contentParts(ctx.opts));
      if (ctx.opts.detach) return detached(ctx, b);
      const done = await until(ctx.io, async () => {
        const x = (await ctx.client().call<any[]>("GET", `${envPath(app, env)}/backups`)).find((y) => y.id === b.id);
        return x && TERMINAL.has(x.state) ? x : undefined;
      });
      print(ctx, done, () => `backup ${done.id} of ${app}/${env} ${done.state}${done.sizeBytes !== null ? ` (${done.sizeBytes} bytes)` : ""}\n`);
      return done.state === "succeeded" ? 0 : 1;
    },
  },
  {
    name: "backups restore",
    args: ["backup-id"],
    summary: "Restore a backup into its environment (or --into another of the same app) and wait until done",
    options: {
      into: { type: "string", description: "restore into this environment instead" },
      yes: { type: "boolean", short: "y", description: "confirm that the target's content is replaced" },
      detach: { type: "boolean", short: "d", description: "print the restore's id and return at once" },
    },
    async run(ctx) {
      const id = ctx.args[0]!;
      if (!ctx.opts.yes) throw new UsageError("a restore replaces the target's content: add --yes");
      const r = await ctx.client().call("POST", `/backups/${enc(id)}/restore`, { ...(typeof ctx.opts.into === "string" ? { into: ctx.opts.into } : {}), confirm: true });
      if (ctx.opts.detach) return detached(ctx, r);
      return followCopy(ctx, r.id);
    },
  },
];
