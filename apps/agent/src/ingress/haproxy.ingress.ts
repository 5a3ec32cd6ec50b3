import fs from "node:fs/promises";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { pino, type Logger } from "pino";
import { StepFailure } from "@slipway/core";
import type { BackendConfig, BackendTarget, Ingress } from "./ingress.js";
import {
  haproxyPaths, isValidBackendName, isValidHostname, renderHaproxyConfig, renderHostMap, slotIndex, slotName,
  type BackendSpec, type HaproxyPaths,
} from "./haproxy.config.js";
import { checkConfig, isOurHaproxy, logTail, readOrEmpty, readPid, spawnMaster, stopByPid, writeAtomic } from "./haproxy-process.js";
import { HaproxyRuntime, isDrain, isMaint } from "./haproxy-runtime.js";

/** Options of the HAProxy adapter. */
export interface HaproxyIngressOptions {
  /** State directory: config, host map, sockets, pid file, persisted structure. Created when missing. */
  dir: string;
  httpPort: number;
  /** Default 127.0.0.1. */
  bindAddress?: string;
  /** Default /usr/sbin/haproxy. */
  haproxyBin?: string;
  logger?: Logger;
  /** How long start and reload wait for a worker to answer (default 15 s). */
  readyTimeoutMs?: number;
}

interface SlotRecord extends BackendTarget {
  /** draining: the switch that replaces it has not finished (the agent may have died during it). */
  state: "active" | "draining";
}
interface BackendRecord {
  hostnames: string[];
  basicAuth: { username: string; passwordHash: string } | null;
  maxServers: number;
  /** Occupied slots by slot name (s1…); the persisted answer to "which target is in which slot". */
  slots: Record<string, SlotRecord>;
}
interface PersistedState {
  version: 1;
  backends: Record<string, BackendRecord>;
}

/**
 * The Ingress on a local HAProxy 2.6 in master-worker mode. The process is
 * detached so it outlives the agent; the next agent adopts it through the
 * pid file and the master socket. Structure lives in `<dir>/ingress-state.json`
 * and renders to haproxy.cfg + hosts.map; a changed config is applied by a
 * graceful reload, traffic moves only through the runtime API.
 */
export class HaproxyIngress implements Ingress {
  readonly httpPort: number;
  private readonly paths: HaproxyPaths;
  private readonly bindAddress: string;
  private readonly bin: string;
  private readonly log: Logger;
  private readonly readyTimeoutMs: number;
  private readonly runtime: HaproxyRuntime;
  private state: PersistedState = { version: 1, backends: {} };
  /** The config the running master has loaded; undefined when not running. */
  private appliedConfig: string | undefined;
  private masterPid: number | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: HaproxyIngressOptions) {
    this.paths = haproxyPaths(opts.dir);
    this.httpPort = opts.httpPort;
    this.bindAddress = opts.bindAddress ?? "127.0.0.1";
    this.bin = opts.haproxyBin ?? "/usr/sbin/haproxy";
    this.log = (opts.logger ?? pino({ level: "silent" })).child({ component: "ingress", dir: this.paths.dir });
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
    this.runtime = new HaproxyRuntime(this.paths.adminSocket, this.paths.masterSocket);
  }

  /** PID of the HAProxy master this adapter runs or adopted. */
  get pid(): number | undefined {
    return this.masterPid;
  }

  start(): Promise<void> {
    return this.serial(() => this.doStart());
  }

  stop(): Promise<void> {
    return this.serial(() => this.doStop());
  }

  ensureBackend(cfg: BackendConfig): Promise<void> {
    return this.serial(async () => {
      this.requireRunning();
      const next = structuredClone(this.state);
      const prev = next.backends[cfg.name];
      next.backends[cfg.name] = { ...validateBackend(cfg, next), slots: prev?.slots ?? {} };
      await this.apply(next, prev ? `backend ${cfg.name} changed` : `backend ${cfg.name} added`);
    });
  }

  removeBackend(name: string): Promise<void> {
    return this.serial(async () => {
      this.requireRunning();
      if (!this.state.backends[name]) return;
      const next = structuredClone(this.state);
      delete next.backends[name];
      await this.apply(next, `backend ${name} removed`);
    });
  }

  switchTraffic(name: string, targets: BackendTarget[], opts?: { drainTimeoutMs?: number }): Promise<BackendTarget[]> {
    return this.serial(() => this.doSwitch(name, targets, opts?.drainTimeoutMs ?? 30_000));
  }

  current(name: string): Promise<BackendTarget[]> {
    return this.serial(async () => {
      const be = this.state.backends[name];
      if (!be) return [];
      this.requireRunning();
      const servers = await this.runtime.serversState(name);
      return servers
        .filter((s) => !isMaint(s) && !isDrain(s))
        .sort((a, b) => (slotIndex(a.server) ?? 0) - (slotIndex(b.server) ?? 0))
        .map((s) => {
          const rec = be.slots[s.server];
          if (rec && rec.host === s.addr && rec.port === s.port) return { id: rec.id, host: rec.host, port: rec.port };
          this.log.warn({ backend: name, slot: s.server, addr: s.addr, port: s.port }, "ready slot has no matching record; reporting it by address");
          return { id: `${s.addr}:${s.port}`, host: s.addr, port: s.port };
        });
    });
  }

  stats(name: string): Promise<{ requests: number; secondsSinceLastRequest: number | null } | undefined> {
    return this.serial(async () => {
      if (!this.state.backends[name]) return undefined;
      this.requireRunning();
      const row = (await this.runtime.showStat(name)).find((r) => r["svname"] === "BACKEND");
      if (!row) return undefined;
      const requests = Number(row["req_tot"] || row["stot"] || 0);
      const last = Number(row["lastsess"]);
      return { requests, secondsSinceLastRequest: row["lastsess"] !== "" && last >= 0 ? last : null };
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => fn(), () => fn());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private requireRunning(): void {
    if (this.masterPid === undefined) throw new StepFailure("ingress_not_started", "the HAProxy ingress is not started", true);
  }

  private async doStart(): Promise<void> {
    await fs.mkdir(this.paths.dir, { recursive: true, mode: 0o700 });
    this.state = await this.loadState();
    const adopted = await this.tryAdopt();
    if (adopted !== undefined) {
      this.masterPid = adopted;
      this.appliedConfig = await readOrEmpty(this.paths.config);
      this.log.info({ haproxyPid: adopted }, "adopted running haproxy");
      await this.apply(this.state, "configuration changed while the agent was away");
      await this.reconcileSlots();
      return;
    }
    await this.startFresh();
    await this.reconcileSlots();
  }

  /** The pid of an answering HAProxy master of this dir; a hung one is stopped so start can replace it. */
  private async tryAdopt(): Promise<number | undefined> {
    const pid = await readPid(this.paths.pidFile);
    if (pid === undefined || !(await isOurHaproxy(pid, this.paths.config))) return undefined;
    try {
      const procs = await this.runtime.showProc();
      if (procs.master !== pid) throw new Error(`master socket reports master pid ${procs.master}, pid file says ${pid}`);
      await this.runtime.workerPid();
      return pid;
    } catch (err) {
      this.log.warn({ haproxyPid: pid, err: errorMessage(err) }, "haproxy of this dir does not answer; replacing it");
      await stopByPid(pid);
      return undefined;
    }
  }

  private async startFresh(): Promise<void> {
    // After a restart the JSON is the only record of the routing: a server
    // state file from an older reload could contradict it.
    await fs.rm(this.paths.serverStateFile, { force: true });
    await fs.rm(this.paths.pidFile, { force: true });
    const config = this.render(this.state);
    await writeAtomic(this.paths.hostsMap, this.renderMap(this.state));
    await this.validate(config);
    await fs.rename(this.paths.config + ".next", this.paths.config);
    const child = spawnMaster(this.bin, this.paths);
    try {
      await this.waitFor("haproxy to answer on its admin socket", child.exitReason, () => this.runtime.workerPid());
    } catch (err) {
      if (await isOurHaproxy(child.pid, this.paths.config)) await stopByPid(child.pid);
      throw err;
    }
    this.masterPid = child.pid;
    this.appliedConfig = config;
    this.log.info({ haproxyPid: child.pid, port: this.httpPort, bindAddress: this.bindAddress }, "started haproxy");
  }

  private async doStop(): Promise<void> {
    const pid = this.masterPid ?? (await readPid(this.paths.pidFile));
    if (pid !== undefined && (await isOurHaproxy(pid, this.paths.config))) {
      await stopByPid(pid);
      this.log.info({ haproxyPid: pid }, "stopped haproxy");
    }
    await fs.rm(this.paths.pidFile, { force: true });
    this.masterPid = undefined;
    this.appliedConfig = undefined;
  }

  /** Makes the running proxy match `next`: a reload when the config differs, runtime map edits when only host names do. */
  private async apply(next: PersistedState, reason: string): Promise<void> {
    const config = this.render(next);
    const map = this.renderMap(next);
    if (config !== this.appliedConfig) await this.reload(config, map, reason);
    else await this.syncMap(next, map);
    this.state = next;
    await this.saveState();
  }

  private async reload(config: string, map: string, reason: string): Promise<void> {
    const started = Date.now();
    await this.validate(config);
    const oldWorker = await this.runtime.workerPid();
    // The new worker restores server addresses and states from this file.
    await writeAtomic(this.paths.serverStateFile, await this.runtime.dumpServersState());
    await writeAtomic(this.paths.hostsMap, map);
    await fs.rename(this.paths.config + ".next", this.paths.config);
    try {
      await this.runtime.reload();
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "master socket refused reload; signalling the master");
      if (!(await isOurHaproxy(this.masterPid!, this.paths.config))) throw err;
      process.kill(this.masterPid!, "SIGUSR2");
    }
    const newWorker = await this.waitFor("a new haproxy worker after reload", () => undefined, async () => {
      const pid = await this.runtime.workerPid();
      return pid !== oldWorker ? pid : undefined;
    });
    this.appliedConfig = config;
    this.log.info({ reason, oldWorker, newWorker, ms: Date.now() - started }, "haproxy reloaded");
  }

  /** Brings the worker's host map to `next` with add/set/del map, then writes the file a reload will read. */
  private async syncMap(next: PersistedState, map: string): Promise<void> {
    const want = routes(next);
    const have = await this.runtime.showMap(this.paths.hostsMap);
    const changes: string[] = [];
    for (const [host, backend] of Object.entries(want)) {
      if (have[host] === backend) continue;
      if (have[host] === undefined) await this.runtime.addMap(this.paths.hostsMap, host, backend);
      else await this.runtime.setMap(this.paths.hostsMap, host, backend);
      changes.push(`+${host}`);
    }
    for (const host of Object.keys(have)) {
      if (want[host] !== undefined) continue;
      await this.runtime.delMap(this.paths.hostsMap, host);
      changes.push(`-${host}`);
    }
    await writeAtomic(this.paths.hostsMap, map);
    if (changes.length > 0) this.log.info({ changes }, "host map updated at runtime");
  }

  /** Makes the worker's slots match the persisted records (after a fresh start, an adoption or as a check). */
  private async reconcileSlots(): Promise<void> {
    for (const [name, be] of Object.entries(this.state.backends)) {
      for (const s of await this.runtime.serversState(name)) {
        const rec = be.slots[s.server];
        const want = !rec ? "maint" : rec.state === "active" ? "ready" : "drain";
        const have = isMaint(s) ? "maint" : isDrain(s) ? "drain" : "ready";
        if (rec && (s.addr !== rec.host || s.port !== rec.port)) await this.runtime.setServerAddr(name, s.server, rec.host, rec.port);
        else if (want === have) continue;
        if (want !== have) await this.runtime.setServerState(name, s.server, want);
        this.log.info({ backend: name, slot: s.server, from: have, to: want, target: rec?.id }, "restored slot from persisted state");
      }
    }
  }

  private async doSwitch(name: string, targets: BackendTarget[], drainTimeoutMs: number): Promise<BackendTarget[]> {
    this.requireRunning();
    const be = this.state.backends[name];
    if (!be) throw new StepFailure("ingress_unknown_backend", `no backend '${name}' in the ingress: ensureBackend first`, false);
    validateTargets(name, targets);
    const kept = new Set<string>();
    const added: string[] = [];
    const toAdd = targets.filter((t) => {
      const slot = Object.keys(be.slots).find((s) => !kept.has(s) && sameTarget(be.slots[s]!, t));
      if (slot) kept.add(slot);
      return !slot;
    });
    const free = slotNames(be).filter((s) => !be.slots[s]);
    if (free.length < toAdd.length) {
      throw new StepFailure("ingress_no_free_slot", `backend '${name}' has ${free.length} free server slots but needs ${toAdd.length}: raise maxServers`, false);
    }
    for (const t of toAdd) {
      const slot = free.shift()!;
      // Recorded before it is live, so a crash leaves a record to reconcile rather than an unknown server.
      be.slots[slot] = { id: t.id, host: t.host, port: t.port, state: "active" };
      await this.saveState();
      try {
        await this.runtime.setServerAddr(name, slot, t.host, t.port);
        await this.runtime.setServerState(name, slot, "ready");
      } catch (err) {
        delete be.slots[slot];
        await this.runtime.setServerState(name, slot, "maint").catch(() => undefined);
        await this.saveState();
        throw err;
      }
      added.push(slot);
    }
    for (const slot of kept) {
      if (be.slots[slot]!.state === "active") continue;
      await this.runtime.setServerState(name, slot, "ready");
      be.slots[slot]!.state = "active";
    }
    const old = Object.keys(be.slots).filter((s) => !kept.has(s) && !added.includes(s));
    for (const slot of old) {
      be.slots[slot]!.state = "draining";
      await this.runtime.setServerState(name, slot, "drain");
    }
    await this.saveState();
    const drainStarted = Date.now();
    const drained = old.length === 0 || (await this.waitDrained(name, old, drainTimeoutMs));
    const replaced: BackendTarget[] = [];
    for (const slot of old) {
      await this.runtime.setServerState(name, slot, "maint");
      const { id, host, port } = be.slots[slot]!;
      replaced.push({ id, host, port });
      delete be.slots[slot];
    }
    await this.saveState();
    const fields = { backend: name, added: toAdd.map((t) => t.id), replaced: replaced.map((t) => t.id), drainMs: Date.now() - drainStarted };
    if (drained) this.log.info(fields, "switched traffic");
    else this.log.warn({ ...fields, drainTimeoutMs }, "switched traffic; drain timed out with requests still in flight");
    return replaced;
  }

  /**
   * Waits until the drained slots have no sessions and no old worker is left:
   * an old worker (after a reload) still routes by the state it was started
   * with and would send its last requests to the replaced targets.
   */
  private async waitDrained(name: string, slots: string[], timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.runtime.showStat(name);
      const busy = rows.filter((r) => slots.includes(r["svname"] ?? "")).reduce((n, r) => n + Number(r["scur"] || 0) + Number(r["qcur"] || 0), 0);
      const oldWorkers = await this.runtime.showProc().then(
        (p) => p.oldWorkers,
        (err: unknown) => {
          this.log.warn({ err: errorMessage(err) }, "cannot list old haproxy workers; not waiting for them");
          return [];
        },
      );
      if (busy === 0 && oldWorkers.length === 0) return true;
      if (Date.now() >= deadline) return false;
      await sleep(100);
    }
  }

  private render(s: PersistedState): string {
    const backends: BackendSpec[] = Object.entries(s.backends).map(([name, be]) => ({
      name,
      slots: slotCount(be),
      basicAuth: be.basicAuth ? { username: be.basicAuth.username, password: be.basicAuth.passwordHash } : null,
    }));
    return renderHaproxyConfig({ paths: this.paths, bindAddress: this.bindAddress, httpPort: this.httpPort, backends });
  }

  private renderMap(s: PersistedState): string {
    return renderHostMap(routes(s));
  }

  /** Writes `<config>.next` and checks it, so a bad config never replaces a good one. */
  private async validate(config: string): Promise<void> {
    const next = this.paths.config + ".next";
    await writeAtomic(next, config);
    await checkConfig(this.bin, next).catch(async (err: unknown) => {
      await fs.rm(next, { force: true });
      throw err;
    });
  }

  private async waitFor<T>(what: string, aborted: () => string | undefined, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + this.readyTimeoutMs;
    let last: unknown;
    for (;;) {
      const reason = aborted();
      if (reason) throw new StepFailure("ingress_start_failed", `${reason}; log: ${await logTail(this.paths)}`, true);
      try {
        const v = await probe();
        if (v !== undefined) return v;
      } catch (err) {
        last = err;
      }
      if (Date.now() >= deadline) {
        const cause = last ? ` (last error: ${errorMessage(last)})` : "";
        throw new StepFailure("ingress_unavailable", `timed out after ${this.readyTimeoutMs} ms waiting for ${what}${cause}; log: ${await logTail(this.paths)}`, true);
      }
      await sleep(50);
    }
  }

  private async loadState(): Promise<PersistedState> {
    const text = await readOrEmpty(this.paths.stateJson);
    if (text === "") return { version: 1, backends: {} };
    const parsed = JSON.parse(text) as PersistedState;
    if (parsed.version !== 1 || typeof parsed.backends !== "object") throw new Error(`unsupported ingress state in ${this.paths.stateJson}`);
    return parsed;
  }

  private async saveState(): Promise<void> {
    await writeAtomic(this.paths.stateJson, JSON.stringify(this.state, null, 2) + "\n");
  }
}

function validateBackend(cfg: BackendConfig, state: PersistedState): Omit<BackendRecord, "slots"> {
  const bad = (msg: string) => new StepFailure("ingress_invalid_backend", msg, false);
  if (!isValidBackendName(cfg.name)) throw bad(`invalid backend name '${cfg.name}'`);
  if (!Number.isInteger(cfg.maxServers) || cfg.maxServers < 1 || cfg.maxServers > 1000) throw bad(`maxServers of '${cfg.name}' must be 1-1000`);
  const hostnames = [...new Set(cfg.hostnames.map((h) => h.toLowerCase()))].sort();
  for (const host of hostnames) {
    if (!isValidHostname(host)) throw bad(`invalid host name '${host}' for '${cfg.name}'`);
    const owner = Object.entries(state.backends).find(([name, be]) => name !== cfg.name && be.hostnames.includes(host));
    if (owner) throw new StepFailure("ingress_hostname_conflict", `host name '${host}' is already routed to '${owner[0]}'`, false);
  }
  const auth = cfg.basicAuth ? { username: cfg.basicAuth.username, passwordHash: cfg.basicAuth.passwordHash } : null;
  if (auth && (!auth.username || auth.username.includes(":") || !auth.passwordHash || /[\x00-\x1f\x7f]/.test(auth.username + auth.passwordHash))) {
    throw bad(`basic auth of '${cfg.name}' needs a user name without ':' and a password, both without control characters`);
  }
  return { hostnames, basicAuth: auth, maxServers: cfg.maxServers };
}

function validateTargets(name: string, targets: BackendTarget[]): void {
  const ids = new Set<string>();
  for (const t of targets) {
    if (!t.id || ids.has(t.id)) throw new StepFailure("ingress_invalid_target", `target ids of '${name}' must be non-empty and unique`, false);
    ids.add(t.id);
    if (net.isIP(t.host) === 0) throw new StepFailure("ingress_invalid_target", `target host '${t.host}' must be an IP address`, false);
    if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new StepFailure("ingress_invalid_target", `invalid target port ${t.port}`, false);
  }
}

function sameTarget(a: BackendTarget, b: BackendTarget): boolean {
  return a.id === b.id && a.host === b.host && a.port === b.port;
}

/** Never fewer slots than an occupied one's index, so shrinking maxServers cannot drop a live server. */
function slotCount(be: BackendRecord): number {
  return Math.max(be.maxServers, ...Object.keys(be.slots).map((s) => slotIndex(s) ?? 0));
}

function slotNames(be: BackendRecord): string[] {
  return Array.from({ length: slotCount(be) }, (_, i) => slotName(i + 1));
}

function routes(s: PersistedState): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, be] of Object.entries(s.backends)) for (const host of be.hostnames) out[host] = name;
  return out;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
