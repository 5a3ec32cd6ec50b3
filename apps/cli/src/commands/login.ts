// `slipway login` and `logout`: the saved control plane and token.
import { Client } from "../client.js";
import { configPath, normalizeUrl, removeCredentials, saveCredentials, UsageError } from "../config.js";
import type { Command } from "./command.js";

export const loginCommands: Command[] = [
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
];
