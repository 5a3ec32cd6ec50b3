// Deployments: `slipway deploy`, `deployments`, `log`, `cancel` (promote and rollback: git.ts).
import { UsageError } from "../config.js";
import { ago, duration, table } from "../format.js";
import { TERMINAL, contentParts, detached, enc, envPath, print, until, type Command, type Ctx } from "./command.js";

/** Follows a deployment's log to the end; exit 0 when it succeeded (deploy, log -f, promote, rollback). */
export async function followDeployment(ctx: Ctx, id: string): Promise<number> {
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

/** One deployment of `GET …/deployments` (the fields the table shows). */
export interface DeploymentItem {
  id: string;
  state: string;
  kind?: string;
  commit: string | null;
  finishedAt: string | null;
  requestedBy?: string;
  /** Its image is still kept and it is not what runs now: `slipway rollback` can go back to it. */
  rollbackable?: boolean;
}

/** The `slipway deployments` table: ids shortened (rollback takes a prefix), ✓ where a rollback can go. */
export function deploymentsTable(list: DeploymentItem[], now = Date.now()): string {
  return table([
    ["ID", "KIND", "STATE", "COMMIT", "FINISHED", "BY", "ROLLBACK"],
    ...list.map((d) => [d.id.slice(0, 8), d.kind ?? "deploy", d.state, (d.commit ?? "-").slice(0, 12), ago(d.finishedAt, now), d.requestedBy ?? "-", d.rollbackable ? "✓" : ""]),
  ]);
}

export const deployCommands: Command[] = [
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
    summary: "An environment's deployments, newest first: kind, state, commit, who, and which can be rolled back to (✓)",
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const list = await ctx.client().call<DeploymentItem[]>("GET", `${envPath(app, env)}/deployments`);
      print(ctx, list, () => deploymentsTable(list));
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
];
