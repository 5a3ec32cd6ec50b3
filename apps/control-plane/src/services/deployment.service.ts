import { randomUUID } from "node:crypto";
import {
  ConflictError,
  NotFoundError,
  InvalidRequestError,
  PreconditionFailedError,
  backupLocation,
  isTerminalDeploymentState,
  formatLabels,
  labelsMatch,
  type AppSettings,
  type DeploymentState,
} from "@slipway/core";
import type { Db } from "../db/database.js";
import * as apps from "../repositories/apps.repository.js";
import * as deployments from "../repositories/deployments.repository.js";
import { findHost } from "../repositories/hosts.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { requireApp, type Principal } from "./auth.service.js";
import type { AppService } from "./app.service.js";
import { describeRequest, type PlacementService } from "./placement.service.js";
import { limitsOf } from "./resource-policy.js";
import type { EnvironmentService } from "./environment.service.js";
import { refuseWhileActive } from "../data/data.service.js";
import { insertBackup, insertContentCopy } from "../data/data.repository.js";
import { UniqueViolationError } from "../repositories/unique-violation.js";
import type { Lifecycle } from "./lifecycle.service.js";
import type { BuildMode, DeployJobSpec } from "./deploy-spec.js";

export type { BuildMode, DeployJobSpec } from "./deploy-spec.js";

/** A job its transaction committed with a host, ready to be published. */
export interface CommittedJob {
  id: string;
  hostId: string;
  kind: string;
  deploymentId: string | null;
}

export interface DeploymentInput {
  build?: BuildMode;
  queue?: boolean;
  content?: DeploymentContentInput;
  /** Deploy exactly the image this environment of the app runs. */
  promoteFrom?: string;
  /** Deploy an earlier successful deployment of the environment again (its image, settings and variables). */
  rollbackTo?: string;
  /** A rollback runs the release commands only when asked. */
  runReleaseCommands?: boolean;
  /** Drains only: run this deployment on another host. */
  moveTo?: string;
}

/** Where a promotion's or a rollback's image comes from. */
interface ImageOrigin {
  kind: "promote" | "rollback";
  image: string;
  /** The image id shipped then: another image under the tag now is refused by the agent. */
  imageDigest?: string;
  sourceDeploymentId: string | null;
  promotedFrom: string | null;
  /** An environment never placed goes where the image is. */
  placeOn?: string;
  rollback?: { row: deployments.DeploymentRow; spec: DeployJobSpec };
  preamble: string[];
}

export interface DeploymentContentInput {
  from: string;
  database?: boolean;
  media?: boolean;
  confirm?: boolean;
}

export interface DeploymentView {
  id: string;
  app: string;
  environment: string;
  state: string;
  build: string;
  commit: string | null;
  image: string | null;
  steps: deployments.StepRecord[];
  error: unknown;
  requestedBy: string;
  /** deploy (from the branch), promote (another environment's image) or rollback (an earlier deployment's image). */
  kind: string;
  /** rollback: the deployment rolled back to; promote: the source environment's deployment whose image it ships. */
  sourceDeployment: string | null;
  /** promote: the environment promoted from. */
  promotedFrom: string | null;
  /** The image id (sha256:…) it shipped. */
  imageDigest: string | null;
  /** Queued behind the environment's running deployment. */
  waiting: boolean;
  /** In listings: its image is still kept and it can be rolled back to (`{"rollbackTo": id}`). */
  rollbackable?: boolean;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export class DeploymentService {
  constructor(
    private readonly db: Db,
    private readonly lifecycle: Lifecycle,
    private readonly appService: AppService,
    private readonly placement: PlacementService,
    /** A job was queued; `committed`: a deployment's job committed with its host, to publish now. */
    private readonly onJobQueued: (committed?: CommittedJob) => void,
    /** Resolved lazily: the environment service and this one know each other. */
    private readonly runtime: () => Pick<EnvironmentService, "runtimeSpec" | "rollbackVariablesSealed">,
    /**
     * The environment's database and media storage, created before its first deployment
     * (`ensure`, idempotent); `ready`: ensure would change nothing.
     */
    private readonly data?: { ensure(app: apps.AppRow, env: apps.EnvironmentRow): Promise<void>; ready(env: apps.EnvironmentRow): boolean },
    /** Successful deployments per environment whose images the agents keep for rollbacks (SLIPWAY_ROLLBACK_IMAGES). */
    private readonly rollbackImages = 5,
  ) {}

  /**
   * Where a deployment runs. An environment is placed at its first deployment
   * on a host with all its `hostLabels` and then stays there, unless a drain
   * moves it (`moveTo`) or its labels changed so that its host no longer
   * matches: then this deployment moves it to a matching host (zero downtime,
   * the old host hands its traffic over when it succeeds), or is refused with
   * 409 when no online, active host matches. Before anything ran (no image
   * yet) the environment is simply placed again.
   */
  private async hostFor(trx: Db, app: apps.AppRow, env: apps.EnvironmentRow, moveTo?: string): Promise<{ hostId: string | undefined; movedFrom: string | null }> {
    const p = await this.placementFor(trx, app, env, moveTo);
    if (p.place) await this.lifecycle.place(trx, [env.id], p.hostId!, p.place);
    return { hostId: p.hostId, movedFrom: p.movedFrom };
  }

  /**
   * Where the deployment runs, and whether the environment is placed there now (why), without
   * writing: 409 when it cannot run. An environment stays on its host while the host has its labels
   * and room for its request (limits × replicas, itself left out); otherwise it moves to the host
   * with the most room that has both, or the deployment is refused naming why.
   */
  private async placementFor(db: Db, app: apps.AppRow, env: apps.EnvironmentRow, moveTo?: string): Promise<{ hostId: string | undefined; movedFrom: string | null; place?: string }> {
    if (moveTo) return { hostId: moveTo, movedFrom: env.host_id && env.host_id !== moveTo ? env.host_id : null };
    const wanted = env.host_labels ?? {};
    const request = this.placement.requestOf(env);
    const label = `${app.name}/${env.name}`;
    if (env.host_id) {
      // The host's row is read when its labels matter, or to say why the environment must move.
      const labelled = Object.keys(wanted).length > 0;
      const current = labelled ? await findHost(db, env.host_id) : undefined;
      const hasLabels = !current || labelsMatch(current.labels, wanted);
      if (hasLabels && (await this.placement.fits(db, env.host_id, request, env.id))) return { hostId: env.host_id, movedFrom: null };
      const host = current ?? (await findHost(db, env.host_id));
      const target = await this.placement.place(db, { constraints: wanted, request, environmentId: env.id });
      const why = hasLabels ? `its host ${host!.name} has no room for ${describeRequest(request)}` : `its host ${host!.name} lacks the labels ${formatLabels(wanted)}`;
      if ("reason" in target) {
        const labels = formatLabels(wanted);
        if (!hasLabels && target.reason === "no_host") throw new ConflictError(`${label} must move: its host ${host!.name} lacks the labels ${labels}, and no online, active host has them`, { details: { hostLabels: labels } });
        throw new ConflictError(`${label} must move: ${why}, and ${target.message}`, { details: { reason: target.reason, ...(labels ? { hostLabels: labels } : {}) } });
      }
      if (!env.current_image) return { hostId: target.hostId, movedFrom: null, place: `${why} and nothing runs yet` };
      return { hostId: target.hostId, movedFrom: env.host_id };
    }
    const placed = await this.placement.place(db, { constraints: wanted, request, environmentId: env.id });
    // No host online yet: the job waits in the outbox. Hosts, but none with room: refused now.
    if ("reason" in placed && placed.reason === "no_room") throw new ConflictError(`${label} cannot be placed: ${placed.message}`, { details: { reason: "no_room" } });
    return { hostId: placed.hostId, movedFrom: null, ...(placed.hostId ? { place: "first deployment" } : {}) };
  }

  /**
   * Writes the deployment row and its job in one transaction (the outbox);
   * the publisher moves the job to NATS. 409 when one is already active.
   * `moveTo` (drains only): run this deployment on another host; when it succeeds the
   * environment belongs to that host and the old one hands its traffic over.
   */
  async create(by: Principal, appName: string, envName: string, input: DeploymentInput): Promise<DeploymentView> {
    requireApp(by, appName);
    if (input.build === "image") throw new InvalidRequestError(`build "image" is not asked for: use "promoteFrom" or "rollbackTo"`, { details: { build: "invalid" } });
    if (input.promoteFrom !== undefined && input.rollbackTo !== undefined) throw new InvalidRequestError("a deployment promotes or rolls back, not both", { details: { promoteFrom: "with rollbackTo" } });
    if ((input.promoteFrom !== undefined || input.rollbackTo !== undefined) && input.build !== undefined) throw new InvalidRequestError(`"build" does not go with "promoteFrom" or "rollbackTo": they build nothing`, { details: { build: "with promoteFrom or rollbackTo" } });
    if (input.rollbackTo !== undefined && input.content) throw new InvalidRequestError("a rollback copies no content: restore a backup for that", { details: { content: "with rollbackTo" } });
    if (input.runReleaseCommands !== undefined && input.rollbackTo === undefined) throw new InvalidRequestError(`"runReleaseCommands" is for rollbacks (other deployments always run them)`, { details: { runReleaseCommands: "without rollbackTo" } });
    const buildMode: BuildMode = input.promoteFrom !== undefined || input.rollbackTo !== undefined ? "image" : (input.build ?? "auto");
    const id = randomUUID();
    const jobId = randomUUID();
    const content = input.content;
    const app0 = await apps.getAppByName(this.db, appName);
    const target = await apps.getEnvironment(this.db, app0, envName);
    let source0: apps.EnvironmentRow | undefined;
    if (content) {
      if (content.from === envName) throw new InvalidRequestError(`cannot deploy the content of ${appName}/${envName} into itself`, { details: { "content.from": "same as the target" } });
      if (content.database === false && content.media === false) throw new InvalidRequestError("content needs database, media or both");
      source0 = await apps.getEnvironment(this.db, app0, content.from);
      if (content.confirm !== true) throw new PreconditionFailedError(`deploying the content of ${content.from} replaces the content of ${appName}/${envName}: send "content": {"confirm": true, ...}`);
    }
    // Provisioning runs outside the transaction below, so everything that refuses the request is
    // checked before it: a refused request changes nothing. Once provisioned (every deployment but an
    // environment's first, on this process), the transaction's own checks, under the environment's
    // lock, are the only ones: the same refusals, a third of the request's queries fewer.
    // In the order they are provisioned: the content's source first, then the target.
    const unprovisioned = this.data ? [...(source0 ? [source0] : []), target].filter((e) => !this.data!.ready(e)) : [];
    if (unprovisioned.length > 0) {
      await this.refusals(this.db, app0, target, buildMode, input.queue === true);
      const origin0 = await this.imageOrigin(this.db, app0, target, input);
      // A promotion into an environment not serving yet goes where the image is (checked as if placed there).
      await this.placementFor(this.db, app0, origin0?.placeOn && !input.moveTo ? { ...target, host_id: origin0.placeOn } : target, input.moveTo);
      for (const e of unprovisioned) await this.data!.ensure(app0, e);
    }
    const created = await this.db
      .transaction()
      .execute(async (trx) => {
        // The environment as it is under its lock (the app's row is not locked: read above, as before).
        const app = app0;
        const env = await apps.lockEnvironmentRow(trx, target.id);
        if (!env) throw new NotFoundError(`environment '${envName}' of app '${appName}' no longer exists`);
        const active = await this.refusals(trx, app, env, buildMode, input.queue === true, { locked: true });
        const origin = await this.imageOrigin(trx, app, env, input);
        if (origin?.placeOn && !input.moveTo && env.host_id !== origin.placeOn) {
          await this.lifecycle.place(trx, [env.id], origin.placeOn, `promotion from ${origin.promotedFrom}: placed where its image is`);
          env.host_id = origin.placeOn;
        }
        const { hostId, movedFrom } = await this.hostFor(trx, app, env, input.moveTo);
        const rt = await this.runtime().runtimeSpec(trx, app, env, { fresh: true });
        const spec: DeployJobSpec = {
          deploymentId: id,
          app: app.name,
          environment: env.name,
          repository: app.repository,
          ...(app.repository_credential_encrypted ? { repositoryCredentialSealed: app.repository_credential_encrypted } : {}),
          branch: env.branch,
          buildMode,
          currentImage: env.current_image,
          settings: app.settings as AppSettings,
          replicas: env.replicas,
          limits: limitsOf(this.placement.resources, env),
          environmentId: env.id,
          hostnames: rt.hostnames,
          variablesSealed: rt.variablesSealed,
          basicAuth: rt.basicAuth,
          sleepAfterSeconds: rt.sleepAfterSeconds,
          https: rt.https,
        };
        if (origin) {
          spec.image = origin.image;
          if (origin.imageDigest) spec.imageDigest = origin.imageDigest;
          spec.preamble = origin.preamble;
          if (origin.rollback) {
            // As it was then: its settings, replicas and (the user's) variables; the data services as they are now.
            const old = origin.rollback.spec;
            spec.settings = old.settings;
            spec.replicas = old.replicas;
            spec.variablesSealed = this.runtime().rollbackVariablesSealed(app, env, old.variablesSealed);
            spec.skipRelease = input.runReleaseCommands !== true;
          }
        }
        if (content) {
          const source = await apps.getEnvironment(trx, app, content.from);
          const safetyId = randomUUID();
          const database = content.database ?? true;
          const media = content.media ?? true;
          await insertBackup(trx, { id: safetyId, app: appName, environment: envName, environmentId: env.id, kind: "safety", database, media, prefix: backupLocation(env.id, safetyId), requestedBy: by.name, jobId });
          await insertContentCopy(trx, { id: randomUUID(), app: appName, source: content.from, target: envName, sourceEnvironmentId: source.id, targetEnvironmentId: env.id, kind: "copy", database, media, safetyBackupId: safetyId, requestedBy: by.name, deploymentId: id, jobId });
          spec.content = { action: "copy", app: appName, environment: envName, targetEnvironmentId: env.id, sourceEnvironmentId: source.id, database, media, safetyBackupId: safetyId };
        }
        const row = await this.lifecycle.createDeployment(
          trx,
          {
            id,
            appId: app.id,
            environmentId: env.id,
            buildMode,
            // A rollback deploys the configuration of its deployment: what changed since shows as unapplied.
            configRevision: origin?.rollback ? origin.rollback.row.config_revision : env.config_revision,
            settingsRevision: origin?.rollback ? origin.rollback.row.settings_revision : app.settings_revision,
            requestedBy: by.name,
            waiting: active !== undefined,
            hostId: hostId ?? null,
            movedFromHostId: movedFrom,
            ...(origin ? { kind: origin.kind, sourceDeploymentId: origin.sourceDeploymentId, promotedFrom: origin.promotedFrom } : {}),
          },
          { id: jobId, hostId: hostId ?? null, spec, environmentId: env.id },
        );
        await recordActivity(trx, {
          actor: by.name,
          app: appName,
          environment: envName,
          action: "deployment.requested",
          details: { deployment: id, build: buildMode, ...(origin ? { kind: origin.kind, image: origin.image, ...(origin.sourceDeploymentId ? { from: origin.sourceDeploymentId } : {}), ...(origin.promotedFrom ? { promotedFrom: origin.promotedFrom } : {}) } : {}), ...(active ? { queuedBehind: active.id } : {}) },
        });
        return row;
      })
      .catch((err: unknown) => {
        if (err instanceof UniqueViolationError && err.constraint === "content_one_active") throw new ConflictError(`a content copy or restore into ${appName}/${envName} is already running`);
        if (err instanceof UniqueViolationError) throw new ConflictError(`a deployment of ${appName}/${envName} is already running`);
        throw err;
      });
    // Placed and not waiting behind another: published right away (the outbox's run is the fallback).
    this.onJobQueued(created.host_id && !created.waiting ? { id: jobId, hostId: created.host_id, kind: "deploy", deploymentId: id } : undefined);
    // As created (the agent may have moved it on since: GET shows that).
    return toView(created, app0.name, target.name);
  }

  /**
   * Why `create` refuses, if it does: a data operation runs (a deployment with content is itself
   * one), another deployment runs and this one may not queue, or there is no image to reuse.
   * Returns the running deployment this one queues behind. Checked in the writing transaction under
   * the environment's lock (`locked`: taken by the caller), and before that without a lock when the
   * request would provision the environment's data first.
   */
  private async refusals(db: Db, app: apps.AppRow, env: apps.EnvironmentRow, buildMode: BuildMode, queue: boolean, opts: { locked?: boolean } = {}): Promise<{ id: string; state: string } | undefined> {
    const op = await refuseWhileActive(db, env.id, `${app.name}/${env.name}`, "deployment", opts);
    const active = op?.kind === "deployment" ? op : undefined;
    if (active && !queue) {
      throw new ConflictError(`deployment ${active.id} of ${app.name}/${env.name} is still ${active.state}; wait for it, cancel it, or pass "queue": true to run this one after it`, { details: { deployment: active.id } });
    }
    if (buildMode === "reuse" && !env.current_image) throw new ConflictError(`environment '${env.name}' has never been deployed: there is no image to reuse`);
    return active;
  }

  /**
   * What a promotion or a rollback deploys (undefined for a deployment from the branch), or why it
   * cannot: 404 for an unknown environment or deployment, 409 when there is no image to take.
   */
  private async imageOrigin(db: Db, app: apps.AppRow, env: apps.EnvironmentRow, input: DeploymentInput): Promise<ImageOrigin | undefined> {
    const label = `${app.name}/${env.name}`;
    if (input.promoteFrom !== undefined) {
      if (input.promoteFrom === env.name) throw new InvalidRequestError(`cannot promote ${label} to itself`, { details: { promoteFrom: "same as the target" } });
      const source = await apps.getEnvironment(db, app, input.promoteFrom);
      if (!source.current_image) throw new ConflictError(`${app.name}/${source.name} runs no image yet: deploy it first`);
      // Images are not copied between hosts (yet): the target runs where the source's image is. One
      // that serves elsewhere is refused; one that serves nothing yet is placed there, if that host has its labels.
      let placeOn: string | undefined;
      if (source.host_id && env.host_id !== source.host_id) {
        if (env.host_id && env.current_image) {
          throw new ConflictError(`${app.name}/${source.name} and ${label} run on different hosts, and images are not copied between hosts: deploy ${label} from its branch`, { details: { promoteFrom: "on another host" } });
        }
        const host = await findHost(db, source.host_id);
        if (host && !labelsMatch(host.labels, env.host_labels ?? {})) {
          throw new ConflictError(`${label} must run on a host with the labels ${formatLabels(env.host_labels ?? {})}, and ${app.name}/${source.name}'s image is on ${host.name}, which lacks them: deploy ${label} from its branch`, { details: { promoteFrom: "host lacks the labels" } });
        }
        placeOn = source.host_id;
      }
      const shipped = await deployments.latestSucceededWithImage(db, source.id, source.current_image);
      const digest = shipped?.image_digest ? ` (${shipped.image_digest})` : "";
      return {
        kind: "promote",
        image: source.current_image,
        sourceDeploymentId: shipped?.id ?? null,
        promotedFrom: source.name,
        ...(placeOn ? { placeOn } : {}),
        ...(shipped?.image_digest ? { imageDigest: shipped.image_digest } : {}),
        preamble: [
          `promoting ${app.name}/${source.name}'s image ${source.current_image}${digest} to ${label}: nothing is built`,
          `${label} runs it with its own variables and settings; the release commands run as usual`,
        ],
      };
    }
    if (input.rollbackTo !== undefined) {
      const row = await deployments.findDeployment(db, input.rollbackTo);
      if (!row || row.environment_id !== env.id) throw new NotFoundError(`deployment '${input.rollbackTo}' is not a deployment of ${label}`);
      if (row.state !== "succeeded" || !row.image) throw new ConflictError(`deployment ${row.id} did not succeed (${row.state}): only a successful deployment can be rolled back to`);
      const kept = await deployments.rollbackCandidates(db, env.id, this.rollbackImages);
      if (!kept.some((k) => k.image === row.image)) {
        throw new ConflictError(`deployment ${row.id} is older than the last ${this.rollbackImages} images kept for ${label}: deploy its commit from the branch instead`, { details: { rollbackTo: "image not kept" } });
      }
      const job = await deployments.findJobByDeployment(db, row.id);
      if (!job) throw new ConflictError(`deployment ${row.id} has no recorded specification to roll back to`);
      return {
        kind: "rollback",
        image: row.image,
        ...(row.image_digest ? { imageDigest: row.image_digest } : {}),
        sourceDeploymentId: row.id,
        promotedFrom: null,
        rollback: { row, spec: job.spec as DeployJobSpec },
        preamble: [
          `rolling ${label} back to deployment ${row.id} (${row.finished_at?.toISOString() ?? "?"}): image ${row.image}${row.image_digest ? ` (${row.image_digest})` : ""}, commit ${row.commit ?? "?"}, with its settings and variables of then`,
          "the database is NOT rolled back: its schema and data stay as they are now (restore a backup for that)",
        ],
      };
    }
    return undefined;
  }

  async list(by: Principal, appName: string, envName: string, limit = 50, beforeId?: string): Promise<DeploymentView[]> {
    requireApp(by, appName);
    const app = await apps.getAppByName(this.db, appName);
    const env = await apps.getEnvironment(this.db, app, envName);
    let before: deployments.DeploymentRow | undefined;
    if (beforeId !== undefined) {
      before = await deployments.findDeployment(this.db, beforeId);
      if (!before || before.environment_id !== env.id) throw new InvalidRequestError(`before: '${beforeId}' is not a deployment of ${app.name}/${env.name}`, { details: { before: "not a deployment of this environment" } });
    }
    const rows = await deployments.listDeployments(this.db, env.id, limit, before);
    // What can be rolled back to: the kept images, except the one serving now.
    const kept = new Set((await deployments.rollbackCandidates(this.db, env.id, this.rollbackImages)).map((d) => d.image).filter((i) => i !== env.current_image));
    return rows.map((d) => ({ ...toView(d, app.name, env.name), rollbackable: d.state === "succeeded" && d.image !== null && kept.has(d.image) }));
  }

  async get(by: Principal, id: string): Promise<DeploymentView> {
    const { deployment, app, env } = await this.load(id);
    requireApp(by, app.name);
    return toView(deployment, app.name, env.name);
  }

  /** The log as text after `afterSeq`, and the last seq read. */
  async readLog(by: Principal, id: string, afterSeq: number): Promise<{ text: string; lastSeq: number; finished: boolean }> {
    const { deployment, app } = await this.load(id);
    requireApp(by, app.name);
    const lines = await deployments.readLog(this.db, id, afterSeq);
    const lastSeq = lines.length ? lines[lines.length - 1]!.seq : afterSeq;
    return { text: lines.map((l) => l.text + "\n").join(""), lastSeq, finished: logComplete(deployment) };
  }

  /**
   * Cancels before `switching`. A job the agent has not started is cancelled
   * at once; a running one is flagged and stopped by the agent at its next
   * step boundary.
   */
  async cancel(by: Principal, id: string): Promise<DeploymentView> {
    const { app } = await this.load(id);
    requireApp(by, app.name);
    await this.db.transaction().execute(async (trx) => {
      const d = await deployments.findDeploymentForUpdate(trx, id);
      if (!d) return;
      const state = d.state as DeploymentState;
      if (isTerminalDeploymentState(state)) throw new ConflictError(`deployment ${id} has already ended (${state})`);
      if (state === "switching") throw new ConflictError(`deployment ${id} is switching traffic and can no longer be cancelled`);
      const job = await deployments.findJobByDeployment(trx, id);
      if (job && job.state === "queued") {
        await this.lifecycle.cancelQueuedDeployment(trx, d, job, by.name);
      } else {
        await deployments.updateDeployment(trx, id, { cancel_requested_at: new Date() });
      }
      await recordActivity(trx, { actor: by.name, app: app.name, action: "deployment.cancel_requested", details: { deployment: id } });
    });
    this.onJobQueued();
    return this.get(by, id);
  }

  private async load(id: string) {
    const deployment = await deployments.findDeployment(this.db, id);
    if (!deployment) throw new NotFoundError(`deployment '${id}' does not exist`);
    const env = await apps.findEnvironmentById(this.db, deployment.environment_id);
    const app = env ? await apps.findAppById(this.db, env.app_id) : undefined;
    if (!env || !app) throw new NotFoundError(`deployment '${id}' does not exist`);
    return { deployment, env, app };
  }
}

/** How long a followed log waits, after a success, for the cleanup that follows the switch. */
const CLEANUP_LOG_WAIT_MS = 15_000;

/**
 * Whether a deployment's log has all its lines: it ended and, after a
 * success, the cleanup that follows the switch has ended too (or was never
 * reported within CLEANUP_LOG_WAIT_MS: its agent stopped during it).
 */
export function logComplete(d: deployments.DeploymentRow, now = Date.now()): boolean {
  if (!isTerminalDeploymentState(d.state as DeploymentState)) return false;
  if (d.state !== "succeeded") return true;
  const cleanup = (d.steps as deployments.StepRecord[]).find((s) => s.name === "cleanup");
  if (cleanup && cleanup.state !== "running") return true;
  return d.finished_at !== null && now - d.finished_at.getTime() > CLEANUP_LOG_WAIT_MS;
}

export function toView(d: deployments.DeploymentRow, app: string, env: string): DeploymentView {
  return {
    id: d.id,
    app,
    environment: env,
    state: d.state,
    build: d.build_mode,
    commit: d.commit,
    image: d.image,
    steps: d.steps as deployments.StepRecord[],
    error: d.error,
    requestedBy: d.requested_by,
    kind: d.kind,
    sourceDeployment: d.source_deployment_id,
    promotedFrom: d.promoted_from,
    imageDigest: d.image_digest,
    waiting: d.waiting,
    queuedAt: d.queued_at.toISOString(),
    startedAt: d.started_at ? d.started_at.toISOString() : null,
    finishedAt: d.finished_at ? d.finished_at.toISOString() : null,
  };
}
