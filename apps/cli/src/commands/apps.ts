// `slipway apps`: the applications.
import { table } from "../format.js";
import { print, type Command } from "./command.js";

export const appsCommands: Command[] = [
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
];
