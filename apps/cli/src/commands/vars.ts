// `slipway vars list|set|unset`: an environment's variables.
import { VARIABLE_KEY_PATTERN } from "@slipway/core";
import { UsageError } from "../config.js";
import { envPath, print, type Command } from "./command.js";

export const varsCommands: Command[] = [
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
];
