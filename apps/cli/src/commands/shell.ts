// `slipway shell`: a command in a running container.
import { UsageError } from "../config.js";
import { runShell } from "../shell.js";
import type { Command } from "./command.js";

export const shellCommands: Command[] = [
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
];
