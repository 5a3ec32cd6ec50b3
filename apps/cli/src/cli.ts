// The `slipway` command line: finds the command in argv, parses and checks its options and
// arguments, runs it (commands/, one file per group) and turns errors into messages and exit statuses.
import { parseArgs } from "node:util";
import { ApiError, Client, UnreachableError } from "./client.js";
import { CommandError, resolveCredentials, UsageError } from "./config.js";
import { table } from "./format.js";
import type { Io } from "./io.js";
import { GLOBAL_OPTIONS, type Command, type Ctx, type Values } from "./commands/command.js";
import { COMMANDS } from "./commands/index.js";

export type { Io } from "./io.js";
export { sinceTime } from "./commands/logs.js";

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
    if (err instanceof CommandError) {
      io.err(`slipway: ${err.message}\n`);
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
  // `[name...]`: any number (after `--`); `[name]`: one at most.
  const required = command.args.filter((a) => !a.startsWith("[")).length;
  const allowed = command.args.length;
  if (got.length < required || (!variadic && got.length > allowed)) {
    const usage = `slipway ${command.name} ${argsText(command)}`.trim();
    throw new UsageError(got.length < required ? `missing ${command.args.slice(got.length, required).map((a) => `<${a}>`).join(" ")}: ${usage}` : `too many arguments: ${usage}`);
  }
}

function argsText(c: Command): string {
  return c.args.map((a) => (a.endsWith("...]") ? `[-- ${a.slice(1, -1).replace("...", " ...")}]` : a.startsWith("[") ? `[<${a.slice(1, -1)}>]` : `<${a}>`)).join(" ");
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
