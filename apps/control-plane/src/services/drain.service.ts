import { ConflictError, NotFoundError, formatLabels, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as hosts from "../repositories/hosts.repository.js";
import { latestDrainStart, recordActivity } from "../repositories/activity.repository.js";
import { requireAdmin, type Principal } from "./auth.service.js";
import type { DeploymentService } from "./deployment.service.js";
import type { PlacementService } from "./placement.service.js";
import type { Lifecycle } from "./lifecycle.service.js";

export interface DrainProgress {
  /** running: moves go on; done: nothing left on the host; failed: a move failed and nothing moves any more; not_draining: the host is not draining. */
  state: "running" | "done" | "failed" | "not_draining";
  /** When the latest drain began (null: never drained). */
  startedAt: string | null;
  /** Environments still on the host (left), and those of them a deployment is moving right now. */
  environments: number;
  moving: number;
  /** Environments this drain moved off the host. */
  moved: number;
  remaining: Array<{ app: string; environment: string; deployment: string | null; state: string | null }>;
  /** Environments still on the host whose move failed or was cancelled, with the deployment's reason. */
  failed: Array<{ app: string; environment: string; deployment: string; state: string; reason: string }>;
}

/**
 * Drains a host: it takes no new environments, and every environment on it is
 * moved by an ordinary zero-downtime deployment on another online, active host
 * (least loaded first). When a move succeeds the old host forwards the
 * environment's traffic to the new host's ingress and removes its containers.
 */
export class DrainService {
  constructor(
    private readonly db: Db,
    private readonly lifecycle: Lifecycle,
    private readonly deployments: DeploymentService,
    private readonly placement: PlacementService,
    private readonly log: Logger,
  ) {}

  /**
   * Every environment that runs must have another online, active host with
   * its labels, else 409 and nothing changes (not even the host's state).
   */
  async drain(by: Principal, hostId: string): Promise<DrainProgress> {
    requireAdmin(by);
    const host = await hosts.findHost(this.db, hostId);
    if (!host) throw new NotFoundError(`host '${hostId}' does not exist`);
    const envs = await hosts.environmentsPlacedOn(this.db, hostId);
    const moves: Array<{ app: string; env: string; target: string; request: ReturnType<PlacementService["requestOf"]> }> = [];
    for (const e of envs) {
      if (!e.current_image) continue;
      // The moves planned before this one take their room on their targets: two never share the last room.
      const request = this.placement.requestOf(e);
      const pending = moves.map((m) => ({ hostId: m.target, request: m.request }));
      const choice = await this.placement.place(this.db, { constraints: e.host_labels ?? {}, exclude: hostId, request, environmentId: e.id, pending });
      if ("reason" in choice) {
        const labels = formatLabels(e.host_labels ?? {});
        if (choice.reason === "no_room") throw new ConflictError(`no other host can take ${e.app}/${e.name}: ${choice.message}; nothing was drained`);
        throw new ConflictError(`no other online, active host${labels ? ` with the labels ${labels}` : ""} can take ${e.app}/${e.name}; nothing was drained`);
      }
      moves.push({ app: e.app, env: e.name, target: choice.hostId, request });
    }
    await hosts.setHostAdminState(this.db, hostId, "draining");
    await recordActivity(this.db, { actor: by.name, action: "host.draining", details: { hostId, name: host.name } });
    // Nothing runs yet on the host for these: their next deployment places them elsewhere.
    const unstarted = envs.filter((e) => !e.current_image).map((e) => e.id);
    await this.lifecycle.place(this.db, unstarted, null, `host ${host.name} drains and nothing of theirs runs yet`);
    for (const m of moves) {
      await this.deployments.create({ ...by, role: "admin" }, m.app, m.env, { build: "auto", queue: true, moveTo: m.target }).catch((err: unknown) => {
        this.log.warn({ app: m.app, env: m.env, err: (err as Error).message }, "could not start the move");
        throw err;
      });
    }
    return this.progress(by, hostId);
  }

  async progress(by: Principal, hostId: string): Promise<DrainProgress> {
    requireAdmin(by);
    const host = await hosts.findHost(this.db, hostId);
    if (!host) throw new NotFoundError(`host '${hostId}' does not exist`);
    const rows = await hosts.drainProgress(this.db, hostId);
    const since = await latestDrainStart(this.db, hostId);
    // Per environment, its latest move since the drain began decides (an earlier failed one may have been retried).
    const latest = new Map<string, Awaited<ReturnType<typeof hosts.movesFromHost>>[number]>();
    for (const m of since ? await hosts.movesFromHost(this.db, hostId, since) : []) if (!latest.has(m.environment_id)) latest.set(m.environment_id, m);
    const moves = [...latest.values()];
    const moved = moves.filter((m) => m.state === "succeeded" && m.host_id !== hostId).length;
    const failed = moves
      .filter((m) => (m.state === "failed" || m.state === "cancelled") && m.host_id === hostId)
      .map((m) => ({ app: m.app, environment: m.environment, deployment: m.deployment, state: m.state, reason: reasonOf(m.error, m.state) }));
    const moving = rows.filter((r) => r.deployment).length;
    const state: DrainProgress["state"] = host.admin_state !== "draining" ? "not_draining" : rows.length === 0 ? "done" : moving === 0 && failed.length > 0 ? "failed" : "running";
    return { state, startedAt: since ? since.toISOString() : null, environments: rows.length, moving, moved, remaining: rows, failed };
  }
}

/** A failed deployment's reason as its error says it. */
function reasonOf(error: unknown, state: string): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === "string" && message ? message : `the move was ${state}`;
}
