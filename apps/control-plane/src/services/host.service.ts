import { randomUUID } from "node:crypto";
import { ConflictError, UnauthenticatedError, NotFoundError, requestOf, type HostState, type Logger } from "@slipway/core";
import { DEFAULT_RESOURCE_POLICY, limitsOf, type ResourcePolicy } from "./resource-policy.js";
import type { Db } from "../db/database.js";
import * as hosts from "../repositories/hosts.repository.js";
import { findAppById, findEnvironmentById, setLastIncident } from "../repositories/apps.repository.js";
import { UniqueViolationError } from "../repositories/unique-violation.js";
import { consumeJoinToken } from "../repositories/tokens.repository.js";
import { HeartbeatWriter, type HeartbeatInput } from "./heartbeat-writer.js";
import { recordActivity } from "../repositories/activity.repository.js";
import { generateToken, hashToken, requireAdmin, type Principal } from "./auth.service.js";
import type { Lifecycle } from "./lifecycle.service.js";

// Defined beside the writer that batches it (host service → writer, never back).
export type { HeartbeatInput } from "./heartbeat-writer.js";

export interface HostView {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: HostState | "revoked";
  /** What an admin set (active, cordoned, draining, revoked); `state` shows offline over it. */
  adminState: hosts.HostRow["admin_state"];
  lastHeartbeatAt: string | null;
  ingressAddress: string | null;
  version: string;
  capacity: unknown;
  /** What its environments request (limits × replicas), against what placement allows: memory, and cores × the CPU overcommit. */
  requested: { memoryBytes: number; cpus: number };
  allocatable: { memoryBytes: number; cpus: number };
  load: unknown;
  environments: Array<{ app: string; environment: string }>;
}

export class HostService {
  private readonly writer: HeartbeatWriter;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly opts: { heartbeatIntervalMs: number; heartbeatMissLimit: number; heartbeatFlushMs?: number; lifecycle: Lifecycle; onRevoked?: (hostId: string) => Promise<void>; resources?: ResourcePolicy },
  ) {
    this.writer = new HeartbeatWriter(db, log, opts.heartbeatFlushMs ?? 100, opts.lifecycle);
  }

  /** The window in which a heartbeat counts as "online". */
  onlineWindowMs(): number {
    return this.opts.heartbeatIntervalMs * this.opts.heartbeatMissLimit;
  }

  /** Trades a one-time join token for a host id and a credential (stored hashed). */
  async register(input: { joinToken: string; hostname: string; labels: Record<string, string>; capacity: HeartbeatInput["capacity"]; version: string; ingressAddress?: string }): Promise<{ hostId: string; credential: string }> {
    const credential = generateToken("slwagent");
    const hostId = randomUUID();
    await this.db.transaction().execute(async (trx) => {
      if (!(await consumeJoinToken(trx, hashToken(input.joinToken), new Date()))) {
        throw new UnauthenticatedError("join token is invalid, expired or already used");
      }
      await hosts.insertHost(trx, { id: hostId, name: input.hostname, labels: input.labels, credentialHash: hashToken(credential), version: input.version, capacity: input.capacity, ...(input.ingressAddress ? { ingressAddress: input.ingressAddress } : {}) });
      await recordActivity(trx, { actor: `host:${input.hostname}`, action: "host.registered", details: { hostId, labels: input.labels } });
    });
    this.log.info({ hostId, hostname: input.hostname }, "host registered");
    return { hostId, credential };
  }

  /**
   * Makes `publicKey` (an nkey the agent generated; checked by the caller) the host's NATS user.
   * Answers whether it changed; a key another host holds is refused. A replaced key is in the
   * activity feed (the agent's state was lost, or someone holding its credential set one).
   */
  async setNatsKey(host: hosts.HostRow, publicKey: string): Promise<boolean> {
    if (host.nats_public_key === publicKey) return false;
    await this.db.transaction().execute(async (trx) => {
      try {
        await hosts.setHostNatsKey(trx, host.id, publicKey);
      } catch (err) {
        if (err instanceof UniqueViolationError) throw new ConflictError("this NATS key belongs to another host: generate a new one");
        throw err;
      }
      if (host.nats_public_key) await recordActivity(trx, { actor: `host:${host.name}`, action: "host.nats_key_replaced", details: { hostId: host.id, publicKey } });
    });
    this.log.info({ hostId: host.id, publicKey, replaced: Boolean(host.nats_public_key) }, "host's NATS key recorded");
    return true;
  }

  /**
   * Containers of the host's environments that were killed ("killed: out of memory"): each
   * becomes the environment's last incident (with a running count) and an activity entry. Only
   * the host's own environments; one already recorded (a beat sent again) is ignored.
   */
  /** What the host's ingress serves (issue 15), as its agent reports it when it changed. */
  async recordServedCertificates(hostId: string, served: Array<{ hostnames: string[]; serial: string; notAfter?: Date | undefined }>): Promise<void> {
    const rows = served.slice(0, 10_000).map((c) => ({ hostnames: c.hostnames.slice(0, 100).map((h) => h.slice(0, 253).toLowerCase()), serial: c.serial.slice(0, 64).toUpperCase(), notAfter: (c.notAfter ?? new Date(0)).toISOString() }));
    await hosts.recordServedCertificates(this.db, hostId, rows, new Date());
  }

  async recordIncidents(hostId: string, incidents: Array<{ environmentId: string; container: string; reason: string; at: Date }>): Promise<number> {
    let recorded = 0;
    for (const i of incidents) {
      const reason = i.reason.slice(0, 200);
      await this.db.transaction().execute(async (trx) => {
        const env = /^[0-9a-f-]{36}$/i.test(i.environmentId) ? await findEnvironmentById(trx, i.environmentId) : undefined;
        if (!env || env.host_id !== hostId) return;
        const at = i.at.toISOString();
        const last = env.last_incident;
        if (last && last.at === at && last.container === i.container) return;
        const app = await findAppById(trx, env.app_id);
        await setLastIncident(trx, env.id, { at, reason, container: i.container, count: (last?.count ?? 0) + 1 });
        await recordActivity(trx, { actor: `host:${hostId}`, app: app?.name ?? "", environment: env.name, action: "container.killed", details: { container: i.container, reason, at } });
        recorded++;
      });
    }
    if (recorded) this.log.warn({ hostId, recorded }, "containers killed on a host");
    return recorded;
  }

  /** Resolves an agent's bearer credential to its host; revoked hosts are refused. */
  async authenticateAgent(authorization: string | undefined): Promise<hosts.HostRow> {
    const m = authorization ? /^Bearer\s+(\S+)$/i.exec(authorization) : null;
    if (!m) throw new UnauthenticatedError("missing agent credential");
    const host = await hosts.findHostByCredentialHash(this.db, hashToken(m[1]!));
    if (!host || host.admin_state === "revoked") throw new UnauthenticatedError("unknown or revoked agent credential");
    return host;
  }

  /**
   * Records a heartbeat; answers with the host's jobs whose cancellation was
   * requested. Beats are written together (see HeartbeatWriter), so the
   * answer comes after the next flush: within `heartbeatFlushMs` and the
   * time of one batched write.
   */
  heartbeat(hostId: string, hb: HeartbeatInput): Promise<{ cancelRequested: string[] }> {
    return this.writer.submit(hostId, hb);
  }

  /** Writes what is still buffered (on shutdown). */
  flushHeartbeats(): Promise<void> {
    return this.writer.drain();
  }

  async list(by: Principal): Promise<HostView[]> {
    requireAdmin(by);
    const rows = await hosts.listHosts(this.db);
    const placed = await hosts.environmentsOnHosts(this.db);
    const requests = await this.requests(rows.map((h) => h.id));
    return rows.map((h) => this.view(h, placed.get(h.id) ?? [], requests.get(h.id)));
  }

  async get(by: Principal, id: string): Promise<HostView> {
    requireAdmin(by);
    const h = await hosts.findHost(this.db, id);
    if (!h) throw new NotFoundError(`host '${id}' does not exist`);
    return this.view(h, (await hosts.environmentsOnHosts(this.db, [h.id])).get(h.id) ?? [], (await this.requests([h.id])).get(h.id));
  }

  async setAdminState(by: Principal, id: string, state: "active" | "cordoned" | "draining" | "revoked"): Promise<HostView> {
    requireAdmin(by);
    await this.db.transaction().execute(async (trx) => {
      const h = await hosts.findHost(trx, id);
      if (!h) throw new NotFoundError(`host '${id}' does not exist`);
      await hosts.setHostAdminState(trx, id, state);
      await recordActivity(trx, { actor: by.name, action: `host.${state}`, details: { hostId: id, name: h.name } });
    });
    if (state === "revoked") await this.opts.onRevoked?.(id).catch((err: unknown) => this.log.warn({ hostId: id, err: (err as Error).message }, "could not delete the revoked host's job consumer"));
    return this.get(by, id);
  }

  stateOf(h: hosts.HostRow, now = Date.now()): HostView["state"] {
    if (h.admin_state === "revoked") return "revoked";
    const seen = h.last_heartbeat_at ? now - h.last_heartbeat_at.getTime() : Infinity;
    if (seen > this.onlineWindowMs()) return "offline";
    if (h.admin_state === "cordoned") return "cordoned";
    if (h.admin_state === "draining") return "draining";
    return "online";
  }

  /** What the environments on each host request. */
  private async requests(hostIds: string[]): Promise<Map<string, { memoryBytes: number; cpus: number }>> {
    const policy = this.opts.resources ?? DEFAULT_RESOURCE_POLICY;
    const out = new Map<string, { memoryBytes: number; cpus: number }>();
    for (const [hostId, envs] of await hosts.placedEnvironments(this.db, hostIds)) {
      const sum = { memoryBytes: 0, cpus: 0 };
      for (const e of envs) {
        const r = requestOf(limitsOf(policy, e), e.replicas);
        sum.memoryBytes += r.memoryBytes;
        sum.cpus += r.cpus;
      }
      out.set(hostId, { memoryBytes: sum.memoryBytes, cpus: Math.round(sum.cpus * 100) / 100 });
    }
    return out;
  }

  private view(h: hosts.HostRow, environments: HostView["environments"], requested = { memoryBytes: 0, cpus: 0 }): HostView {
    const cap = h.capacity as { cpus?: number; memoryBytes?: number } | null;
    return {
      id: h.id,
      name: h.name,
      labels: h.labels,
      state: this.stateOf(h),
      adminState: h.admin_state,
      lastHeartbeatAt: h.last_heartbeat_at ? h.last_heartbeat_at.toISOString() : null,
      ingressAddress: h.ingress_address,
      version: h.version,
      capacity: h.capacity,
      requested,
      allocatable: { memoryBytes: Number(cap?.memoryBytes ?? 0), cpus: Number(cap?.cpus ?? 0) * (this.opts.resources ?? DEFAULT_RESOURCE_POLICY).cpuOvercommit },
      load: h.load,
      environments,
    };
  }
}
