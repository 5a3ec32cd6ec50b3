// From the repository to the environments: `slipway keys` (the deploy key), `hooks` (push
// webhook and polling), `pending` (what the next deployment brings), `promote`, `rollback`.
import { UsageError } from "../config.js";
import { ago, table } from "../format.js";
import { detached, enc, envPath, print, type Command, type Ctx } from "./command.js";
import { followDeployment, type DeploymentItem } from "./deploy.js";

/** `GET /v1/apps/{app}/deploy-key`. */
export interface DeployKeyView {
  publicKey: string;
  fingerprint: string;
  repository: string;
  /** The repository is an ssh URL: clones use this key. */
  used: boolean;
}

/** `GET /v1/apps/{app}/hooks`. */
export interface HookView {
  url: string;
  secret: string;
  providers: string[];
  pollIntervalSeconds: number;
  pollIntervalDefault: boolean;
  sync: { syncedAt: string | null; error: string | null };
  autoDeploy: Record<string, boolean>;
}

export interface PendingCommit {
  sha: string;
  author: string;
  at: string;
  message: string;
}

/** `GET /v1/apps/{app}/environments/{env}/pending`. */
export interface PendingView {
  app: string;
  environment: string;
  branch: string;
  deployedCommit: string | null;
  status: { message: string; syncedAt: string | null; syncError: string | null };
  /** Newest first; null when the control plane's mirror cannot tell. */
  commits: PendingCommit[] | null;
  changes: {
    branch?: { from: string; to: string };
    variables?: { added: string[]; changed: string[]; removed: string[] };
    settings?: string[];
    domains?: { added: string[]; removed: string[] };
    replicas?: { from: number; to: number };
    limits?: { from: Record<string, number>; to: Record<string, number> };
  };
}

/** The line `slipway keys` prints on stderr beside the key (stdout is the key alone, for a pipe). */
export function deployKeyHint(k: DeployKeyView, rotated: boolean): string {
  const lines = [`add it to ${k.repository} as a read-only deploy key${rotated ? ", and remove the old one" : ""} (${k.fingerprint})`];
  if (!k.used) lines.push(`note: ${k.repository} is not an ssh URL, so this key is not used (clones go over https)`);
  return lines.map((l) => `${l}\n`).join("");
}

/** `--poll`: seconds between background fetches (0 = never, webhooks only) or `default` (the platform's); the PATCH body. */
export function pollBody(raw: string): { pollIntervalSeconds: number | null } {
  if (raw === "default") return { pollIntervalSeconds: null };
  if (!/^\d+$/.test(raw) || Number(raw) > 86_400) throw new UsageError(`--poll must be seconds from 0 (never: webhooks only) to 86400, or 'default', not '${raw}'`);
  return { pollIntervalSeconds: Number(raw) };
}

function pollText(h: Pick<HookView, "pollIntervalSeconds" | "pollIntervalDefault">): string {
  const every = h.pollIntervalSeconds === 0 ? "never (webhooks only)" : `every ${h.pollIntervalSeconds} s`;
  return `${every}${h.pollIntervalDefault ? " (the platform's default)" : " (set for this app)"}`;
}

function syncText(s: { syncedAt: string | null; error: string | null }, now: number): string {
  const last = s.syncedAt ? ago(s.syncedAt, now) : "never";
  return s.error ? `failed: ${s.error} (last success: ${last})` : last;
}

/** What `slipway hooks` prints: everything a git host's webhook form asks for, and how the app follows its repository. */
export function formatHooks(h: HookView, now = Date.now()): string {
  const envs = Object.keys(h.autoDeploy).sort();
  const on = envs.filter((e) => h.autoDeploy[e]);
  const off = envs.filter((e) => !h.autoDeploy[e]);
  const push = on.length === 0 ? "none (a push only refreshes the mirror)" : `${on.join(", ")}${off.length ? ` (not ${off.join(", ")})` : ""}`;
  return table(
    [
      ["url", h.url],
      ["secret", `${h.secret} (GitLab: the secret token)`],
      ["content type", "application/json"],
      ["providers", h.providers.join(", ")],
      ["poll", pollText(h)],
      ["last sync", syncText(h.sync, now)],
      ["deploy on push", push],
    ],
    { header: false },
  );
}

/** The unapplied changes by name (a variable's value is never shown). */
export function changeLines(c: PendingView["changes"]): string[] {
  const parts = (named: Array<[string, string[] | undefined]>) =>
    named
      .filter(([, v]) => v && v.length > 0)
      .map(([k, v]) => `${k} ${v!.join(", ")}`)
      .join("; ");
  const out: string[] = [];
  if (c.branch) out.push(`branch: ${c.branch.from} → ${c.branch.to}`);
  if (c.variables) out.push(`variables: ${parts([["added", c.variables.added], ["changed", c.variables.changed], ["removed", c.variables.removed]])}`);
  if (c.settings?.length) out.push(`settings: ${c.settings.join(", ")}`);
  if (c.domains) out.push(`domains: ${parts([["added", c.domains.added], ["removed", c.domains.removed]])}`);
  if (c.replicas) out.push(`replicas: ${c.replicas.from} → ${c.replicas.to}`);
  if (c.limits) {
    const { from, to } = c.limits;
    const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])].filter((k) => from[k] !== to[k]);
    out.push(`limits: ${keys.map((k) => `${k} ${from[k] ?? "-"} → ${to[k] ?? "-"}`).join(", ")}`);
  }
  return out;
}

/** What `slipway pending` prints: the status line, the undeployed commits as `git log --oneline` would, the unapplied changes. */
export function formatPending(p: PendingView, now = Date.now()): string {
  const deployed = p.deployedCommit ? `deployed ${p.deployedCommit.slice(0, 7)}` : "nothing deployed yet";
  let out = `${p.status.message}\n${p.app}/${p.environment}: branch ${p.branch}, ${deployed}\n\n`;
  if (p.commits === null) {
    const last = p.status.syncedAt ? ago(p.status.syncedAt, now) : "never";
    out += `undeployed commits: (the mirror could not tell: last sync ${last}${p.status.syncError ? `, ${p.status.syncError}` : ""})\n`;
  } else if (p.commits.length === 0) {
    out += `no undeployed commits on ${p.branch}\n`;
  } else {
    out += `${p.commits.length} undeployed commit${p.commits.length === 1 ? "" : "s"} on ${p.branch}:\n`;
    out += table(
      p.commits.map((c) => [c.sha.slice(0, 7), c.author, ago(c.at, now), c.message.split("\n", 1)[0]!]),
      { header: false },
    );
  }
  const changes = changeLines(p.changes);
  out += changes.length ? `\nunapplied changes:\n${changes.map((l) => `  ${l}\n`).join("")}` : "\nno unapplied changes\n";
  return out;
}

/**
 * Which deployment `slipway rollback` goes back to: `wanted` (a full id or a unique prefix of
 * one in the list; else as given, for the API to judge), or without it the newest that can be
 * rolled back to (the list is newest first). An error when there is none or a prefix is ambiguous.
 */
export function rollbackTarget(list: DeploymentItem[], label: string, wanted?: string): { id: string; picked?: DeploymentItem } | { error: string } {
  if (wanted !== undefined) {
    const exact = list.find((d) => d.id === wanted);
    if (exact) return { id: exact.id, picked: exact };
    const prefixed = list.filter((d) => d.id.startsWith(wanted));
    if (prefixed.length > 1) return { error: `'${wanted}' is the start of ${prefixed.length} deployments of ${label}: ${prefixed.map((d) => d.id).join(", ")}` };
    return prefixed[0] ? { id: prefixed[0].id, picked: prefixed[0] } : { id: wanted };
  }
  const picked = list.find((d) => d.rollbackable === true);
  if (!picked) return { error: `nothing to roll back to in ${label}: no earlier successful deployment whose image is still kept (\`slipway deployments\` lists them)` };
  return { id: picked.id, picked };
}

function deploymentText(d: DeploymentItem, now = Date.now()): string {
  return `${d.id} (${d.kind ?? "deploy"} of ${d.commit?.slice(0, 12) ?? "?"}, finished ${ago(d.finishedAt, now)}${d.requestedBy ? ` by ${d.requestedBy}` : ""})`;
}

/** Starts a deployment with `body` and follows it like `slipway deploy` (or returns at once with --detach). */
async function startDeployment(ctx: Ctx, app: string, env: string, body: object, what: string): Promise<number> {
  const d = await ctx.client().call("POST", `${envPath(app, env)}/deployments`, body);
  if (ctx.opts.detach) return detached(ctx, d);
  if (!ctx.json) ctx.io.err(`deployment ${d.id} of ${app}/${env} (${what}) ${d.state}\n`);
  return followDeployment(ctx, d.id);
}

export const gitCommands: Command[] = [
  {
    name: "repository",
    args: ["app", "url"],
    summary: "Point the app at another repository URL; with --token-stdin, its https access token (sealed, never shown again) (admins)",
    options: {
      "token-stdin": { type: "boolean", description: "read the access token from stdin (kept out of the shell's history)" },
      username: { type: "string", description: "the user name that goes with the token (default x-access-token; GitLab: oauth2)" },
      "remove-token": { type: "boolean", description: "forget the stored access token" },
    },
    async run(ctx) {
      const [app, url] = ctx.args as [string, string];
      if (ctx.opts["token-stdin"] && ctx.opts["remove-token"]) throw new UsageError("--token-stdin and --remove-token exclude each other");
      let token: string | null | undefined;
      if (ctx.opts["token-stdin"]) {
        token = (await ctx.io.readStdin?.())?.trim();
        if (!token) throw new UsageError("--token-stdin: no token on stdin (pipe it in: `slipway repository shop https://… --token-stdin < token.txt`)");
      } else if (ctx.opts["remove-token"]) token = null;
      if (typeof ctx.opts.username === "string" && typeof token !== "string") throw new UsageError("--username goes with --token-stdin");
      const body = { url, ...(token !== undefined ? { token } : {}), ...(typeof ctx.opts.username === "string" ? { username: ctx.opts.username } : {}) };
      const a = await ctx.client().call<{ name: string; repository: string; repositoryCredentials: boolean }>("PUT", `/apps/${enc(app)}/repository`, body);
      print(ctx, a, () => `${a.name}: ${a.repository}${a.repositoryCredentials ? " (with its access token, sealed)" : ""}\n`);
      return 0;
    },
  },
  {
    name: "keys",
    args: ["app"],
    summary: "The app's SSH deploy key (public line on stdout): add it to the repository, read-only",
    options: { rotate: { type: "boolean", description: "make a new key; the old one works until removed from the git host (admins)" } },
    async run(ctx) {
      const path = `/apps/${enc(ctx.args[0]!)}/deploy-key`;
      const k = ctx.opts.rotate ? await ctx.client().call<DeployKeyView>("POST", `${path}/rotate`) : await ctx.client().call<DeployKeyView>("GET", path);
      print(ctx, k, () => `${k.publicKey.trimEnd()}\n`);
      if (!ctx.json) ctx.io.err(deployKeyHint(k, ctx.opts.rotate === true));
      return 0;
    },
  },
  {
    name: "hooks",
    args: ["app"],
    summary: "The app's push webhook (URL, secret, content type), poll interval, last sync, which environments deploy on push",
    options: {
      rotate: { type: "boolean", description: "a new secret; the old one is refused from now on (admins)" },
      poll: { type: "string", description: "seconds between background fetches of the repository (0: never, webhooks only), or 'default'" },
    },
    async run(ctx) {
      const path = `/apps/${enc(ctx.args[0]!)}/hooks`;
      if (ctx.opts.rotate && ctx.opts.poll !== undefined) throw new UsageError("--rotate and --poll go one at a time");
      const h =
        typeof ctx.opts.poll === "string"
          ? await ctx.client().call<HookView>("PATCH", path, pollBody(ctx.opts.poll))
          : await ctx.client().call<HookView>(ctx.opts.rotate ? "POST" : "GET", ctx.opts.rotate ? `${path}/rotate` : path);
      print(ctx, h, () => formatHooks(h));
      if (ctx.opts.rotate && !ctx.json) ctx.io.err("the old secret no longer works: give the git host the new one\n");
      return 0;
    },
  },
  {
    name: "pending",
    args: ["app", "env"],
    summary: "What the next deployment would bring: undeployed commits and unapplied changes (by name, never values)",
    async run(ctx) {
      const [app, env] = ctx.args as [string, string];
      const p = await ctx.client().call<PendingView>("GET", `${envPath(app, env)}/pending`);
      print(ctx, p, () => formatPending(p));
      return 0;
    },
  },
  {
    name: "promote",
    args: ["app", "from-env", "to-env"],
    summary: "Deploy exactly the image another environment runs (no build; the target's own variables) and follow it",
    options: {
      content: { type: "boolean", description: "also replace the target's database and media with the source's (a backup is taken first)" },
      yes: { type: "boolean", short: "y", description: "with --content: confirm that the target's content is replaced" },
      detach: { type: "boolean", short: "d", description: "print the deployment id and return at once" },
    },
    async run(ctx) {
      const [app, from, to] = ctx.args as [string, string, string];
      if (ctx.opts.content && !ctx.opts.yes) throw new UsageError(`promoting with --content replaces the database and media of ${app}/${to} with ${from}'s: add --yes`);
      const body = { promoteFrom: from, ...(ctx.opts.content ? { content: { from, confirm: true } } : {}) };
      return startDeployment(ctx, app, to, body, `promoting ${from}${ctx.opts.content ? " with its content" : ""}`);
    },
  },
  {
    name: "rollback",
    args: ["app", "env", "[deployment-id]"],
    summary: "Deploy an earlier deployment again (default: the newest that can be; its image, settings and variables; the database stays) and follow it",
    options: {
      "run-release-commands": { type: "boolean", description: "run the release commands (a rollback skips them unless asked)" },
      detach: { type: "boolean", short: "d", description: "print the deployment id and return at once" },
    },
    async run(ctx) {
      const [app, env, wanted] = ctx.args as [string, string, string | undefined];
      const label = `${app}/${env}`;
      const list = await ctx.client().call<DeploymentItem[]>("GET", `${envPath(app, env)}/deployments`);
      const target = rollbackTarget(list, label, wanted);
      if ("error" in target) {
        ctx.io.err(`slipway: ${target.error}\n`);
        return 1;
      }
      if (!ctx.json && target.picked) ctx.io.err(`rolling ${label} back to ${deploymentText(target.picked)}\n`);
      const body = { rollbackTo: target.id, ...(ctx.opts["run-release-commands"] ? { runReleaseCommands: true } : {}) };
      return startDeployment(ctx, app, env, body, `rollback to ${target.id.slice(0, 8)}`);
    },
  },
];
