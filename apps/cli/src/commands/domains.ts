// `slipway domains list|add|remove`: an environment's custom domains.
import { enc, envPath, print, type Command } from "./command.js";

export const domainsCommands: Command[] = [
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
];
