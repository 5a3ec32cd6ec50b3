import { randomUUID } from "node:crypto";
import {
  ConflictError,
  DEFAULT_ENVIRONMENTS,
  InvalidRequestError,
  assertAppName,
  defaultAppSettings,
  defaultHostLabel,
  defaultHostname,
  environmentMediaPrefix,
  environmentApiState,
  environmentStatus,
  isObservedEnvironmentState,
  mergeAppSettings,
  type AppSettings,
  type AppSettingsPatch,
  type EnvironmentStatus,
  type ResourceLimits,
  sshRemoteOf,
} from "@slipway/core";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import * as deployments from "../repositories/deployments.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { requireAdmin, requireApp, type Principal } from "./auth.service.js";
import type { SourceView } from "../git/source-sync.js";
import { listDomains } from "../repositories/variables.repository.js";
import { UniqueViolationError } from "../repositories/unique-violation.js";
import { findHost } from "../repositories/hosts.repository.js";
import { setCreatedActivityRepository, setRepository } from "../repositories/app-credentials.repository.js";
import type { SecretBox } from "./secret-box.js";
import { DEFAULT_RESOURCE_POLICY, limitsOf, type ResourcePolicy } from "./resource-policy.js";
import { joinRepositoryCredential, splitRepositoryCredential } from "./repository-credential.js";

export interface EnvironmentView {
  name: string;
  branch: string;
  state: string;
  /** With when the platform's mirror of the repository last synced, and why its last fetch failed. */
  status: EnvironmentStatus & { syncedAt: string | null; syncError: string | null };
  /** Whether a push to its branch deploys it (the default: on, except for live). */
  autoDeploy: boolean;
  url: string;
  domains: string[];
  replicas: number;
  sleepAfterSeconds: number | null;
  basicAuth: { username: string } | null;
  /** HTTP → HTTPS (308) for its host names whose certificate is served; HSTS max-age on HTTPS (0 = none). */
  https: { redirect: boolean; hstsMaxAgeSeconds: number };
  host: string | null;
  /** Placement constraints: labels a host must have to run this environment. */
  hostLabels: Record<string, string>;
  /** What each container may take (the environment's own limits over the platform's defaults). */
  limits: ResourceLimits;
  /** Whether those are all the platform's defaults (no limit of its own). */
  limitsDefault: boolean;
  /** The last time one of its containers was killed ("killed: out of memory"), if ever. */
  lastIncident: { at: string; reason: string; container: string; count: number } | null;
  deployedCommit: string | null;
  image: string | null;
}
export interface AppView {
  name: string;
  /** Without any credential (see repository-credential.ts). */
  repository: string;
  /** The repository URL was given with a credential, kept encrypted. */
  repositoryCredentials: boolean;
  settings: AppSettings;
  environments: EnvironmentView[];
  createdAt: string;
}

export interface UrlOptions {
  baseDomain: string;
  ingressScheme: string;
  ingressPublicPort: number;
  /** The platform's default limits (DEFAULT_RESOURCE_POLICY when absent). */
  resources?: ResourcePolicy;
}

/** Default sleep after 15 minutes without a request; live never sleeps. */
export const DEFAULT_SLEEP_AFTER_SECONDS = 900;

export class AppService {
  constructor(
    private readonly db: Db,
    private readonly urls: UrlOptions,
    private readonly source?: SourceView,
    /** How long after its last heartbeat a host still counts as online. */
    private readonly onlineWindowMs: () => number = () => 15_000,
    /** Seals repository credentials (tokens in URLs); without it a URL with a credential is refused. */
    private readonly box?: SecretBox,
  ) {}

  async create(by: Principal, input: { name: string; repository: string; settings?: AppSettingsPatch }): Promise<AppView> {
    requireAdmin(by);
    assertAppName(input.name);
    const repository = this.sealRepository(input.repository);
    const settings = mergeAppSettings(defaultAppSettings, input.settings ?? {});
    const id = randomUUID();
    const labels = DEFAULT_ENVIRONMENTS.map((env) => defaultHostLabel(input.name, env));
    await this.db.transaction().execute(async (trx) => {
      if (await apps.findAppByName(trx, input.name)) throw new ConflictError(`app '${input.name}' already exists`);
      for (const label of labels) await this.assertHostLabelFree(trx, by, label);
      await apps.insertApp(trx, { id, name: input.name, repository: repository.url, settings });
      if (repository.sealed) await setRepository(trx, id, repository.url, repository.sealed);
      for (const env of DEFAULT_ENVIRONMENTS) {
        const envId = randomUUID();
        await apps.insertEnvironment(trx, {
          id: envId,
          appId: id,
          name: env,
          branch: "main",
          replicas: 1,
          sleepAfterSeconds: env === "live" ? null : DEFAULT_SLEEP_AFTER_SECONDS,
          hostLabel: defaultHostLabel(input.name, env),
          mediaPrefix: environmentMediaPrefix(envId),
        });
      }
      await recordActivity(trx, { actor: by.name, app: input.name, action: "app.created", details: repositoryDetails(repository) });
    }).catch(async (err: unknown) => {
      // Two concurrent creates: the unique indexes decide, the loser gets a 409 (the whole creation is rolled back).
      if (err instanceof UniqueViolationError && err.constraint === HOST_LABEL_CONSTRAINT) {
        for (const label of labels) await this.assertHostLabelFree(this.db, by, label);
      }
      if (err instanceof UniqueViolationError) throw new ConflictError(`app '${input.name}' already exists`);
      throw err;
    });
    return this.get(by, input.name);
  }

  async list(by: Principal): Promise<AppView[]> {
    const rows = await apps.listApps(this.db);
    const visible = rows.filter((a) => by.role === "admin" || by.apps.includes(a.name));
    return Promise.all(visible.map((a) => this.view(a)));
  }

  async get(by: Principal, name: string): Promise<AppView> {
    requireApp(by, name);
    return this.view(await apps.getAppByName(this.db, name));
  }

  async patchSettings(by: Principal, name: string, patch: AppSettingsPatch): Promise<AppSettings> {
    requireApp(by, name);
    return this.db.transaction().execute(async (trx) => {
      const app = await apps.getAppByName(trx, name);
      const next = mergeAppSettings(app.settings as AppSettings, patch);
      await apps.updateAppSettings(trx, app.id, next);
      await recordActivity(trx, { actor: by.name, app: name, action: "settings.changed", details: { changed: Object.keys(patch) } });
      return next;
    });
  }

  async listEnvironments(by: Principal, app: string): Promise<EnvironmentView[]> {
    requireApp(by, app);
    const row = await apps.getAppByName(this.db, app);
    const envs = await apps.listEnvironments(this.db, row.id);
    return Promise.all(envs.map((e) => this.environmentView(row, e)));
  }

  async getEnvironment(by: Principal, app: string, env: string): Promise<EnvironmentView> {
    requireApp(by, app);
    const row = await apps.getAppByName(this.db, app);
    return this.environmentView(row, await apps.getEnvironment(this.db, row, env));
  }

  /**
   * Points the app at another repository URL, and/or sets its access token (https; sealed, never
   * shown again; `null` removes it). A token given here wins over one in the URL. Admin only: who
   * changes the source changes what every environment runs. The mirror fetches the new URL at once.
   */
  async setRepository(by: Principal, name: string, input: { url: string; token?: string | null; username?: string }): Promise<AppView> {
    requireAdmin(by, "only an admin changes an app's repository");
    const split = splitRepositoryCredential(input.url);
    validateRepository(split.url);
    if (typeof input.token === "string" && !/^https?:\/\//i.test(split.url)) {
      throw new InvalidRequestError("an access token goes with an https:// repository; an ssh one uses the app's deploy key (GET /v1/apps/{app}/deploy-key)", { details: { token: "not for this URL" } });
    }
    if (input.username !== undefined && typeof input.token !== "string") throw new InvalidRequestError(`"username" goes with "token"`, { details: { username: "without token" } });
    if (!this.box) throw new Error("repository credentials need the secret box");
    const given = typeof input.token === "string" ? `${encodeURIComponent(input.username ?? "x-access-token")}:${encodeURIComponent(input.token)}` : split.credential;
    await this.db.transaction().execute(async (trx) => {
      const app = await apps.getAppByName(trx, name);
      // No token given: the stored one stays while the URL stays on the same host (a token is never sent to another host).
      const keep = input.token === undefined && given === undefined && app.repository_credential_encrypted !== null && sameOrigin(app.repository, split.url);
      const sealed = input.token === null ? null : given !== undefined ? this.box!.encrypt(given) : keep ? app.repository_credential_encrypted : null;
      await setRepository(trx, app.id, split.url, sealed);
      await recordActivity(trx, { actor: by.name, app: name, action: "repository.changed", details: { repository: split.url, repositoryCredentials: sealed !== null, ...(app.repository_credential_encrypted && sealed === null ? { credentialDropped: input.token === null ? "removed" : "another host" } : {}) } });
    });
    const app = await apps.getAppByName(this.db, name);
    this.source?.changed(app);
    return this.view(app);
  }

  /** Splits a credential out of a repository URL and seals it; validates the URL that remains. */
  private sealRepository(repository: string): { url: string; sealed: string | null } {
    const { url, credential } = splitRepositoryCredential(repository);
    validateRepository(url);
    if (credential === undefined) return { url, sealed: null };
    if (!this.box) throw new Error("repository credentials need the secret box");
    return { url, sealed: this.box.encrypt(credential) };
  }

  /** The URL git is given, credential included: only for git processes (the mirror, GetJobSpec), never shown or logged. */
  repositoryUrlForGit(repository: string, sealed: string | null | undefined): string {
    if (!sealed) return repository;
    if (!this.box) throw new Error("repository credentials need the secret box");
    return joinRepositoryCredential(repository, this.box.decrypt(sealed));
  }

  /**
   * Moves credentials still in plain text in `apps.repository` (apps created before migration
   * 0012) into the sealed column, and out of their "app.created" activity entries. Idempotent;
   * called at start. Answers how many apps it changed.
   */
  async sealStoredRepositoryCredentials(): Promise<number> {
    let changed = 0;
    for (const a of await apps.listApps(this.db)) {
      const { url, credential } = splitRepositoryCredential(a.repository);
      if (credential === undefined || !this.box) continue;
      const sealed = this.box.encrypt(credential);
      await this.db.transaction().execute(async (trx) => {
        await setRepository(trx, a.id, url, sealed);
        await setCreatedActivityRepository(trx, a.name, url);
      });
      changed++;
    }
    return changed;
  }

  private async view(a: apps.AppRow): Promise<AppView> {
    const envs = await apps.listEnvironments(this.db, a.id);
    return {
      name: a.name,
      repository: a.repository,
      repositoryCredentials: a.repository_credential_encrypted !== null,
      settings: a.settings as AppSettings,
      environments: await Promise.all(envs.map((e) => this.environmentView(a, e))),
      createdAt: a.created_at.toISOString(),
    };
  }

  /** The undeployed commits of the environment, from the mirror (never the git host); undefined when unknown. */
  async pendingCommits(a: apps.AppRow, e: Pick<apps.EnvironmentRow, "branch" | "deployed_commit">): Promise<Array<{ sha: string; author: string; at: string; message: string }> | undefined> {
    return this.source?.pendingCommits(a, e.branch, e.deployed_commit);
  }

  /** The mirror's state of the app's repository: in memory, no git and no query; undefined without mirrors. */
  syncState(a: Pick<apps.AppRow, "id">): { syncedAt: string | null; error: string | null } | undefined {
    return this.source?.syncState(a);
  }

  /** The platform's default limits. */
  resources(): ResourcePolicy {
    return this.urls.resources ?? DEFAULT_RESOURCE_POLICY;
  }

  /** The environment's default host name: its recorded label under the base domain. */
  defaultHostname(e: Pick<apps.EnvironmentRow, "host_label">): string {
    return defaultHostname(e.host_label, this.urls.baseDomain);
  }

  /**
   * Throws the 409 a user reads when another environment's default host name has this
   * label. The check gives the message; the unique constraint on the label decides races.
   */
  async assertHostLabelFree(db: Db, by: Principal, label: string): Promise<void> {
    const owner = await apps.findEnvironmentByHostLabel(db, label);
    if (owner) throw hostnameTaken(by, defaultHostname(label, this.urls.baseDomain), owner);
  }

  async environmentView(a: apps.AppRow, e: apps.EnvironmentRow): Promise<EnvironmentView> {
    const last = await deployments.latestFinishedDeployment(this.db, e.id);
    const everSucceeded = e.last_success_at !== null;
    const unappliedChanges =
      everSucceeded && (e.deployed_config_revision !== e.config_revision || e.deployed_settings_revision !== a.settings_revision);
    // The mirror as it is: a status never waits on the git host (it is refreshed in the background).
    const undeployedCommits = everSucceeded && e.deployed_commit && this.source ? await this.source.undeployedCommits(a, e.branch, e.deployed_commit) : undefined;
    // A commit deployed since the last refresh is not in the mirror yet: refresh it now, for the next read.
    if (undeployedCommits === undefined && e.deployed_commit && this.source) this.source.kick(a);
    const sync = this.source?.syncState(a);
    const status = environmentStatus({
      ...(last && last.finished_at ? { lastDeployment: { state: last.state as "succeeded" | "failed" | "cancelled", finishedAt: last.finished_at } } : {}),
      everSucceeded,
      unappliedChanges,
      ...(undeployedCommits !== undefined ? { undeployedCommits } : {}),
    });
    const domains = [this.defaultHostname(e), ...(await listDomains(this.db, e.id))];
    const port = this.urls.ingressPublicPort;
    const defaultPort = this.urls.ingressScheme === "https" ? 443 : 80;
    // The agent is the source of truth for what runs; when its host is offline nobody knows.
    const host = e.host_id ? await findHost(this.db, e.host_id) : undefined;
    const seen = host?.last_heartbeat_at ? Date.now() - host.last_heartbeat_at.getTime() : Infinity;
    const state = environmentApiState({
      desired: e.desired_state === "stopped" ? "stopped" : "running",
      observed: e.observed_state && isObservedEnvironmentState(e.observed_state) ? e.observed_state : null,
      deploying: e.state === "deploying",
      serving: e.current_image !== null,
      lastDeploymentFailed: last?.state === "failed",
      placed: e.host_id !== null,
      hostOnline: host !== undefined && host.admin_state !== "revoked" && seen <= this.onlineWindowMs(),
    });
    return {
      name: e.name,
      branch: e.branch,
      state,
      status: { ...status, syncedAt: sync?.syncedAt ?? null, syncError: sync?.error ?? null },
      autoDeploy: autoDeployOf(e),
      url: `${this.urls.ingressScheme}://${domains[0]}${port && port !== defaultPort ? `:${port}` : ""}/`,
      domains,
      replicas: e.replicas,
      sleepAfterSeconds: e.sleep_after_seconds,
      basicAuth: e.basic_auth_username ? { username: e.basic_auth_username } : null,
      https: { redirect: e.https_redirect, hstsMaxAgeSeconds: e.hsts_max_age_seconds },
      host: e.host_id,
      hostLabels: e.host_labels ?? {},
      limits: limitsOf(this.urls.resources ?? DEFAULT_RESOURCE_POLICY, e),
      limitsDefault: !e.limits || Object.keys(e.limits).length === 0,
      lastIncident: e.last_incident ?? null,
      deployedCommit: e.deployed_commit,
      image: e.current_image,
    };
  }
}

/** A push to the branch deploys the environment unless turned off; live only when turned on. */
export function autoDeployOf(e: Pick<apps.EnvironmentRow, "auto_deploy" | "name">): boolean {
  return e.auto_deploy ?? e.name !== "live";
}

/** The unique constraint on environments' default host labels (migration 0010). */
export const HOST_LABEL_CONSTRAINT = "environments_host_label_unique";

/**
 * "host name X is already used by app/env": the owner is named to whom may see that app
 * (admins, and deployers of that app); other tokens learn only that it is taken.
 */
export function hostnameTaken(by: Principal, hostname: string, owner: { app: string; environment: string }): ConflictError {
  const visible = by.role === "admin" || by.apps.includes(owner.app);
  return new ConflictError(`host name ${hostname} is already used by ${visible ? `${owner.app}/${owner.environment}` : "another app"}`, { details: { hostname: "taken" } });
}

/** What the activity feed records about a repository: never its credential. */
function repositoryDetails(r: { url: string; sealed: string | null }): Record<string, unknown> {
  return r.sealed ? { repository: r.url, repositoryCredentials: true } : { repository: r.url };
}

/** Same scheme, host and port: a stored token may go on being used with the new URL. */
function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/** Accepts git URLs the agent can clone: http(s), ssh, git, file:// and absolute local paths. */
export function validateRepository(repo: string): void {
  const ok =
    /^(https?|ssh|git|file):\/\/\S+$/.test(repo) || /^[\w.-]+@[\w.-]+:\S+$/.test(repo) || /^\/\S*$/.test(repo);
  if (!ok || repo.length > 2000) {
    throw new InvalidRequestError(`invalid repository '${repo}': use an https://, ssh://, git@host:path, file:// URL or an absolute path`, {
      details: { repository: "not a git URL" },
    });
  }
  // An SSH URL whose host the platform cannot name could not be pinned nor given the deploy key.
  if ((/^(git\+)?ssh:\/\//i.test(repo) || !repo.includes("://")) && !repo.startsWith("/") && !sshRemoteOf(repo)) {
    throw new InvalidRequestError(`invalid repository '${repo}': an SSH repository is ssh://user@host[:port]/path or user@host:path, with a DNS host name or an IP address`, { details: { repository: "not an SSH URL the platform can pin" } });
  }
}
