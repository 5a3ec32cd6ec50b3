// `slipway envs` and `status`: environments.
import { formatLabels } from "@slipway/core";
import { ago, table } from "../format.js";
import { enc, envPath, print, type Command } from "./command.js";

export const envsCommands: Command[] = [
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
];
