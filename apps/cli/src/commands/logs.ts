// `slipway logs`: the runtime log of an environment's containers.
import { UsageError } from "../config.js";
import { envPath, type Command } from "./command.js";

/** `--since`: an RFC 3339 time as given, or a duration back from now (`90s`, `10m`, `2h`, `1d`). */
export function sinceTime(raw: string, now = Date.now()): string {
  const m = /^(\d+)(s|m|h|d)$/.exec(raw);
  if (m) return new Date(now - Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"]).toISOString();
  if (Number.isNaN(Date.parse(raw))) throw new UsageError(`--since '${raw}' is neither a time (2026-11-22T10:00:00Z) nor a duration (10m, 2h)`);
  return raw;
}

export const logsCommands: Command[] = [
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
];
