import { labelsMatch } from "@slipway/core";
import type { Db } from "../db/database.js";
import { placementCandidates } from "../repositories/hosts.repository.js";

/**
 * Chooses a host for an environment's first deployment: an online, active
 * (not cordoned/draining/revoked) host that has every label of the
 * environment's `hostLabels`, fewest environments first, then the lowest CPU
 * load. Returns undefined when no host is online; the job then
 * waits in the outbox until one is.
 */
export class PlacementService {
  constructor(private readonly onlineWindowMs: () => number) {}

  async choose(db: Db, constraints: Record<string, string> = {}, exclude?: string): Promise<string | undefined> {
    const since = new Date(Date.now() - this.onlineWindowMs());
    const candidates = (await placementCandidates(db, since)).filter((c) => c.id !== exclude && labelsMatch(c.labels, constraints));
    candidates.sort((a, b) => a.environments - b.environments || a.cpu - b.cpu || a.id.localeCompare(b.id));
    return candidates[0]?.id;
  }
}
