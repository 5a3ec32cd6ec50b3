import { createHash, randomBytes, randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import {
  ConflictError,
  ForbiddenError,
  InvalidRequestError,
  NotFoundError,
  PreconditionFailedError,
  DEFAULT_ENVIRONMENTS,
  VARIABLE_KEY_PATTERN,
  defaultHostLabel,
  defaultHostname,
  defaultVariables,
  environmentMediaPrefix,
  isValidEnvironmentName,
  labelsMatch,
  assertLimits,
  type ResourceLimits,
} from "@slipway/core";
import { json, type Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import * as deployments from "../repositories/deployments.repository.js";
import * as vars from "../repositories/variables.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { requireAdmin, requireApp, type Principal } from "./auth.service.js";
import { DEFAULT_SLEEP_AFTER_SECONDS, HOST_LABEL_CONSTRAINT, autoDeployOf, hostnameTaken, type AppService, type EnvironmentView } from "./app.service.js";
import type { DeployJobSpec, HttpsPolicy } from "./deploy-spec.js";
import type { PendingCommit } from "../git/repository-mirrors.js";
import { limitsOf } from "./resource-policy.js";
import type { SecretBox } from "./secret-box.js";
import { refuseRemovalWhileBusy, type DataService } from "../data/data.service.js";
import { UniqueViolationError } from "../repositories/unique-violation.js";
import type { Lifecycle } from "./lifecycle.service.js";
import { findHost, hostsServing } from "../repositories/hosts.repository.js";
import * as forwards from "../repositories/forwards.repository.js";
import type { CertificateResult, DomainCertificate } from "../tls/certificate.service.js";

/** What a listing shows instead of a secret value; PUT/PATCH with it keeps the stored value. */
export const MASK = "********";
const MAX_VARIABLES = 500;
const MAX_VALUE_BYTES = 32 * 1024;
const keyRe = new RegExp(VARIABLE_KEY_PATTERN);
const hostnameRe = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;

export type EnvironmentAction = "stop" | "start" | "routes" | "remove" | "handoff";

/** The environment spec sent with stop/start/routes/remove jobs (no secrets). */
export interface EnvironmentJobSpec {
  action: EnvironmentAction;
  app: string;
  environment: string;
  environmentId: string;
  hostnames: string[];
  basicAuth: { username: string; digest: string } | null;
  sleepAfterSeconds: number;
  /** HTTP → HTTPS and HSTS (absent in jobs written before issue 15's redirect: off). */
  https?: HttpsPolicy;
  /** handoff: the ingress (host:port) of the host the environment moved to. */
  forwardTo?: string;
}

/** What the agent needs about an environment at deployment time; variables sealed. */
export interface RuntimeSpec {
  environmentId: string;
  hostnames: string[];
  variablesSealed: string;
  basicAuth: { username: string; digest: string } | null;
  sleepAfterSeconds: number;
  https: HttpsPolicy;
}

/** A host serving a domain, with the certificate it reported serving for it (issue 15). */
export interface ServedBy {
  hostId: string;
  host: string;
  serial: string;
  notAfter: string;
  /** Whether it is the certificate the control plane holds for the domain (a renewal reached the host). */
  current: boolean;
}

/** What an environment's next deployment would bring (GET …/pending). */
export interface PendingView {
  app: string;
  environment: string;
  branch: string;
  deployedCommit: string | null;
  status: EnvironmentView["status"];
  /** Newest first (at most 100); null when the mirror cannot tell (never synced, or the deployed commit is not in it). */
  commits: PendingCommit[] | null;
  changes: {
    branch?: { from: string; to: string };
    variables?: { added: string[]; changed: string[]; removed: string[] };
    settings?: string[];
    domains?: { added: string[]; removed: string[] };
    replicas?: { from: number; to: number };
    limits?: { from: ResourceLimits; to: ResourceLimits };
  };
}

/** hex(sha256("Basic " + base64(user:pass))): what the ingress compares; the password itself is never stored. */
export function basicAuthDigest(username: string, password: string): string {
  return createHash("sha256").update(`Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`).digest("hex");
}

export class EnvironmentService {
  constructor(
    private readonly db: Db,
    private readonly lifecycle: Lifecycle,
    private readonly box: SecretBox,
    private readonly appService: AppService,
    private readonly opts: { baseDomain: string; onJobQueued: () => void },
    /** Data services of an environment: its DATABASE_URL/DEFAULT_STORAGE_DSN, and removal of its data. */
    private readonly data?: Pick<DataService, "containerVariables" | "removeEnvironmentData">,
    /** The custom domains' certificates (issue 15); absent = every domain says "none". */
    private readonly certificates?: { statusOf(hostnames: readonly string[]): Promise<Map<string, DomainCertificate>> },
  ) {}

  /**
   * The environment's custom domains, each with its certificate's state and, per host that serves
   * the environment (its own and those forwarding it since a drain), the certificate that host's
   * agent last reported serving for it: `current` when it is the stored one (GET …/domains).
   */
  async listDomains(by: Principal, appName: string, envName: string): Promise<{ domains: Array<{ hostname: string; certificate: DomainCertificate; servedBy: ServedBy[] }> }> {
    requireApp(by, appName);
    const { env } = await this.load(this.db, appName, envName);
    const names = await vars.listDomains(this.db, env.id);
    const status = this.certificates ? await this.certificates.statusOf(names) : new Map<string, DomainCertificate>();
    const none: DomainCertificate = { state: "none", serial: null, notAfter: null, lastError: null, nextAttemptAt: null };
    const hostIds = [...new Set([...(env.host_id ? [env.host_id] : []), ...(await forwards.listForwards(this.db, [env.id])).map((f) => f.host_id)])];
    const serving = await hostsServing(this.db, names, hostIds);
    return {
      domains: names.map((hostname) => {
        const certificate = status.get(hostname) ?? none;
        // Serials compared as numbers in hex: HAProxy prints no leading zeros.
        const hex = (s: string) => s.toUpperCase().replace(/^0+(?=.)/, "");
        const servedBy = (serving.get(hostname) ?? []).map((s) => ({ ...s, current: certificate.serial !== null && hex(s.serial) === hex(certificate.serial) }));
        return { hostname, certificate, servedBy };
      }),
    };
  }

  /**
   * After an attempt of the certificate scheduler (issue 15): an activity entry on the environment
   * that serves each name (certificate.issued, .renewed or .failed with the reason) and, when a
   * certificate was issued, its delivery to every host serving the names (deliverCertificate).
   */
  async certificateAttempt(result: CertificateResult): Promise<void> {
    const { before, outcome, certificate } = result;
    if (outcome !== "issued" && outcome !== "failed" && outcome !== "unreachable") return;
    for (const hostname of certificate.hostnames) {
      // A custom domain's entry goes to its environment; the default domain's wildcard is the platform's.
      const owner = hostname.startsWith("*.") ? { app: undefined, environment: undefined } : await vars.findDomainOwner(this.db, hostname);
      if (!owner) continue;
      if (outcome === "issued") {
        const action = before.serial ? "certificate.renewed" : "certificate.issued";
        await recordActivity(this.db, { actor: "platform", app: owner.app, environment: owner.environment, action, details: { hostname, serial: certificate.serial, notAfter: certificate.notAfter?.toISOString() ?? null } });
      } else {
        await recordActivity(this.db, { actor: "platform", app: owner.app, environment: owner.environment, action: "certificate.failed", details: { hostname, reason: certificate.lastError, nextAttemptAt: certificate.nextAttemptAt.toISOString() } });
      }
    }
    if (outcome === "issued") await this.deliverCertificate(certificate.hostnames);
  }

  /**
   * Sends a new, replaced or removed certificate to every host that serves one of `names` (exact,
   * or one label under `*.`; default host names included): a routes job on the host of each
   * environment serving such a name, and the handoff again on each host that forwards one since a
   * drain (it terminates HTTPS for it too). The agents take the certificates from the jobs' specs
   * (GetJobSpec), so what they get is what the database holds when they run. Returns the jobs queued.
   */
  async deliverCertificate(names: readonly string[]): Promise<number> {
    const ids = await forwards.environmentsServing(this.db, names, this.opts.baseDomain);
    if (ids.length === 0) return 0;
    const queued = await this.db.transaction().execute(async (trx) => {
      let n = 0;
      const forwardsOf = new Map<string, forwards.ForwardRow[]>();
      for (const f of await forwards.listForwards(trx, ids)) forwardsOf.set(f.environment_id, [...(forwardsOf.get(f.environment_id) ?? []), f]);
      for (const id of ids) {
        const env = await apps.findEnvironmentById(trx, id);
        const app = env ? await apps.findAppById(trx, env.app_id) : undefined;
        if (!env || !app) continue;
        if (env.host_id) {
          await this.enqueue(trx, app, env, "routes");
          n++;
        }
        for (const f of forwardsOf.get(id) ?? []) {
          if (f.host_id === env.host_id) continue;
          await this.enqueue(trx, app, env, "handoff", { hostId: f.host_id, forwardTo: f.forward_to });
          n++;
        }
      }
      return n;
    });
    if (queued > 0) this.opts.onJobQueued();
    return queued;
  }

  async create(by: Principal, appName: string, input: { name: string; branch?: string; basedOn?: string; hostLabels?: Record<string, string> }): Promise<EnvironmentView> {
    requireApp(by, appName);
    // A copy of live carries live's variables to an environment a deployer may open a shell in,
    // which live itself refuses them: only an admin bases an environment on live.
    if (input.basedOn === "live" && by.role !== "admin") {
      throw new ForbiddenError("only an admin may base an environment on live (it copies live's secrets): base it on test, or ask an admin");
    }
    if (!isValidEnvironmentName(input.name)) {
      throw new InvalidRequestError(`invalid environment name '${input.name}': use 1-20 of a-z, 0-9 and '-'`, { details: { name: "invalid" } });
    }
    const hostLabel = defaultHostLabel(appName, input.name);
    await this.db
      .transaction()
      .execute(async (trx) => {
        const app = await apps.getAppByName(trx, appName);
        if (await apps.findEnvironment(trx, app.id, input.name)) throw new ConflictError(`environment '${input.name}' of app '${appName}' already exists`);
        await this.appService.assertHostLabelFree(trx, by, hostLabel);
        const base = input.basedOn ? await apps.getEnvironment(trx, app, input.basedOn) : undefined;
        const id = randomUUID();
        await apps.insertEnvironment(trx, {
          id,
          appId: app.id,
          name: input.name,
          branch: input.branch ?? base?.branch ?? "main",
          replicas: 1,
          sleepAfterSeconds: base && base.sleep_after_seconds !== null ? base.sleep_after_seconds : DEFAULT_SLEEP_AFTER_SECONDS,
          hostLabel,
          mediaPrefix: environmentMediaPrefix(id),
        });
        const hostLabels = input.hostLabels ?? base?.host_labels;
        if (hostLabels && Object.keys(hostLabels).length > 0) await apps.setHostLabels(trx, id, hostLabels);
        if (base) {
          await vars.replaceVariables(trx, id, await vars.listVariables(trx, base.id));
          if (base.basic_auth_digest) {
            await apps.setBasicAuth(trx, id, { username: base.basic_auth_username!, digest: base.basic_auth_digest });
          }
          if (base.https_redirect) await apps.setHttpsPolicy(trx, id, { redirect: true, hstsMaxAgeSeconds: base.hsts_max_age_seconds });
          // Its own limits and whether a push deploys it go along; domains stay with the base (they are unique).
          if (base.limits && Object.keys(base.limits).length > 0) await apps.updateEnvironmentConfig(trx, id, { limits: json(base.limits) });
          // As the base does: live's default (no deploy on push) goes along too, not the new name's.
          await apps.setAutoDeploy(trx, id, autoDeployOf(base));
        }
        await recordActivity(trx, { actor: by.name, app: appName, environment: input.name, action: "environment.created", details: { branch: input.branch ?? base?.branch ?? "main", ...(base ? { basedOn: base.name } : {}) } });
      })
      .catch(async (err: unknown) => {
        // A concurrent creator took the label between the check and the insert: the constraint decided.
        if (err instanceof UniqueViolationError && err.constraint === HOST_LABEL_CONSTRAINT) await this.appService.assertHostLabelFree(this.db, by, hostLabel);
        return uniqueToConflict(`environment '${input.name}' of app '${appName}' already exists`)(err);
      });
    return this.appService.getEnvironment(by, appName, input.name);
  }

  /** Removes an environment with everything the agent runs for it; test and live stay. */
  async remove(by: Principal, appName: string, envName: string, confirm: string | undefined): Promise<void> {
    requireApp(by, appName);
    if ((DEFAULT_ENVIRONMENTS as readonly string[]).includes(envName)) throw new ConflictError(`environment '${envName}' cannot be removed: every app keeps test and live`);
    const removed = await this.db.transaction().execute(async (trx) => {
      const app = await apps.getAppByName(trx, appName);
      const env = await apps.getEnvironment(trx, app, envName);
      if (confirm !== envName) throw new PreconditionFailedError(`removing '${envName}' deletes its containers and data: repeat its name in ?confirm=${envName}`);
      await refuseRemovalWhileBusy(trx, env.id, `${appName}/${envName}`);
      await this.enqueueRemoval(trx, app, env);
      await apps.deleteEnvironment(trx, env.id);
      await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: "environment.removed" });
      return env;
    });
    this.opts.onJobQueued();
    await this.data?.removeEnvironmentData(appName, removed);
  }

  /** Removes an app: every environment's containers and routes through remove jobs, then its records. */
  async removeApp(by: Principal, appName: string, confirm: string | undefined): Promise<void> {
    requireAdmin(by);
    const removedEnvs = await this.db.transaction().execute(async (trx) => {
      const app = await apps.getAppByName(trx, appName);
      if (confirm !== appName) throw new PreconditionFailedError(`removing app '${appName}' deletes all its environments: repeat its name in ?confirm=${appName}`);
      const envs = await apps.listEnvironments(trx, app.id);
      for (const env of envs) {
        await refuseRemovalWhileBusy(trx, env.id, `${appName}/${env.name}`);
        await this.enqueueRemoval(trx, app, env);
      }
      await apps.deleteApp(trx, app.id);
      await recordActivity(trx, { actor: by.name, app: appName, action: "app.removed" });
      return envs;
    });
    this.opts.onJobQueued();
    for (const env of removedEnvs) await this.data?.removeEnvironmentData(appName, env);
  }

  async getVariables(by: Principal, appName: string, envName: string, reveal: boolean): Promise<Record<string, string>> {
    requireApp(by, appName);
    if (reveal) requireAdmin(by);
    const { env } = await this.load(this.db, appName, envName);
    const sealed = await vars.listVariables(this.db, env.id);
    return Object.fromEntries(Object.entries(sealed).map(([k, v]) => [k, reveal ? this.box.decrypt(v) : MASK]));
  }

  /** PUT replaces the map; PATCH merges it and `null` deletes a key. A MASK value keeps the stored one. */
  async setVariables(by: Principal, appName: string, envName: string, input: Record<string, string | null>, mode: "put" | "patch"): Promise<Record<string, string>> {
    requireApp(by, appName);
    const bad = Object.keys(input).filter((k) => !keyRe.test(k));
    if (bad.length) throw new InvalidRequestError(`invalid variable names: ${bad.join(", ")} (use letters, digits and _, not starting with a digit)`, { details: Object.fromEntries(bad.map((k) => [k, "invalid name"])) });
    for (const [k, v] of Object.entries(input)) {
      if (v === null && mode === "put") throw new InvalidRequestError(`variable ${k}: null deletes a key only with PATCH`, { details: { [k]: "null in PUT" } });
      if (v !== null && Buffer.byteLength(v) > MAX_VALUE_BYTES) throw new InvalidRequestError(`variable ${k} is longer than ${MAX_VALUE_BYTES} bytes`, { details: { [k]: "too long" } });
    }
    await this.db.transaction().execute(async (trx) => {
      const { env } = await this.load(trx, appName, envName);
      const current = await vars.listVariables(trx, env.id);
      const next: Record<string, string> = mode === "patch" ? { ...current } : {};
      for (const [k, v] of Object.entries(input)) {
        if (v === null) delete next[k];
        else if (v === MASK && current[k]) next[k] = current[k]!;
        else next[k] = this.box.encrypt(v);
      }
      if (Object.keys(next).length > MAX_VARIABLES) throw new InvalidRequestError(`at most ${MAX_VARIABLES} variables per environment`);
      const changed = Object.keys({ ...current, ...next }).filter((k) => current[k] !== next[k]);
      if (changed.length === 0) return;
      await vars.replaceVariables(trx, env.id, next);
      await apps.updateEnvironmentConfig(trx, env.id, {});
      // Names only: values never reach the activity feed or the logs.
      await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: "variables.changed", details: { keys: changed } });
    });
    return this.getVariables(by, appName, envName, false);
  }

  async addDomain(by: Principal, appName: string, envName: string, hostname: string): Promise<EnvironmentView> {
    requireApp(by, appName);
    const host = hostname.toLowerCase().replace(/\.$/, "");
    if (!hostnameRe.test(host)) throw new InvalidRequestError(`invalid host name '${hostname}'`, { details: { hostname: "not a DNS name" } });
    const base = this.opts.baseDomain;
    if (host === base || host.endsWith(`.${base}`)) {
      const label = host.slice(0, -base.length - 1);
      const owner = label && !label.includes(".") ? await apps.findEnvironmentByHostLabel(this.db, label) : undefined;
      if (owner && !(owner.app === appName && owner.environment === envName)) throw hostnameTaken(by, host, owner);
      throw new InvalidRequestError(`host names under ${base} are the platform's default domains and cannot be added`, { details: { hostname: "reserved" } });
    }
    await this.db
      .transaction()
      .execute(async (trx) => {
        const { app, env } = await this.load(trx, appName, envName);
        const existing = await vars.findDomainOwner(trx, host);
        if (existing?.environmentId === env.id) throw new ConflictError(`host name ${host} is already a domain of ${appName}/${envName}`);
        if (existing) throw hostnameTaken(by, host, existing);
        await vars.insertDomain(trx, env.id, host);
        await apps.updateEnvironmentConfig(trx, env.id, {});
        await this.enqueue(trx, app, env, "routes");
        await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: "domain.added", details: { hostname: host } });
      })
      .catch(async (err: unknown) => {
        const owner = err instanceof UniqueViolationError ? await vars.findDomainOwner(this.db, host) : undefined;
        if (owner) throw hostnameTaken(by, host, owner);
        return uniqueToConflict(`host name ${host} is already in use`)(err);
      });
    this.opts.onJobQueued();
    return this.appService.getEnvironment(by, appName, envName);
  }

  async removeDomain(by: Principal, appName: string, envName: string, hostname: string): Promise<EnvironmentView> {
    requireApp(by, appName);
    const host = hostname.toLowerCase();
    await this.db.transaction().execute(async (trx) => {
      const { app, env } = await this.load(trx, appName, envName);
      const existing = await vars.findDomain(trx, host);
      if (!existing || existing.environment_id !== env.id) throw new NotFoundError(`host name ${host} is not a domain of ${appName}/${envName}`);
      await vars.deleteDomain(trx, host);
      await apps.updateEnvironmentConfig(trx, env.id, {});
      await this.enqueue(trx, app, env, "routes");
      await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: "domain.removed", details: { hostname: host } });
    });
    this.opts.onJobQueued();
    return this.appService.getEnvironment(by, appName, envName);
  }

  async patch(
    by: Principal,
    appName: string,
    envName: string,
    patch: { branch?: string; replicas?: number; sleepAfterSeconds?: number | null; basicAuth?: { username: string; password: string } | null; hostLabels?: Record<string, string>; limits?: Partial<ResourceLimits> | null; autoDeploy?: boolean; https?: Partial<HttpsPolicy> },
  ): Promise<EnvironmentView> {
    requireApp(by, appName);
    let routesChanged = false;
    await this.db.transaction().execute(async (trx) => {
      const { app, env: e } = await this.load(trx, appName, envName);
      if (patch.replicas !== undefined && patch.replicas > 1 && e.name !== "live") {
        throw new InvalidRequestError(`only live may run several containers; '${envName}' runs one`, { details: { replicas: "must be 1 outside live" } });
      }
      if (patch.sleepAfterSeconds !== undefined && patch.sleepAfterSeconds !== null && e.name === "live") {
        throw new InvalidRequestError("live never sleeps", { details: { sleepAfterSeconds: "must be null for live" } });
      }
      const changes: Parameters<typeof apps.updateEnvironmentConfig>[2] = {};
      if (patch.branch !== undefined && patch.branch !== e.branch) changes.branch = patch.branch;
      if (patch.replicas !== undefined && patch.replicas !== e.replicas) changes.replicas = patch.replicas;
      // New constraints apply at the next deployment: it moves the environment when its host no longer matches.
      if (patch.hostLabels !== undefined && !(labelsMatch(patch.hostLabels, e.host_labels) && labelsMatch(e.host_labels, patch.hostLabels))) changes.host_labels = json(patch.hostLabels);
      // Limits apply at the next deployment (an unapplied change); given ones are merged into the environment's own, null drops them.
      if (patch.limits !== undefined) {
        if (patch.limits) assertLimits(patch.limits);
        const own = patch.limits === null ? null : { ...(e.limits ?? {}), ...patch.limits };
        const ownOrNull = own && Object.keys(own).length > 0 ? own : null;
        if (JSON.stringify(ownOrNull) !== JSON.stringify(e.limits ?? null)) changes.limits = ownOrNull ? json(ownOrNull) : null;
      }
      if (Object.keys(changes).length) {
        await apps.updateEnvironmentConfig(trx, e.id, changes);
        await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: "environment.changed", details: { ...changes, ...(changes.host_labels !== undefined ? { host_labels: patch.hostLabels } : {}), ...(changes.limits !== undefined ? { limits: patch.limits } : {}) } });
      }
      // Sleep and basic auth apply at once through the ingress: they are not "unapplied changes".
      if (patch.sleepAfterSeconds !== undefined && patch.sleepAfterSeconds !== e.sleep_after_seconds) {
        await apps.setSleepAfter(trx, e.id, patch.sleepAfterSeconds);
        await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: "environment.sleep_changed", details: { sleepAfterSeconds: patch.sleepAfterSeconds } });
        routesChanged = true;
      }
      if (patch.basicAuth !== undefined) {
        const auth = patch.basicAuth;
        await apps.setBasicAuth(trx, e.id, auth ? { username: auth.username, digest: basicAuthDigest(auth.username, auth.password) } : null);
        await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: auth ? "basic_auth.enabled" : "basic_auth.disabled", details: auth ? { username: auth.username } : {} });
        routesChanged = true;
      }
      // HTTPS redirect and HSTS apply at once through the ingress, like basic auth.
      if (patch.https !== undefined) {
        const next: HttpsPolicy = { redirect: patch.https.redirect ?? e.https_redirect, hstsMaxAgeSeconds: patch.https.hstsMaxAgeSeconds ?? e.hsts_max_age_seconds };
        if (next.hstsMaxAgeSeconds > 0 && !next.redirect) {
          throw new InvalidRequestError("HSTS needs the HTTPS redirect: set https.redirect to true, or hstsMaxAgeSeconds to 0", { details: { "https.hstsMaxAgeSeconds": "needs https.redirect" } });
        }
        if (next.redirect !== e.https_redirect || next.hstsMaxAgeSeconds !== e.hsts_max_age_seconds) {
          await apps.setHttpsPolicy(trx, e.id, next);
          await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: "environment.https_changed", details: { ...next } });
          routesChanged = true;
        }
      }
      // Whether a push deploys it: a setting of the platform's, not of what runs.
      if (patch.autoDeploy !== undefined && patch.autoDeploy !== autoDeployOf(e)) {
        await apps.setAutoDeploy(trx, e.id, patch.autoDeploy);
        await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: "environment.auto_deploy_changed", details: { autoDeploy: patch.autoDeploy } });
      }
      if (routesChanged) await this.enqueue(trx, app, (await apps.findEnvironmentById(trx, e.id))!, "routes");
    });
    if (routesChanged) this.opts.onJobQueued();
    return this.appService.getEnvironment(by, appName, envName);
  }

  /**
   * What the next deployment would bring: the commits on the branch the running deployment does not
   * contain (from the platform's mirror, as of `syncedAt`), and the changes made since it, by name:
   * branch, variable keys (never their values), settings, domains, replicas, limits.
   */
  async pending(by: Principal, appName: string, envName: string): Promise<PendingView> {
    requireApp(by, appName);
    const app = await apps.getAppByName(this.db, appName);
    const env = await apps.getEnvironment(this.db, app, envName);
    const view = await this.appService.environmentView(app, env);
    const deployed = await deployments.latestSucceededWithImage(this.db, env.id, env.current_image ?? "");
    const job = deployed ? await deployments.findJobByDeployment(this.db, deployed.id) : undefined;
    const then = job?.spec as DeployJobSpec | undefined;
    const commits = await this.appService.pendingCommits(app, env);
    const changes: PendingView["changes"] = {};
    if (then) {
      if (then.branch !== env.branch) changes.branch = { from: then.branch, to: env.branch };
      const now = await this.db.transaction().execute((trx) => this.runtimeSpec(trx, app, env));
      const before = this.unseal(then.variablesSealed);
      const after = this.unseal(now.variablesSealed);
      const added = Object.keys(after).filter((k) => !(k in before));
      const removed = Object.keys(before).filter((k) => !(k in after));
      const changed = Object.keys(after).filter((k) => k in before && before[k] !== after[k]);
      if (added.length + removed.length + changed.length > 0) changes.variables = { added: added.sort(), changed: changed.sort(), removed: removed.sort() };
      const settingsBefore = then.settings as unknown as Record<string, unknown>;
      const settingsNow = app.settings as Record<string, unknown>;
      const settings = [...new Set([...Object.keys(settingsBefore), ...Object.keys(settingsNow)])].filter((k) => !isDeepStrictEqual(settingsBefore[k], settingsNow[k])).sort();
      if (settings.length) changes.settings = settings;
      const domainsBefore = new Set(then.hostnames);
      const domainsNow = new Set(now.hostnames);
      const domAdded = now.hostnames.filter((h) => !domainsBefore.has(h));
      const domRemoved = then.hostnames.filter((h) => !domainsNow.has(h));
      if (domAdded.length + domRemoved.length > 0) changes.domains = { added: domAdded, removed: domRemoved };
      if (then.replicas !== env.replicas) changes.replicas = { from: then.replicas, to: env.replicas };
      const limitsNow = limitsOf(this.appService.resources(), env);
      // Compared by key: the job spec comes back from jsonb, which reorders an object's keys.
      if (then.limits && (Object.keys(limitsNow) as Array<keyof ResourceLimits>).some((k) => then.limits![k] !== limitsNow[k])) changes.limits = { from: then.limits, to: limitsNow };
    }
    return {
      app: app.name,
      environment: env.name,
      branch: env.branch,
      deployedCommit: env.deployed_commit,
      status: view.status,
      commits: commits ?? null,
      changes,
    };
  }

  /** Stops or starts a deployed environment by hand (202: the agent does it). */
  async setRunning(by: Principal, appName: string, envName: string, action: "stop" | "start"): Promise<EnvironmentView> {
    requireApp(by, appName);
    await this.db.transaction().execute(async (trx) => {
      const { app, env } = await this.load(trx, appName, envName);
      if (!env.current_image || !env.host_id) throw new ConflictError(`environment '${envName}' has never been deployed: there is nothing to ${action}`);
      const active = await deployments.findActiveDeployment(trx, env.id);
      if (active) throw new ConflictError(`deployment ${active.id} of ${appName}/${envName} is running; wait for it`);
      await this.enqueue(trx, app, env, action);
      await this.lifecycle.requestRunState(trx, env.id, action === "stop" ? "stopped" : "running", `${action} requested by ${by.name}`);
      await recordActivity(trx, { actor: by.name, app: appName, environment: envName, action: `environment.${action}_requested` });
    });
    this.opts.onJobQueued();
    return this.appService.getEnvironment(by, appName, envName);
  }

  /**
   * Host names, variables (sealed), auth and sleep of an environment as a deployment applies them.
   * `fresh`: `env` was read in this transaction after its data services were provisioned (else its
   * database and storage identity are read again).
   */
  async runtimeSpec(trx: Db, app: apps.AppRow, env: apps.EnvironmentRow, opts: { fresh?: boolean } = {}): Promise<RuntimeSpec> {
    const { domains, variables: user } = await vars.listDomainsAndVariables(trx, env.id);
    const hostnames = [defaultHostname(env.host_label, this.opts.baseDomain), ...domains];
    let secretKey = env.secret_key_encrypted ? this.box.decrypt(env.secret_key_encrypted) : undefined;
    if (!secretKey) {
      secretKey = randomBytes(36).toString("base64url");
      await apps.setSecretKey(trx, env.id, this.box.encrypt(secretKey));
    }
    const variables: Record<string, string> = {
      ...defaultVariables(env.name, { domain: hostnames[0]!, aliases: hostnames.slice(1), branch: env.branch }),
      SECRET_KEY: secretKey,
      ...(this.data?.containerVariables(app, opts.fresh ? env : ((await apps.findEnvironmentById(trx, env.id)) ?? env)) ?? {}),
      ...Object.fromEntries(Object.entries(user).map(([k, v]) => [k, this.box.decrypt(v)])),
    };
    return {
      environmentId: env.id,
      hostnames,
      variablesSealed: this.box.encrypt(JSON.stringify(variables)),
      basicAuth: env.basic_auth_username && env.basic_auth_digest ? { username: env.basic_auth_username, digest: env.basic_auth_digest } : null,
      sleepAfterSeconds: env.name === "live" ? 0 : (env.sleep_after_seconds ?? 0),
      https: { redirect: env.https_redirect, hstsMaxAgeSeconds: env.hsts_max_age_seconds },
    };
  }

  /**
   * A rollback's variables: the user's variables as they were at `oldSealed`'s deployment, with the
   * platform's data services as they are now (a database password or storage key rotated since
   * must not be rolled back with them).
   */
  rollbackVariablesSealed(app: apps.AppRow, env: apps.EnvironmentRow, oldSealed: string): string {
    return this.box.encrypt(JSON.stringify({ ...this.unseal(oldSealed), ...(this.data?.containerVariables(app, env) ?? {}) }));
  }

  unseal(sealed: string): Record<string, string> {
    return JSON.parse(this.box.decrypt(sealed)) as Record<string, string>;
  }

  /** After a move (drain): the old host forwards the environment's host names to the new host, then removes its containers. */
  async handoff(trx: Db, environmentId: string, fromHostId: string, toHostId: string): Promise<void> {
    const env = await apps.findEnvironmentById(trx, environmentId);
    if (!env) return;
    const app = (await apps.findAppById(trx, env.app_id))!;
    const to = await findHost(trx, toHostId);
    const forwardTo = to?.ingress_address ?? "";
    await this.enqueue(trx, app, env, "handoff", { hostId: fromHostId, forwardTo });
    // The old host keeps serving the names (forwarding): certificates issued later must reach it too.
    if (forwardTo) await forwards.recordForward(trx, env.id, fromHostId, forwardTo);
    await recordActivity(trx, { actor: "platform", app: app.name, environment: env.name, action: "environment.moved", details: { from: fromHostId, to: toHostId } });
    this.opts.onJobQueued();
  }

  /** Remove jobs on the environment's host and on every host still forwarding its names (before its rows go). */
  private async enqueueRemoval(trx: Db, app: apps.AppRow, env: apps.EnvironmentRow): Promise<void> {
    await this.enqueue(trx, app, env, "remove");
    for (const f of await forwards.listForwards(trx, [env.id])) {
      if (f.host_id !== env.host_id) await this.enqueue(trx, app, env, "remove", { hostId: f.host_id });
    }
  }

  /** Queues an environment job on the environment's host; nothing to do when it was never placed. */
  private async enqueue(trx: Db, app: apps.AppRow, env: apps.EnvironmentRow, action: EnvironmentAction, extra: { hostId?: string; forwardTo?: string } = {}): Promise<void> {
    const hostId = extra.hostId ?? env.host_id;
    if (!hostId) return;
    const rt = await this.runtimeSpec(trx, app, env);
    const spec: EnvironmentJobSpec = {
      action,
      app: app.name,
      environment: env.name,
      environmentId: env.id,
      hostnames: rt.hostnames,
      basicAuth: rt.basicAuth,
      sleepAfterSeconds: rt.sleepAfterSeconds,
      https: rt.https,
      ...(extra.forwardTo ? { forwardTo: extra.forwardTo } : {}),
    };
    await this.lifecycle.createJob(trx, { id: randomUUID(), kind: "environment", deploymentId: null, hostId, spec, environmentId: env.id });
  }

  private async load(db: Db, appName: string, envName: string) {
    const app = await apps.getAppByName(db, appName);
    const env = await apps.getEnvironment(db, app, envName);
    return { app, env };
  }
}

function uniqueToConflict(message: string) {
  return (err: unknown) => {
    if (err instanceof UniqueViolationError) throw new ConflictError(message);
    throw err;
  };
}
