import { randomBytes } from "node:crypto";
import { ForbiddenError, InvalidRequestError, SlipwayError, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { findWaitingDeployment } from "../repositories/deployments.repository.js";
import { requireAdmin, requireApp, type Principal } from "../services/auth.service.js";
import { autoDeployOf } from "../services/app.service.js";
import type { DeploymentService } from "../services/deployment.service.js";
import type { SecretBox } from "../services/secret-box.js";
import type { SourceSync } from "../git/source-sync.js";
import type { GitAccess } from "../git/git-access.js";
import { parsePushWebhook, type PushEvent } from "./push-webhook.js";

export interface HookView {
  /** Where the git host sends its push events (POST, JSON). */
  url: string;
  /** The secret to give the git host (GitHub/Gitea/Bitbucket sign with it; GitLab sends it as its token). */
  secret: string;
  providers: string[];
  /** Seconds between background fetches of the repository; 0 = never (webhooks only). */
  pollIntervalSeconds: number;
  /** Whether the app sets its own interval (else the platform's default). */
  pollIntervalDefault: boolean;
  sync: { syncedAt: string | null; error: string | null };
  /** Which environments a push to their branch deploys. */
  autoDeploy: Record<string, boolean>;
}

export interface DeliveryOutcome {
  delivery: string;
  provider: string;
  outcome: "deployed" | "refreshed" | "ignored" | "duplicate";
  branch?: string;
  reason?: string;
  deployments: Array<{ environment: string; id: string }>;
  notDeployed: Array<{ environment: string; reason: string }>;
}

/** A webhook refused for its signature or its form: status and reason, nothing done (the route answers it). */
export class WebhookRejected extends Error {
  constructor(
    readonly status: 400 | 401 | 415,
    message: string,
  ) {
    super(message);
    this.name = "WebhookRejected";
  }
}

/** The one answer to a delivery refused before its signature was verified. */
const UNSIGNED = "the delivery is not signed with this app's webhook secret, or no webhook is set up for the app (its URL and secret: GET /v1/apps/{app}/hooks; content type application/json)";

/** How long a push waits for the mirror's refresh before it answers (the status follows it either way). */
const REFRESH_WAIT_MS = 8_000;

/**
 * Push webhooks: one endpoint per app, its own secret (sealed); a delivery is checked (signature
 * in constant time), recorded once (a delivery id seen before is ignored), refreshes the app's
 * mirror, and deploys the environments on the pushed branch whose `autoDeploy` is on. Every
 * delivery, refused or not, is in the activity feed with its outcome.
 */
export class HookService {
  private readonly rejections = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    private readonly sources: SourceSync,
    private readonly access: GitAccess,
    private readonly deployments: Pick<DeploymentService, "create">,
    private readonly log: Logger,
    private readonly opts: { publicUrl?: string; defaultPollSeconds: number },
  ) {}

  private async secretOf(app: apps.AppRow): Promise<string> {
    if (app.webhook_secret_encrypted) return this.box.decrypt(app.webhook_secret_encrypted);
    // Two first reads at once: the first write wins, both answer the stored secret.
    app.webhook_secret_encrypted = await apps.setWebhookSecretIfMissing(this.db, app.id, this.box.encrypt(randomBytes(24).toString("base64url")));
    return this.box.decrypt(app.webhook_secret_encrypted);
  }

  /** The hook's URL and secret (made on first ask): admins and the app's deployers set up their git host with it. */
  async get(by: Principal, appName: string, requestBase: string): Promise<HookView> {
    requireApp(by, appName);
    if (by.role === "viewer") throw new ForbiddenError("a viewer token does not see the webhook's secret");
    const app = await apps.getAppByName(this.db, appName);
    const envs = await apps.listEnvironments(this.db, app.id);
    const sync = this.sources.syncState(app);
    return {
      url: `${(this.opts.publicUrl ?? requestBase).replace(/\/+$/, "")}/v1/hooks/${encodeURIComponent(app.name)}`,
      secret: await this.secretOf(app),
      providers: ["github", "gitlab", "gitea", "forgejo", "bitbucket"],
      pollIntervalSeconds: app.poll_interval_seconds ?? this.opts.defaultPollSeconds,
      pollIntervalDefault: app.poll_interval_seconds === null,
      sync: { syncedAt: sync.syncedAt, error: sync.error },
      autoDeploy: Object.fromEntries(envs.map((e) => [e.name, autoDeployOf(e)])),
    };
  }

  /** A new secret: deliveries signed with the old one are refused from now on. */
  async rotate(by: Principal, appName: string, requestBase: string): Promise<HookView> {
    requireAdmin(by, "only an admin rotates a webhook's secret");
    const app = await apps.getAppByName(this.db, appName);
    await apps.setWebhookSecret(this.db, app.id, this.box.encrypt(randomBytes(24).toString("base64url")));
    await recordActivity(this.db, { actor: by.name, app: appName, action: "webhook.secret_rotated" });
    return this.get(by, appName, requestBase);
  }

  /** The repository's poll interval: seconds, 0 = never (webhooks only), null = the platform's default. */
  async setPollInterval(by: Principal, appName: string, seconds: number | null, requestBase: string): Promise<HookView> {
    requireApp(by, appName);
    if (seconds !== null && seconds !== 0 && seconds < 5) throw new InvalidRequestError("poll at most every 5 seconds (or 0: never)", { details: { pollIntervalSeconds: "below 5" } });
    const app = await apps.getAppByName(this.db, appName);
    await apps.setPollInterval(this.db, app.id, seconds);
    await recordActivity(this.db, { actor: by.name, app: appName, action: "repository.poll_interval_changed", details: { pollIntervalSeconds: seconds } });
    return this.get(by, appName, requestBase);
  }

  /**
   * Before the body is read: an app without a webhook (or no such app) is refused at once, so
   * nobody can make the platform read 5 MB bodies for nothing. Same answer as a bad signature.
   */
  async precheck(appName: string): Promise<void> {
    const app = await apps.findAppByName(this.db, appName);
    if (!app?.webhook_secret_encrypted) throw new WebhookRejected(401, UNSIGNED);
  }

  /** One delivery from a git host. Throws WebhookRejected (nothing done, the refusal recorded). */
  async receive(appName: string, headers: Record<string, string | string[] | undefined>, body: Buffer): Promise<DeliveryOutcome> {
    const app = await apps.findAppByName(this.db, appName);
    // Anyone may call this: whatever is refused before the signature is verified gets one answer,
    // which tells nobody whether the app exists or has a webhook.
    if (!app || !app.webhook_secret_encrypted) throw new WebhookRejected(401, UNSIGNED);
    const parsed = parsePushWebhook(headers, body, this.box.decrypt(app.webhook_secret_encrypted));
    if (parsed.kind === "rejected") {
      await this.throttled(app.name, "webhook.rejected", { status: parsed.status, reason: parsed.reason });
      // A 400 after a verified signature (bad JSON) may say why: the sender holds the secret.
      throw parsed.status === 400 && !/unknown sender|not a git host/i.test(parsed.reason) ? new WebhookRejected(400, parsed.reason) : new WebhookRejected(401, UNSIGNED);
    }
    const provider = parsed.kind === "push" ? parsed.event.provider : parsed.provider;
    const delivery = parsed.kind === "push" ? parsed.event.deliveryId : parsed.deliveryId;
    const actor = `webhook (${provider})`;
    // A delivery id seen before; and for pushes, the same branch moved to the same commit (a replay
    // under a new delivery id, or a git host sending one push twice): done once.
    const keys = [delivery, ...(parsed.kind === "push" ? [`push:${parsed.event.branch}@${parsed.event.after || "deleted"}`] : [])];
    const recorded: string[] = [];
    for (const k of keys) {
      if (await apps.recordWebhookDelivery(this.db, app.id, k, provider)) recorded.push(k);
      else {
        for (const r of recorded) await apps.forgetWebhookDelivery(this.db, app.id, r);
        await this.throttled(app.name, "webhook.duplicate", { delivery, ...(k !== delivery ? { push: k } : {}) }, actor);
        return { delivery, provider, outcome: "duplicate", reason: k === delivery ? "this delivery was received before" : "this push was received before", deployments: [], notDeployed: [] };
      }
    }
    const forget = async () => {
      for (const r of recorded) await apps.forgetWebhookDelivery(this.db, app.id, r).catch(() => undefined);
    };
    try {
      if (parsed.kind === "ignored") {
        await recordActivity(this.db, { actor, app: appName, action: "webhook.ignored", details: { delivery, reason: parsed.reason } });
        return { delivery, provider, outcome: "ignored", reason: parsed.reason, deployments: [], notDeployed: [] };
      }
      const outcome = await this.push(app, parsed.event, actor);
      // Not taken everywhere: a redelivery must be able to try again.
      if (outcome.failed) await forget();
      return outcome;
    } catch (err) {
      // Not taken (the database failed, say): the git host's redelivery must not read as a duplicate.
      await forget();
      throw err;
    }
  }

  /**
   * Refused and repeated deliveries are in the activity feed (and the log) at most once a minute per
   * app and kind, with how many more came meanwhile: whoever may call the endpoint must not be able
   * to flood either.
   */
  private async throttled(app: string, action: string, details: Record<string, unknown>, actor = "webhook"): Promise<void> {
    const key = `${app}\u0000${action}`;
    const now = Date.now();
    const last = this.rejections.get(key);
    if (last && now - last.at < 60_000) {
      last.suppressed++;
      return;
    }
    this.rejections.set(key, { at: now, suppressed: 0 });
    this.log.warn({ app, action, ...details, ...(last?.suppressed ? { moreSinceLastEntry: last.suppressed } : {}) }, "webhook delivery not taken");
    await recordActivity(this.db, { actor, app, action, details: { ...details, ...(last?.suppressed ? { moreSinceLastEntry: last.suppressed } : {}) } });
  }

  private async push(app: apps.AppRow, ev: PushEvent, actor: string): Promise<DeliveryOutcome & { failed: boolean }> {
    // The mirror first: the status of every environment on the branch counts the new commits.
    await Promise.race([this.sources.refresh(app), new Promise((r) => setTimeout(r, REFRESH_WAIT_MS).unref())]);
    const envs = (await apps.listEnvironments(this.db, app.id)).filter((e) => e.branch === ev.branch);
    const deployments: DeliveryOutcome["deployments"] = [];
    const notDeployed: DeliveryOutcome["notDeployed"] = [];
    let failed = false;
    const by: Principal = { tokenId: "webhook", name: actor, role: "admin", apps: [] };
    for (const e of envs) {
      if (ev.deleted) notDeployed.push({ environment: e.name, reason: "the branch was deleted" });
      else if (!autoDeployOf(e)) notDeployed.push({ environment: e.name, reason: "autoDeploy is off" });
      else {
        // A deployment already waits to run: it deploys the branch as it is when it starts, this push included.
        const waiting = await findWaitingDeployment(this.db, e.id);
        if (waiting) {
          deployments.push({ environment: e.name, id: waiting.id });
          continue;
        }
        try {
          // Behind a running deployment, not refused: the push must not be lost.
          const d = await this.deployments.create(by, app.name, e.name, { queue: true });
          deployments.push({ environment: e.name, id: d.id });
        } catch (err) {
          failed = true;
          // The platform's own words for what it refused (a data operation runs, no room); anything else stays in its log.
          const reason = err instanceof SlipwayError && err.httpStatus < 500 ? err.message : "internal error; see the control plane's log";
          if (!(err instanceof SlipwayError) || err.httpStatus >= 500) this.log.error({ err, app: app.name, environment: e.name }, "push webhook: deployment not created");
          notDeployed.push({ environment: e.name, reason });
        }
      }
    }
    const outcome = deployments.length > 0 ? "deployed" : "refreshed";
    await recordActivity(this.db, {
      actor,
      app: app.name,
      action: "webhook.push",
      details: { delivery: ev.deliveryId, branch: ev.branch, after: ev.after, ...(ev.pusher ? { pusher: ev.pusher } : {}), outcome, deployments, notDeployed },
    });
    this.log.info({ app: app.name, provider: ev.provider, branch: ev.branch, deployments: deployments.length }, "push webhook received");
    return { delivery: ev.deliveryId, provider: ev.provider, outcome, branch: ev.branch, deployments, notDeployed, failed };
  }

  /** The app's deploy key (made on first ask). */
  async deployKey(by: Principal, appName: string): Promise<{ publicKey: string; fingerprint: string; repository: string; used: boolean }> {
    requireApp(by, appName);
    const app = await apps.getAppByName(this.db, appName);
    const key = await this.access.deployKey(app);
    return { ...key, repository: app.repository, used: /^(ssh:\/\/|git\+ssh:\/\/|[\w.-]+@[\w.-]+:)/.test(app.repository) };
  }

  async rotateDeployKey(by: Principal, appName: string): Promise<{ publicKey: string; fingerprint: string; repository: string; used: boolean }> {
    requireAdmin(by, "only an admin rotates a deploy key");
    const app = await apps.getAppByName(this.db, appName);
    await this.access.rotateDeployKey(app);
    await recordActivity(this.db, { actor: by.name, app: appName, action: "deploy_key.rotated" });
    return this.deployKey(by, appName);
  }
}
