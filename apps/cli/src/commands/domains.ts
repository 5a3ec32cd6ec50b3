// `slipway domains <app> <env>` (each custom domain with its certificate) and
// `slipway domains list|add|remove`: an environment's custom domains.
import { duration, table } from "../format.js";
import { enc, envPath, print, type Command } from "./command.js";

/** A domain's certificate as GET …/domains shows it (issue 15). */
export interface DomainCertificateView {
  state: "none" | "pending" | "valid" | "failed";
  serial: string | null;
  notAfter: string | null;
  lastError: string | null;
  nextAttemptAt: string | null;
}

const isoSeconds = (iso: string): string => new Date(iso).toISOString().replace(/\.\d+Z$/, "Z");

/** When the next attempt is, in words: "next attempt in 4 m 10 s", "next attempt due now". */
function nextAttempt(iso: string | null, now: number): string {
  if (!iso) return "";
  const ms = Date.parse(iso) - now;
  return ms > 0 ? `next attempt in ${duration(ms).replace(/\.\d s$/, " s")}` : "next attempt due now";
}

/**
 * The certificate column of `slipway domains`: none; pending; valid until …; failed: reason
 * (next attempt …); a valid certificate whose renewal failed says both.
 */
export function certificateText(c: DomainCertificateView, now = Date.now()): string {
  switch (c.state) {
    case "none":
      return "none (not requested yet)";
    case "pending":
      return "pending";
    case "valid": {
      const until = c.notAfter ? `valid until ${isoSeconds(c.notAfter)}` : "valid";
      return c.lastError ? `${until}; renewal failed: ${c.lastError} (${nextAttempt(c.nextAttemptAt, now)})` : until;
    }
    case "failed":
      return `failed: ${c.lastError ?? "unknown reason"}${c.nextAttemptAt ? ` (${nextAttempt(c.nextAttemptAt, now)})` : ""}`;
  }
}

/** A host serving a domain, as its agent reported it (GET …/domains `servedBy`). */
export interface ServedByView {
  host: string;
  serial: string;
  current: boolean;
}

/** The SERVED BY column: each host serving the environment and whether it serves the current certificate ("a ✓, b old serial 1F"); "-" when none reported. */
export function servedByText(servedBy: ServedByView[] | undefined): string {
  if (!servedBy || servedBy.length === 0) return "-";
  return servedBy.map((s) => (s.current ? `${s.host} ✓` : `${s.host} old serial ${s.serial}`)).join(", ");
}

export const domainsCommands: Command[] = [
  {
    name: "domains",
    args: ["app", "env"],
    summary: "Each custom domain of an environment with its certificate (none, pending, valid until, failed: why and next attempt) and the hosts serving it",
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const { domains } = await ctx.client().call<{ domains: Array<{ hostname: string; certificate: DomainCertificateView; servedBy?: ServedByView[] }> }>("GET", `${envPath(app, env)}/domains`);
      print(ctx, domains, () => table([["DOMAIN", "CERTIFICATE", "SERVED BY"], ...domains.map((d) => [d.hostname, certificateText(d.certificate), servedByText(d.servedBy)])]));
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
];
