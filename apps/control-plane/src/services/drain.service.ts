import { ConflictError, NotFoundError, type Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import * as hosts from "../repositories/hosts.repository.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { requireAdmin, type Principal } from "./auth.service.js";
import type { DeploymentService } from "./deployment.service.js";
import type { PlacementService } from "./placement.service.js";

export interface DrainProgress {
  environments: number;
  moving: number;
  remaining: Array<{ app: string; environment: string; deployment: string | null; state: string | null }>;
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
    private readonly deployments: DeploymentService,
    private readonly placement: PlacementService,
    private readonly log: Logger,
  ) {}

  async drain(by: Principal, hostId: string): Promise<DrainProgress> {
    requireAdmin(by);
    const host = await hosts.findHost(this.db, hostId);
    if (!host) throw new NotFoundError(`host '${hostId}' does not exist`);
    await hosts.setHostAdminState(this.db, hostId, "draining");
    await recordActivity(this.db, { actor: by.name, action: "host.draining", details: { hostId, name: host.name } });
    const envs = await this.db
      .selectFrom("environments")
      .innerJoin("apps", "apps.id", "environments.app_id")
      .select(["environments.id", "environments.name", "environments.current_image", "apps.name as app"])
      .where("environments.host_id", "=", hostId)
      .execute();
    for (const e of envs) {
      if (!e.current_image) {
        // Nothing runs yet: the next deployment places it elsewhere.
        await this.db.updateTable("environments").set({ host_id: null }).where("id", "=", e.id).execute();
        continue;
      }
      const target = await this.placement.choose(this.db);
      if (!target || target === hostId) throw new ConflictError(`no other online, active host can take ${e.app}/${e.name}; the drain stops here`);
      await this.deployments.create({ ...by, role: "admin" }, e.app, e.name, { build: "auto", queue: true, moveTo: target }).catch((err: unknown) => {
        this.log.warn({ app: e.app, env: e.name, err: (err as Error).message }, "could not start the move");
        throw err;
      });
    }
    return this.progress(by, hostId);
  }

  async progress(by: Principal, hostId: string): Promise<DrainProgress> {
    requireAdmin(by);
    const rows = await this.db
      .selectFrom("environments")
      .innerJoin("apps", "apps.id", "environments.app_id")
      .leftJoin("deployments", (j) => j.onRef("deployments.environment_id", "=", "environments.id").on("deployments.moved_from_host_id", "=", hostId).on("deployments.state", "not in", ["succeeded", "failed", "cancelled"]))
      .select(["apps.name as app", "environments.name as environment", "deployments.id as deployment", "deployments.state as state"])
      .where("environments.host_id", "=", hostId)
      .execute();
    return { environments: rows.length, moving: rows.filter((r) => r.deployment).length, remaining: rows };
  }
}
