import { labelsMatch, requestOf, type ResourceLimits } from "@slipway/core";
import type { Db } from "../db/database.js";
import { placementCandidates } from "../repositories/hosts.repository.js";
import { lockPlacementDecisions, roomTakers } from "../repositories/deployments.repository.js";
import { DEFAULT_RESOURCE_POLICY, limitsOf, type ResourcePolicy } from "./resource-policy.js";

/** What an environment asks of a host: its limits times its replicas. */
export interface Request {
  memoryBytes: number;
  cpus: number;
}

/** A host's capacity and what the environments placed on it request. */
export interface HostRoom {
  memoryBytes: number;
  /** Cores times the CPU overcommit. */
  cpus: number;
  requestedMemoryBytes: number;
  requestedCpus: number;
}

/** Where an environment can go: a host, or why none. */
export type PlacementChoice = { hostId: string } | { hostId?: undefined; reason: "no_host" | "no_room"; message: string };

const MiB = 1024 * 1024;

/** "512 MiB and 1 CPU" for messages. */
export function describeRequest(r: Request): string {
  return `${Math.round(r.memoryBytes / MiB)} MiB and ${Math.round(r.cpus * 100) / 100} CPU`;
}

/**
 * Chooses a host for an environment: an online, active (not cordoned, draining or revoked) host
 * that has every label of the environment's `hostLabels` and room for its request: memory
 * (limits × replicas) within the host's memory minus what its environments request (those placed
 * on it and those a move in flight brings to it), CPU within its cores × the overcommit minus theirs. Of those, the one with the most room left (the smaller of
 * its free memory and free CPU shares, after placing), then the fewest environments, then the
 * lowest CPU load. A host that reported no capacity (0) is taken to have room. No online host with
 * the labels: `no_host` (the job waits in the outbox until one is); hosts but no room: `no_room`,
 * with each one's figures.
 */
export class PlacementService {
  constructor(
    private readonly onlineWindowMs: () => number,
    readonly resources: ResourcePolicy = DEFAULT_RESOURCE_POLICY,
  ) {}

  /** The request of an environment as it would run now. */
  requestOf(env: { name: string; limits: Partial<ResourceLimits> | null; replicas: number }): Request {
    return requestOf(limitsOf(this.resources, env), env.replicas);
  }

  /**
   * Room of every online, active host (by id): what its environments request, and those a move in
   * flight is bringing to it; `except` is left out (it is being placed again); `only`: that host
   * alone (a few rows instead of every host's: a fleet of 10,000 hosts made this the bulk of every
   * deployment request, twice, once under the placement lock).
   * Inside a transaction, first takes the placement lock until the transaction ends, so that a
   * decision read here and written in the same transaction is never made on room another control
   * plane (or request) is giving away at the same moment. Callers that write a placement must do so
   * in that transaction; callers holding an environment's row lock take it before this one.
   */
  async room(db: Db, except?: string, only?: string, opts: { lock: boolean } = { lock: true }): Promise<Map<string, HostRoom & { labels: Record<string, string>; environments: number; cpu: number; name: string }>> {
    if (db.isTransaction && opts.lock) await lockPlacementDecisions(db);
    const since = new Date(Date.now() - this.onlineWindowMs());
    const hosts = await placementCandidates(db, since, only);
    const { placed, moving } = await roomTakers(db, hosts.map((h) => h.id));
    const out = new Map<string, HostRoom & { labels: Record<string, string>; environments: number; cpu: number; name: string }>();
    for (const h of hosts) {
      let mem = 0;
      let cpus = 0;
      let n = 0;
      // An environment being moved here takes its room from the moment the move is requested.
      for (const e of [...(placed.get(h.id) ?? []), ...(moving.get(h.id) ?? [])]) {
        n++;
        if (e.id === except) continue;
        const r = this.requestOf(e);
        mem += r.memoryBytes;
        cpus += r.cpus;
      }
      out.set(h.id, { name: h.name, labels: h.labels, environments: n, cpu: h.cpu, memoryBytes: h.capacity.memoryBytes, cpus: h.capacity.cpus * this.resources.cpuOvercommit, requestedMemoryBytes: mem, requestedCpus: cpus });
    }
    return out;
  }

  /**
   * A host for `request` (none: any online host with the labels), or why there is none. `pending`:
   * requests already promised to hosts by the same decision (a drain planning several moves) and
   * not yet recorded, counted like placed ones.
   */
  async place(db: Db, opts: { constraints?: Record<string, string>; exclude?: string; request?: Request; environmentId?: string; pending?: ReadonlyArray<{ hostId: string; request: Request }> } = {}): Promise<PlacementChoice> {
    const all = await this.room(db, opts.environmentId);
    for (const p of opts.pending ?? []) {
      const h = all.get(p.hostId);
      if (h) all.set(p.hostId, { ...h, environments: h.environments + 1, requestedMemoryBytes: h.requestedMemoryBytes + p.request.memoryBytes, requestedCpus: h.requestedCpus + p.request.cpus });
    }
    const rooms = [...all].filter(([id, h]) => id !== opts.exclude && labelsMatch(h.labels, opts.constraints ?? {}));
    if (rooms.length === 0) return { reason: "no_host", message: "no online, active host" + (Object.keys(opts.constraints ?? {}).length ? " with its labels" : "") };
    const req = opts.request ?? { memoryBytes: 0, cpus: 0 };
    const left = (h: HostRoom) => {
      const mem = h.memoryBytes > 0 ? (h.memoryBytes - h.requestedMemoryBytes - req.memoryBytes) / h.memoryBytes : 1;
      const cpu = h.cpus > 0 ? (h.cpus - h.requestedCpus - req.cpus) / h.cpus : 1;
      return Math.min(mem, cpu);
    };
    const fitting = rooms.filter(([, h]) => left(h) >= 0);
    if (fitting.length === 0) {
      const figures = rooms
        .map(([, h]) => `${h.name}: ${Math.round((h.memoryBytes - h.requestedMemoryBytes) / MiB)} MiB and ${Math.round((h.cpus - h.requestedCpus) * 100) / 100} CPU free`)
        .join("; ");
      return { reason: "no_room", message: `no host has room for ${describeRequest(req)} (${figures})` };
    }
    fitting.sort(([a, ha], [b, hb]) => left(hb) - left(ha) || ha.environments - hb.environments || ha.cpu - hb.cpu || a.localeCompare(b));
    return { hostId: fitting[0]![0] };
  }

  /**
   * Whether `hostId` (online or not) still has room for the environment's request, itself left out.
   * Without the placement lock: an environment that stays on its host changes no host's room (a
   * host's room is computed from the rows of the environments placed on it, this one's included,
   * whatever is decided here), so only decisions that place take the lock. With it, every
   * deployment request of a 5,000-host fleet queued behind the one before (dispatch p50 1.8 s).
   */
  async fits(db: Db, hostId: string, request: Request, environmentId: string): Promise<boolean> {
    const h = (await this.room(db, environmentId, hostId, { lock: false })).get(hostId);
    if (!h) return true;
    const memOk = h.memoryBytes <= 0 || h.requestedMemoryBytes + request.memoryBytes <= h.memoryBytes;
    const cpuOk = h.cpus <= 0 || h.requestedCpus + request.cpus <= h.cpus;
    return memOk && cpuOk;
  }

  /** As place(), the host id only: undefined when there is none. */
  async choose(db: Db, constraints: Record<string, string> = {}, exclude?: string, request?: Request): Promise<string | undefined> {
    return (await this.place(db, { constraints, ...(exclude ? { exclude } : {}), ...(request ? { request } : {}) })).hostId;
  }
}
