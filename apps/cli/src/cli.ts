import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { VARIABLE_KEY_PATTERN, formatLabels } from "@slipway/core";
import { ApiError, Client, UnreachableError } from "./client.js";
import { configPath, normalizeUrl, removeCredentials, resolveCredentials, saveCredentials, UsageError } from "./config.js";
import { ago, duration, table } from "./format.js";
import { runShell, type ShellStreams } from "./shell.js";

/** Where a command reads and writes; `main.ts` binds it to the process, tests to buffers. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** The token when `slipway login` is given none (piped in); undefined when stdin is a terminal. */
  readStdin?: () => Promise<string | undefined>;
  /** Ctrl-C: stops following a log or waiting; the work on the platform goes on. */
  signal?: AbortSignal;
  /** Pause between two polls of a long operation (default 1 s). */
  pollMs?: number;
  /** The process's own streams, for `slipway shell` (bytes both ways, raw terminal). */
  shell?: ShellStreams;
}

type OptionSpec = { type: "string" | "boolean"; short?: string; description: string };
type Values = Record<string, string | boolean | undefined>;

interface Ctx {
  io: Io;
  args: string[];
  opts: Values;
  client: () => Client;
  json: boolean;
}

interface Command {
  /** One or two words: `deploy`, `vars set`. */
  name: string;
  /** Positional arguments; a last one ending in `...` takes one or more. */
  args: string[];
  summary: string;
  options?: Record<string, OptionSpec>;
  run(ctx: Ctx): Promise<number>;
}

const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  url: { type: "string", description: "control plane URL (else SLIPWAY_URL, else the saved login)" },
  token: { type: "string", description: "API token (else SLIPWAY_TOKEN, else the saved login)" },
  json: { type: "boolean", description: "print JSON instead of text" },
  help: { type: "boolean", short: "h", description: "show help" },
};

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const enc = encodeURIComponent;
const envPath = (app: string, env: string) => `/apps/${enc(app)}/environments/${enc(env)}`;

/** Exit status of a command-line run: 0 done, 1 refused or failed, 2 wrong usage, 130 interrupted. */
export async function run(argv: string[], io: Io): Promise<number> {
  try {
    const { command, rest, words } = findCommand(argv);
    if (!command) {
      const first = words[0];
      if (!first || first === "help") {
        io.out(help(wordPositions(argv).slice(1, 3).map((i) => argv[i]).join(" ")));
        return 0;
      }
      const group = COMMANDS.filter((c) => c.name.startsWith(`${first} `)).map((c) => c.name.split(" ")[1]);
      if (group.length > 0) throw new UsageError(`${first} needs one of: ${group.join(", ")} (e.g. \`slipway ${first} ${group[0]} --help\`)`);
      throw new UsageError(`unknown command '${first}' (\`slipway help\` lists them)`);
    }
    const spec = { ...GLOBAL_OPTIONS, ...command.options };
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        allowPositionals: true,
        strict: true,
        options: Object.fromEntries(Object.entries(spec).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}) }])),
      });
    } catch (err) {
      throw new UsageError(`${(err as Error).message.replace(/\. To specify a positional argument.*$/s, "")} (see \`slipway ${command.name} --help\`)`);
    }
    const opts = parsed.values as Values;
    if (opts.help) {
      io.out(commandHelp(command));
      return 0;
    }
    checkPositionals(command, parsed.positionals);
    let client: Client | undefined;
    const ctx: Ctx = {
      io,
      args: parsed.positionals,
      opts,
      json: opts.json === true,
      client: () => {
        if (!client) {
          const creds = resolveCredentials(io.env, { ...(typeof opts.url === "string" ? { url: opts.url } : {}), ...(typeof opts.token === "string" ? { token: opts.token } : {}) });
          client = new Client(creds.url, creds.token);
        }
        return client;
      },
    };
    return await command.run(ctx);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`slipway: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ApiError) {
      io.err(`slipway: ${err.message} (${err.status} ${err.code})\n`);
      if (err.details && typeof err.details === "object" && Object.keys(err.details).length > 0) io.err(`  ${JSON.stringify(err.details)}\n`);
      return 1;
    }
    if (err instanceof UnreachableError) {
      io.err(`slipway: ${err.message}\n`);
      return 1;
    }
    if ((err as Error).name === "AbortError" || io.signal?.aborted) return 130;
    throw err;
  }
}

/** Options that take a value, of any command: their values are not command words. */
function takesValue(arg: string): boolean {
  if (!arg.startsWith("-") || arg.includes("=")) return false;
  const name = arg.replace(/^-+/, "");
  const all = [GLOBAL_OPTIONS, ...COMMANDS.map((c) => c.options ?? {})];
  return all.some((o) => Object.entries(o).some(([k, spec]) => spec.type === "string" && (k === name || spec.short === name)));
}

/** The positions of the words that are not options or option values. */
function wordPositions(argv: string[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") break;
    if (argv[i]!.startsWith("-")) {
      if (takesValue(argv[i]!)) i++;
      continue;
    }
    out.push(i);
  }
  return out;
}

function findCommand(argv: string[]): { command?: Command; rest: string[]; words: string[] } {
  const positions = wordPositions(argv).slice(0, 2);
  const words = positions.map((i) => argv[i]!);
  for (const n of [2, 1]) {
    if (words.length < n) continue;
    const command = COMMANDS.find((c) => c.name === words.slice(0, n).join(" "));
    if (!command) continue;
    // The command words go, wherever options put them.
    const rest = argv.filter((_, i) => !positions.slice(0, n).includes(i));
    return { command, rest, words };
  }
  return { rest: argv, words };
}

function checkPositionals(command: Command, got: string[]): void {
  const variadic = command.args.at(-1)?.replace(/\]$/, "").endsWith("...") ?? false;
  // `[name...]`: optional.
  const required = command.args.filter((a) => !a.startsWith("[")).length;
  if (got.length < required || (!variadic && got.length > required)) {
    const usage = `slipway ${command.name} ${argsText(command)}`.trim();
    throw new UsageError(got.length < required ? `missing ${command.args.slice(got.length, required).map((a) => `<${a}>`).join(" ")}: ${usage}` : `too many arguments: ${usage}`);
  }
}

function argsText(c: Command): string {
  return c.args.map((a) => (a.startsWith("[") ? `[-- ${a.slice(1, -1).replace("...", " ...")}]` : `<${a}>`)).join(" ");
}

function commandHelp(c: Command): string {
  const opts = Object.entries({ ...c.options, ...GLOBAL_OPTIONS }).map(([k, o]) => [`  ${o.short ? `-${o.short}, ` : ""}--${k}${o.type === "string" ? " <value>" : ""}`, o.description]);
  return `slipway ${c.name} ${argsText(c)}\n\n${c.summary}\n\nOptions:\n${table(opts, { header: false })}`;
}

function help(topic: string): string {
  const c = COMMANDS.find((x) => x.name === topic);
  if (c) return commandHelp(c);
  const rows = COMMANDS.map((x) => [`  ${x.name} ${argsText(x)}`, x.summary]);
  return `slipway: manage applications on a Slipway control plane\n\nCommands:\n${table(rows, { header: false })}\nRun \`slipway <command> --help\` for its options. Exit status: 0 done, 1 refused or failed, 2 wrong usage.\n`;
}

function print(ctx: Ctx, data: unknown, text: () => string): void {
  ctx.io.out(ctx.json ? `${JSON.stringify(data, null, 2)}\n` : text());
}

/** Polls `get` until it returns a value, or Ctrl-C. */
async function until<T>(io: Io, get: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    await sleep(io.pollMs ?? 1000, undefined, io.signal ? { signal: io.signal } : undefined);
  }
}

/** `--since`: an RFC 3339 time as given, or a duration back from now (`90s`, `10m`, `2h`, `1d`). */
export function sinceTime(raw: string, now = Date.now()): string {
  const m = /^(\d+)(s|m|h|d)$/.exec(raw);
  if (m) return new Date(now - Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"]).toISOString();
  if (Number.isNaN(Date.parse(raw))) throw new UsageError(`--since '${raw}' is neither a time (2026-11-22T10:00:00Z) nor a duration (10m, 2h)`);
  return raw;
}

/** `--detach`: print the id of what was started (or all of it with --json) and return at once. */
function detached(ctx: Ctx, started: { id: string }): number {
  print(ctx, started, () => `${started.id}\n`);
  return 0;
}

function contentParts(opts: Values): { database: boolean; media: boolean } {
  // Neither flag: both, as the API's default content copy does.
  const database = opts.database === true;
  const media = opts.media === true;
  return database || media ? { database, media } : { database: true, media: true };
}

/** Follows a deployment's log to the end; exit 0 when it succeeded. */
async function followDeployment(ctx: Ctx, id: string): Promise<number> {
  const client = ctx.client();
  if (!ctx.json) {
    await client.stream(`/deployments/${enc(id)}/log?follow=true`, (t) => ctx.io.out(t), ctx.io.signal).catch((err: unknown) => {
      if (ctx.io.signal?.aborted) return;
      // The log stream broke (a restarting control plane): the state poll below still tells the outcome.
      ctx.io.err(`slipway: the log stream ended early (${(err as Error).message}); waiting for the deployment to end\n`);
    });
  }
  if (ctx.io.signal?.aborted) {
    ctx.io.err(`\nslipway: stopped following; deployment ${id} goes on (\`slipway cancel ${id}\` cancels it)\n`);
    return 130;
  }
  const d = await until(ctx.io, async () => {
    const x = await client.call("GET", `/deployments/${enc(id)}`);
    return TERMINAL.has(x.state) ? x : undefined;
  });
  if (ctx.json) ctx.io.out(`${JSON.stringify(d, null, 2)}\n`);
  else {
    const took = d.finishedAt ? ` in ${duration(Date.parse(d.finishedAt) - Date.parse(d.queuedAt))}` : "";
    const why = d.error?.message ? `: ${d.error.message}` : "";
    ctx.io.out(`\ndeployment ${d.id} of ${d.app}/${d.environment} ${d.state}${took}${d.state === "succeeded" ? "" : why}\n`);
  }
  return d.state === "succeeded" ? 0 : 1;
}

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

const COMMANDS: Command[] = [
  {
    name: "login",
    args: [],
    summary: "Check a token against a control plane and save both for later commands (the token may come on stdin)",
    async run(ctx) {
      if (typeof ctx.opts.url !== "string") throw new UsageError("login needs --url <control plane>, e.g. --url http://127.0.0.1:7700");
      const url = normalizeUrl(ctx.opts.url);
      const token = typeof ctx.opts.token === "string" ? ctx.opts.token : (await ctx.io.readStdin?.())?.trim();
      if (!token) throw new UsageError("login needs --token <token>, or the token on stdin");
      const apps = await new Client(url, token).call<unknown[]>("GET", "/apps");
      const file = configPath(ctx.io.env);
      saveCredentials(file, { url, token });
      ctx.io.out(`logged in to ${url} (${apps.length} app${apps.length === 1 ? "" : "s"} visible); saved in ${file}\n`);
      return 0;
    },
  },
  {
    name: "logout",
    args: [],
    summary: "Forget the saved control plane and token",
    async run(ctx) {
      const file = configPath(ctx.io.env);
      ctx.io.out(removeCredentials(file) ? `removed ${file}\n` : "not logged in\n");
      return 0;
    },
  },
  {
    name: "apps",
    args: [],
    summary: "List the applications you can see",
    async run(ctx) {
      const apps = await ctx.client().call<Array<{ name: string; repository: string; environments: Array<{ name: string }> }>>("GET", "/apps");
      print(ctx, apps, () => table([["APP", "REPOSITORY", "ENVIRONMENTS"], ...apps.map((a) => [a.name, a.repository, a.environments.map((e) => e.name).join(", ")])]));
      return 0;
    },
  },
  {
    name: "envs",
    args: ["app"],
    summary: "List an application's environments with state, status and URL",
    async run(ctx) {
      const envs = await ctx.client().call<any[]>("GET", `/apps/${enc(ctx.args[0]!)}/environments`);
      print(ctx, envs, () => table([["ENV", "BRANCH", "STATE", "STATUS", "URL"], ...envs.map((e) => [e.name, e.branch, e.state, e.status.message, e.url])]));
      return 0;
    },
  },
  {
    name: "status",
    args: ["app", "env"],
    summary: "An environment's state and status line, URL, domains, host and what it runs",
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const e = await ctx.client().call("GET", envPath(app, env));
      print(ctx, e, () =>
        table(
          [
            ["environment", `${app}/${e.name} (branch ${e.branch})`],
            ["state", e.state],
            ["status", e.status.message],
            ["url", e.url],
            ["domains", e.domains.join(", ")],
            ["host", e.host ?? "not placed yet"],
            ["commit", e.deployedCommit ?? "-"],
            ["image", e.image ?? "-"],
            ...(e.status.lastDeployment ? [["last deployment", `${e.status.lastDeployment.state} ${ago(e.status.lastDeployment.finishedAt)}`]] : []),
            ...(Object.keys(e.hostLabels ?? {}).length ? [["host labels", formatLabels(e.hostLabels)]] : []),
          ],
          { header: false },
        ),
      );
      return 0;
    },
  },
  {
    name: "deploy",
    args: ["app", "env"],
    summary: "Deploy an environment and follow its log until it ends; exit 0 only when it succeeded",
    options: {
      build: { type: "string", description: "auto (default), force or reuse" },
      queue: { type: "boolean", description: "run after a deployment that is still running instead of refusing" },
      "content-from": { type: "string", description: "also deploy the content (database and/or media) of this environment" },
      database: { type: "boolean", description: "with --content-from: the database (default both)" },
      media: { type: "boolean", description: "with --content-from: the media (default both)" },
      yes: { type: "boolean", short: "y", description: "with --content-from: confirm that the target's content is replaced" },
      detach: { type: "boolean", short: "d", description: "print the deployment id and return at once" },
    },
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const build = ctx.opts.build;
      if (build !== undefined && !["auto", "force", "reuse"].includes(build as string)) throw new UsageError(`--build must be auto, force or reuse, not '${build}'`);
      const from = ctx.opts["content-from"] as string | undefined;
      if ((ctx.opts.database || ctx.opts.media) && !from) throw new UsageError("--database and --media go with --content-from <env>");
      if (from && !ctx.opts.yes) throw new UsageError(`deploying the content of ${from} replaces the database and/or media of ${app}/${env}: add --yes`);
      const body = {
        ...(build ? { build } : {}),
        ...(ctx.opts.queue ? { queue: true } : {}),
        ...(from ? { content: { from, ...contentParts(ctx.opts), confirm: true } } : {}),
      };
      const d = await ctx.client().call("POST", `${envPath(app, env)}/deployments`, body);
      if (ctx.opts.detach) return detached(ctx, d);
      if (!ctx.json) ctx.io.err(`deployment ${d.id} of ${app}/${env} ${d.state}\n`);
      return followDeployment(ctx, d.id);
    },
  },
  {
    name: "deployments",
    args: ["app", "env"],
    summary: "An environment's deployments, newest first",
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const list = await ctx.client().call<any[]>("GET", `${envPath(app, env)}/deployments`);
      print(ctx, list, () =>
        table([["ID", "STATE", "BUILD", "COMMIT", "QUEUED", "TOOK"], ...list.map((d) => [d.id, d.state, d.build, (d.commit ?? "-").slice(0, 12), ago(d.queuedAt), d.finishedAt ? duration(Date.parse(d.finishedAt) - Date.parse(d.queuedAt)) : "-"])]),
      );
      return 0;
    },
  },
  {
    name: "log",
    args: ["deployment"],
    summary: "A deployment's log",
    options: { follow: { type: "boolean", short: "f", description: "keep printing until the deployment ends; exit 0 only when it succeeded" } },
    async run(ctx) {
      const id = ctx.args[0]!;
      if (ctx.opts.follow) return followDeployment(ctx, id);
      ctx.io.out(await ctx.client().call<string>("GET", `/deployments/${enc(id)}/log`));
      return 0;
    },
  },
  {
    name: "cancel",
    args: ["deployment"],
    summary: "Cancel a deployment before it switches traffic",
    async run(ctx) {
      const d = await ctx.client().call("POST", `/deployments/${enc(ctx.args[0]!)}/cancel`);
      print(ctx, d, () => `cancellation of ${d.id} requested (state ${d.state})\n`);
      return 0;
    },
  },
  {
    name: "vars list",
    args: ["app", "env"],
    summary: "An environment's variables (secret values masked unless --reveal)",
    options: { reveal: { type: "boolean", description: "show secret values (admins)" } },
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const vars = await ctx.client().call<Record<string, string>>("GET", `${envPath(app, env)}/variables${ctx.opts.reveal ? "?reveal=true" : ""}`);
      print(ctx, vars, () => Object.keys(vars).sort().map((k) => `${k}=${vars[k]}\n`).join(""));
      return 0;
    },
  },
  {
    name: "vars set",
    args: ["app", "env", "KEY=VALUE..."],
    summary: "Set variables (merged with the others); they apply at the next deployment",
    async run(ctx) {
      const [app, env, ...pairs] = ctx.args as [string, string, ...string[]];
      const patch: Record<string, string> = {};
      const keyRe = new RegExp(VARIABLE_KEY_PATTERN);
      for (const p of pairs) {
        const eq = p.indexOf("=");
        if (eq <= 0) throw new UsageError(`'${p}' is not KEY=VALUE`);
        const key = p.slice(0, eq);
        if (!keyRe.test(key)) throw new UsageError(`'${key}' is not a variable name (letters, digits and _, not starting with a digit)`);
        patch[key] = p.slice(eq + 1);
      }
      await ctx.client().call("PATCH", `${envPath(app, env)}/variables`, patch);
      ctx.io.out(`set ${Object.keys(patch).join(", ")} on ${app}/${env}; deploy to apply\n`);
      return 0;
    },
  },
  {
    name: "vars unset",
    args: ["app", "env", "KEY..."],
    summary: "Remove variables; applies at the next deployment",
    async run(ctx) {
      const [app, env, ...keys] = ctx.args as [string, string, ...string[]];
      await ctx.client().call("PATCH", `${envPath(app, env)}/variables`, Object.fromEntries(keys.map((k) => [k, null])));
      ctx.io.out(`removed ${keys.join(", ")} from ${app}/${env}; deploy to apply\n`);
      return 0;
    },
  },
  {
    name: "domains list",
    args: ["app", "env"],
    summary: "The host names an environment answers to",
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const e = await ctx.client().call("GET", envPath(app, env));
      print(ctx, e.domains, () => e.domains.map((d: string) => `${d}\n`).join(""));
      return 0;
    },
  },
  {
    name: "domains add",
    args: ["app", "env", "hostname"],
    summary: "Route a custom domain to an environment",
    async run(ctx) {
      const [app, env, hostname] = ctx.args as [string, string, string];
      await ctx.client().call("POST", `${envPath(app, env)}/domains`, { hostname });
      ctx.io.out(`${hostname} now routes to ${app}/${env}\n`);
      return 0;
    },
  },
  {
    name: "domains remove",
    args: ["app", "env", "hostname"],
    summary: "Stop routing a custom domain",
    async run(ctx) {
      const [app, env, hostname] = ctx.args as [string, string, string];
      await ctx.client().call("DELETE", `${envPath(app, env)}/domains/${enc(hostname)}`);
      ctx.io.out(`${hostname} removed from ${app}/${env}\n`);
      return 0;
    },
  },
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
  {
    name: "shell",
    args: ["app", "env", "[command...]"],
    summary: "A shell (or, after --, a command) in a running container of the environment; exits with the command's status",
    options: {
      tty: { type: "boolean", short: "t", description: "use a terminal even when stdin is not one" },
      "no-tty": { type: "boolean", short: "T", description: "no terminal: plain input and output, separate stderr (for scripts)" },
    },
    async run(ctx) {
      const [app, env, ...command] = ctx.args as [string, string, ...string[]];
      const streams = ctx.io.shell;
      if (!streams) throw new UsageError("shell needs a terminal or pipes to talk to");
      if (ctx.opts.tty && ctx.opts["no-tty"]) throw new UsageError("--tty and --no-tty exclude each other");
      const tty = ctx.opts.tty === true || (ctx.opts["no-tty"] !== true && streams.stdin.isTTY === true && streams.stdout.isTTY === true);
      const client = ctx.client();
      return runShell({ url: client.baseUrl, token: client.token, app, env, command, tty, streams });
    },
  },
  {
    name: "logs",
    args: ["app", "env"],
    summary: "The runtime log of an environment's containers, from whichever host runs them",
    options: {
      follow: { type: "boolean", short: "f", description: "keep printing new lines (Ctrl-C stops)" },
      since: { type: "string", description: "only lines since then: a time (RFC 3339) or a duration like 10m" },
      tail: { type: "string", description: "at most this many earlier lines (default 1000)" },
    },
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const q = new URLSearchParams();
      if (ctx.opts.follow) q.set("follow", "true");
      if (typeof ctx.opts.since === "string") q.set("since", sinceTime(ctx.opts.since));
      if (typeof ctx.opts.tail === "string") {
        if (!/^\d+$/.test(ctx.opts.tail)) throw new UsageError(`--tail must be a number, not '${ctx.opts.tail}'`);
        q.set("tail", ctx.opts.tail);
      }
      await ctx.client().stream(`${envPath(app, env)}/logs${q.size ? `?${q}` : ""}`, (t) => ctx.io.out(t), ctx.io.signal);
      return ctx.io.signal?.aborted ? 130 : 0;
    },
  },
  {
    name: "hosts",
    args: [],
    summary: "The fleet: hosts with state, labels, load and environments (admins)",
    async run(ctx) {
      const hosts = await ctx.client().call<any[]>("GET", "/hosts");
      print(ctx, hosts, () =>
        table([
          ["ID", "NAME", "STATE", "LABELS", "CPU", "ENVIRONMENTS", "LAST HEARTBEAT"],
          ...hosts.map((h) => [h.id, h.name, h.state, formatLabels(h.labels ?? {}) || "-", `${Math.round((h.load?.cpu ?? 0) * 100)} %`, String(h.environments.length), h.lastHeartbeatAt ? ago(h.lastHeartbeatAt) : "never"]),
        ]),
      );
      return 0;
    },
  },
];
