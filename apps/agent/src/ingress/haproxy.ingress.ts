import fs from "node:fs/promises";
import { isDeepStrictEqual } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { pino, type Logger } from "pino";
import { StepFailure } from "@slipway/core";
import type { BackendConfig, BackendStats, BackendTarget, Ingress, SwitchOptions } from "./ingress.js";
import {
  backendSpecs, haproxyPaths, httpsHosts, isValidAcmeThumbprint, MAX_HSTS_SECONDS, renderHaproxyConfig, renderHostMap, renderHttpsMap, renderSampleMap, routes, SAMPLE_ALL, sameTarget, slotIndex, slotNames, validateBackend, validateTargets,
  WAKER_SERVER, type HaproxyPaths, type IngressStructure,
} from "./haproxy.config.js";
import { checkConfig, isOurHaproxy, logTail, readOrEmpty, readPid, spawnMaster, stopByPid, writeAtomic } from "./haproxy-process.js";
import { HaproxyRuntime, isDrain, isMaint, withoutServerRows } from "./haproxy-runtime.js";
import { clientIdleLimitMs, poll, WorkerGenerations } from "./haproxy-workers.js";
import type { CounterSource } from "../metrics/traffic-counters.js";
import { WorkerPins } from "./haproxy-pins.js";
import { ensureTlsFiles, TlsStore } from "./tls-store.js";

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
  /** How long start and reload wait for the master and a worker to answer (default 15 s). */
  readyTimeoutMs?: number;
  /**
   * Port of the agent's waker on 127.0.0.1: every backend gets it as a backup
   * server, which HAProxy uses only while none of the backend's slots is up.
   * A changed port changes the config, so an adopted proxy is reloaded.
   */
  wakerPort?: number;
  /** UDP port on 127.0.0.1 of the agent's traffic log receiver; a changed port reloads an adopted proxy, like the waker's. */
  trafficLogPort?: number;
  /**
   * Port of the HTTPS frontend (same routing as HTTP; certificates through `tls`); no HTTPS when
   * unset. Setting it on an existing state dir reloads an adopted proxy once.
   */
  httpsPort?: number;
}

/**
 * The Ingress on a local HAProxy 2.6 in master-worker mode. The process is
 * detached so it outlives the agent; the next agent adopts it through the
 * pid file and the master socket. Structure lives in `<dir>/ingress-state.json`
 * and renders to haproxy.cfg + hosts.map; a changed config is applied by a
 * graceful reload, host-name-only changes by runtime map edits, and traffic
 * moves only through the runtime API. Basic auth compares a sha256 digest of
 * the Authorization header (see BackendConfig). Failures are StepFailure; `pid` is the master's pid while started.
 */
export class HaproxyIngress implements Ingress {
  readonly httpPort: number;
  /** The HTTPS port, when HTTPS is enabled. */
  readonly httpsPort: number | undefined;
  /** The certificates served on the HTTPS port; undefined when HTTPS is disabled. */
  readonly tls: TlsStore | undefined;
  private readonly paths: HaproxyPaths;
  private readonly bindAddress: string;
  private readonly bin: string;
  private readonly log: Logger;
  private readonly readyTimeoutMs: number;
  private readonly runtime: HaproxyRuntime;
  private readonly generations: WorkerGenerations;
  private readonly wakerPort: number | undefined;
  private readonly trafficLogPort: number | undefined;
  private state: IngressStructure = { version: 1, backends: {} };
  /** Called after every reload (the traffic counters read the old worker at once). */
  private readonly reloadListeners: Array<() => void> = [];
  /** The latency sample: backends whose log is thinned, with their requests-in-1000 kept (the sample map). */
  private readonly sampling = new Map<string, number>();
  /** The config the running master has loaded; undefined when not running. */
  private appliedConfig: string | undefined;
  private masterPid: number | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: HaproxyIngressOptions) {
    this.paths = haproxyPaths(opts.dir);
    this.httpPort = opts.httpPort;
    this.bindAddress = opts.bindAddress ?? "127.0.0.1";
    this.bin = opts.haproxyBin ?? "/usr/sbin/haproxy";
    this.log = (opts.logger ?? pino({ level: "silent" })).child({ haproxyDir: this.paths.dir });
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
    this.runtime = new HaproxyRuntime(this.paths.adminSocket, this.paths.masterSocket);
    this.generations = new WorkerGenerations({ runtime: this.runtime, log: this.log, timeoutMs: this.readyTimeoutMs, logTail: () => logTail(this.paths) });
    this.wakerPort = opts.wakerPort;
    this.trafficLogPort = opts.trafficLogPort;
    this.httpsPort = opts.httpsPort;
    this.tls =
      opts.httpsPort === undefined
        ? undefined
        : new TlsStore({
            certsDir: this.paths.certsDir,
            crtList: this.paths.crtList,
            defaultCert: this.paths.defaultCert,
            runtime: this.runtime,
            logger: this.log,
            serial: (fn) =>
              this.serial(async () => {
                this.requireRunning();
                return fn();
              }),
          });
  }

  /** PID of the HAProxy master this adapter runs or adopted. */
  get pid(): number | undefined {
    return this.masterPid;
  }

  /** The master's and its workers' PIDs (old workers still finishing included); none when not running. */
  async processIds(): Promise<number[]> {
    if (this.masterPid === undefined) return [];
    const procs = await this.runtime.showProc().catch(() => undefined);
    return [...new Set([this.masterPid, ...(procs ? [...procs.workers, ...procs.oldWorkers] : [])])];
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
      next.backends[cfg.name] = { ...validateBackend(cfg, next), slots: prev?.slots ?? {}, ...(prev?.https ? { https: prev.https } : {}) };
      await this.apply(next, prev ? `backend ${cfg.name} changed` : `backend ${cfg.name} added`);
    });
  }

  /**
   * Sets the ACME account thumbprint HTTP-01 challenges are answered with
   * (`/.well-known/acme-challenge/<token>` → `<token>.<thumbprint>`, any host name). Persisted;
   * a graceful reload only when it changes (at most once per installation). Idempotent.
   */
  setAcmeThumbprint(thumbprint: string): Promise<void> {
    return this.serial(async () => {
      this.requireRunning();
      if (!isValidAcmeThumbprint(thumbprint)) throw new StepFailure("ingress_invalid_thumbprint", "an ACME account thumbprint is 43 base64url characters", false);
      if (this.state.acmeThumbprint === thumbprint) return;
      await this.apply({ ...structuredClone(this.state), acmeThumbprint: thumbprint }, "ACME account thumbprint set");
    });
  }

  /**
   * Sets which of a backend's host names are redirected from HTTP to HTTPS (308), each with its
   * HSTS max-age (0 = no Strict-Transport-Security): runtime edits of the HTTPS map, no reload.
   * The caller lists only host names whose certificate is served. A backend not (yet) here: nothing.
   */
  setHttpsHosts(name: string, hosts: Record<string, number>): Promise<void> {
    return this.serial(async () => {
      this.requireRunning();
      const be = this.state.backends[name];
      if (!be) return;
      const want: Record<string, number> = {};
      for (const [host, maxAge] of Object.entries(hosts)) {
        const h = host.toLowerCase();
        if (!be.hostnames.includes(h)) throw new StepFailure("ingress_invalid_https", `host name '${h}' is not routed to '${name}'`, false);
        if (!Number.isInteger(maxAge) || maxAge < 0 || maxAge > MAX_HSTS_SECONDS) throw new StepFailure("ingress_invalid_https", `invalid HSTS max-age ${maxAge} for '${h}'`, false);
        want[h] = maxAge;
      }
      if (isDeepStrictEqual(be.https ?? {}, want)) return;
      const next = structuredClone(this.state);
      if (Object.keys(want).length > 0) next.backends[name]!.https = want;
      else delete next.backends[name]!.https;
      await this.apply(next, `HTTPS redirect of ${name} changed`);
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

  /**
   * Resolves once every worker that can still take a request routes the
   * backend's host names to `targets`. After a reload that means waiting for
   * the previous worker too: it keeps serving the client connections it holds
   * with its own config (WorkerGenerations.untilServed), where a backend added
   * since does not exist and its host names get the 404 for unknown hosts.
   */
  async switchTraffic(name: string, targets: BackendTarget[], opts?: SwitchOptions): Promise<BackendTarget[]> {
    const { replaced, record, idleLimitMs } = await this.serial(async () => ({
      replaced: await this.doSwitch(name, targets, opts?.drainTimeoutMs ?? 30_000, opts?.testPauseMidSwitchMs ?? 0),
      record: this.state.backends[name]!,
      idleLimitMs: clientIdleLimitMs(this.appliedConfig ?? ""),
    }));
    // Outside the queue (read-only): other calls need not wait while older
    // workers finish. Traffic has moved by now, so a failure here is logged, not thrown.
    const served = await this.generations.untilServed(name, record, idleLimitMs).catch((err: unknown) => {
      this.log.warn({ backend: name, err: errorMessage(err) }, "cannot tell whether older haproxy workers still take requests for the backend");
      return undefined;
    });
    if (served && !served.complete) this.log.warn({ backend: name, oldWorkers: served.workers, waitedMs: served.waitedMs }, "older haproxy workers still take requests for the backend with their previous configuration; not waiting longer");
    else if (served && served.workers.length > 0) this.log.info({ backend: name, oldWorkers: served.workers, waitedMs: served.waitedMs }, "older haproxy workers take no more requests for the backend");
    return replaced;
  }

  current(name: string): Promise<BackendTarget[]> {
    return this.serial(async () => {
      const be = this.state.backends[name];
      if (!be) return [];
      this.requireRunning();
      const servers = await this.runtime.serversState(name);
      return servers
        .filter((s) => slotIndex(s.server) !== undefined && !isMaint(s) && !isDrain(s))
        .sort((a, b) => (slotIndex(a.server) ?? 0) - (slotIndex(b.server) ?? 0))
        .map((s) => {
          const rec = be.slots[s.server];
          if (rec && rec.host === s.addr && rec.port === s.port) return { id: rec.id, host: rec.host, port: rec.port };
          this.log.warn({ backend: name, slot: s.server, addr: s.addr, port: s.port }, "ready slot has no matching record; reporting it by address");
          return { id: `${s.addr}:${s.port}`, host: s.addr, port: s.port };
        });
    });
  }

  /**
   * Counters of the current worker, so `requests` restarts at 0 after a
   * reload. Without a request since the worker started, the worker's uptime
   * is reported: a lower bound that never makes a busy backend look idle.
   * Sessions held by an older worker (after a reload) cannot be attributed
   * to a backend, so while one exists every backend counts one session.
   */
  stats(name: string): Promise<BackendStats | undefined> {
    return this.serial(async () => {
      if (!this.state.backends[name]) return undefined;
      this.requireRunning();
      const row = (await this.runtime.showStat(name)).find((r) => r["svname"] === "BACKEND");
      if (!row) return undefined;
      const requests = Number(row["req_tot"] || row["stot"] || 0);
      const scur = Number(row["scur"] || 0);
      // Unknown counts as busy: a master CLI that does not answer must not make an environment look idle.
      const oldWorkers = await this.runtime.showProc().then((p) => p.oldWorkers.length, () => 1);
      const sessions = oldWorkers > 0 ? Math.max(1, scur) : scur;
      const last = row["lastsess"] ? Number(row["lastsess"]) : -1;
      if (last >= 0) return { requests, secondsSinceLastRequest: last, sessions };
      const uptime = Number((await this.runtime.showInfo())["Uptime_sec"]);
      return { requests, secondsSinceLastRequest: Number.isFinite(uptime) ? uptime : null, sessions };
    });
  }

  /** Runs calls one at a time in call order; every failure leaves as a StepFailure. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => fn(), () => fn()).catch((err: unknown) => {
      throw asStepFailure(err);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private requireRunning(): void {
    if (this.masterPid === undefined) throw new StepFailure("ingress_not_started", "the HAProxy ingress is not started", true);
  }

  private async doStart(): Promise<void> {
    await fs.mkdir(this.paths.dir, { recursive: true, mode: 0o700 });
    this.state = await this.loadState();
    // Before HAProxy reads the config: the HTTPS bind needs a crt-list with a certificate.
    if (this.httpsPort !== undefined) {
      const { dropped } = await ensureTlsFiles(this.paths);
      if (dropped.length > 0) this.log.warn({ files: dropped }, "certificate files missing from the state dir; no longer listed on the HTTPS bind");
    }
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
      // Retried: the master CLI is briefly unreachable while the master re-executes for a reload.
      await this.waitFor("the running haproxy to answer", () => undefined, async () => {
        const procs = await this.runtime.showProc();
        if (procs.master !== pid) throw new Error(`master socket reports master pid ${procs.master}, pid file says ${pid}`);
        return this.runtime.workerPid();
      });
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
    await writeAtomic(this.paths.httpsMap, renderHttpsMap(httpsHosts(this.state)));
    await writeAtomic(this.paths.sampleMap, renderSampleMap(this.sampling));
    await this.validate(config);
    await fs.rename(this.paths.config + ".next", this.paths.config);
    const child = spawnMaster(this.bin, this.paths);
    try {
      // Started once the master CLI lists the worker: until the master has
      // re-executed after loading, it loses commands (haproxy-workers.ts).
      await this.waitFor("haproxy to answer on its admin socket and its master CLI", child.exitReason, async () => {
        const worker = await this.runtime.workerPid();
        const procs = await this.runtime.showProc();
        return procs.master === child.pid && procs.workers.includes(worker) ? worker : undefined;
      });
    } catch (err) {
      if (await isOurHaproxy(child.pid, this.paths.config)) await stopByPid(child.pid);
      throw err;
    }
    this.masterPid = child.pid;
    this.appliedConfig = config;
    this.log.info({ haproxyPid: child.pid, port: this.httpPort, httpsPort: this.httpsPort, bindAddress: this.bindAddress }, "started haproxy");
  }

  private async doStop(): Promise<void> {
    // Both: another adapter on this dir may have replaced the master this one knew.
    const pids = new Set([this.masterPid, await readPid(this.paths.pidFile)]);
    for (const pid of pids) {
      if (pid === undefined || !(await isOurHaproxy(pid, this.paths.config))) continue;
      await stopByPid(pid);
      this.log.info({ haproxyPid: pid }, "stopped haproxy");
    }
    await fs.rm(this.paths.pidFile, { force: true });
    this.masterPid = undefined;
    this.appliedConfig = undefined;
  }

  /** Makes the running proxy match `next`: a reload when the config differs, runtime map edits when only host names do. */
  private async apply(next: IngressStructure, reason: string): Promise<void> {
    const config = this.render(next);
    const map = this.renderMap(next);
    if (config !== this.appliedConfig) await this.reload(config, map, renderHttpsMap(httpsHosts(next)), reason);
    else {
      await this.syncMap(this.paths.hostsMap, routes(next), map, "host map");
      // Without an HTTPS port the config references no HTTPS map (the worker has none to edit): the file only.
      if (this.httpsPort !== undefined) await this.syncMap(this.paths.httpsMap, mapValues(httpsHosts(next)), renderHttpsMap(httpsHosts(next)), "HTTPS map");
      else await writeAtomic(this.paths.httpsMap, renderHttpsMap(httpsHosts(next)));
    }
    this.state = next;
    await this.saveState();
  }

  private async reload(config: string, map: string, httpsMap: string, reason: string): Promise<void> {
    const started = Date.now();
    await writeAtomic(this.paths.sampleMap, renderSampleMap(this.sampling));
    await this.validate(config);
    const oldWorker = await this.runtime.workerPid();
    // The new worker restores server addresses and states from this file;
    // the waker's address must come from the config, where its port may have changed.
    await writeAtomic(this.paths.serverStateFile, withoutServerRows(await this.runtime.dumpServersState(), WAKER_SERVER));
    await writeAtomic(this.paths.hostsMap, map);
    await writeAtomic(this.paths.httpsMap, httpsMap);
    await fs.rename(this.paths.config + ".next", this.paths.config);
    // Not SIGUSR2 when the socket refuses: the master refuses while it
    // re-executes, and drops the signal then too.
    const { newWorker, attempts } = await this.generations.reload(oldWorker);
    // Until apply() stores the next structure, this.state is what the old worker routes by.
    this.generations.replaced(oldWorker, this.state);
    this.appliedConfig = config;
    this.log.info({ reason, oldWorker, newWorker, attempts, ms: Date.now() - started }, "haproxy reloaded");
    for (const listener of this.reloadListeners) listener();
  }

  /** Brings one of the worker's maps to `want` with add/set/del map, then writes the file a reload will read. */
  private async syncMap(file: string, want: Record<string, string>, text: string, what: string): Promise<void> {
    const have = await this.runtime.showMap(file);
    const changes: string[] = [];
    for (const [key, value] of Object.entries(want)) {
      if (have[key] === value) continue;
      if (have[key] === undefined) await this.runtime.addMap(file, key, value);
      else await this.runtime.setMap(file, key, value);
      changes.push(`+${key}`);
    }
    for (const key of Object.keys(have)) {
      if (want[key] !== undefined) continue;
      await this.runtime.delMap(file, key);
      changes.push(`-${key}`);
    }
    await writeAtomic(file, text);
    if (changes.length > 0) this.log.info({ changes }, `${what} updated at runtime`);
  }

  /**
   * Sets how many requests in 1,000 of each backend are logged (SAMPLE_ALL: every one): the file
   * a reload reads first, then the running worker's map. The log is only the latency sample, so a
   * change that fails is logged and tried again with the next one.
   */
  setLogSampling(changes: ReadonlyMap<string, number>): Promise<void> {
    return this.serial(async () => {
      for (const [backend, keep] of changes) {
        if (keep >= SAMPLE_ALL) this.sampling.delete(backend);
        else this.sampling.set(backend, keep);
      }
      await writeAtomic(this.paths.sampleMap, renderSampleMap(this.sampling));
      if (this.masterPid === undefined) return;
      for (const [backend, keep] of changes) {
        if (keep >= SAMPLE_ALL) await this.runtime.delMap(this.paths.sampleMap, backend);
        else await this.runtime.setMap(this.paths.sampleMap, backend, String(keep)).catch(() => this.runtime.addMap(this.paths.sampleMap, backend, String(keep)));
      }
    });
  }

  /**
   * HAProxy's own request counters, per worker (old ones included), for the agent's traffic
   * metrics. Read-only and outside the queue: a read that meets a reload fails and is retried.
   * The current worker is pinned (haproxy-pins.ts), so that after a reload it lives on until the
   * read that follows its last client connection: its final counts are read, not lost.
   */
  counterSource(): CounterSource {
    const pins = new WorkerPins({ host: this.bindAddress, port: this.httpPort, runtime: this.runtime, log: this.log });
    return {
      current: async () => {
        const now = await this.runtime.currentWorkerCounters();
        await pins.ensure(now.pid);
        return now;
      },
      oldWorkers: async () => {
        const procs = await this.runtime.showProc();
        const alive = new Set([...procs.workers, ...procs.oldWorkers]);
        for (const pid of pins.pids()) if (!alive.has(pid)) pins.release(pid);
        return procs.oldWorkers;
      },
      oldCounters: async (pid) => {
        // Quiet first (no longer listening, no client connection but ours), then the read:
        // nothing can be served after it, so it is the worker's last.
        const info = await this.runtime.workerInfo(pid);
        if (!info) {
          pins.release(pid);
          return undefined;
        }
        const quiet = info["Stopping"] === "1" && Number(info["CurrConns"]) <= (pins.holds(pid) ? 1 : 0);
        const counters = await this.runtime.workerBackendCounters(pid);
        if (quiet && counters) pins.release(pid);
        return counters;
      },
      close: () => pins.close(),
      onReload: (listener) => void this.reloadListeners.push(listener),
    };
  }

  /** Makes the worker's slots match the persisted records (after a fresh start, an adoption or as a check). */
  private async reconcileSlots(): Promise<void> {
    for (const [name, be] of Object.entries(this.state.backends)) {
      for (const s of await this.runtime.serversState(name)) {
        // The waker backup server is the config's, not a slot.
        if (slotIndex(s.server) === undefined) continue;
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

  private async doSwitch(name: string, targets: BackendTarget[], drainTimeoutMs: number, testPauseMs = 0): Promise<BackendTarget[]> {
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
    if (testPauseMs > 0) {
      this.log.warn({ backend: name, ms: testPauseMs }, "test hook: pausing in the middle of the switch");
      await sleep(testPauseMs);
    }
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

  private render(s: IngressStructure): string {
    return renderHaproxyConfig({
      paths: this.paths,
      bindAddress: this.bindAddress,
      httpPort: this.httpPort,
      backends: backendSpecs(s),
      ...(this.wakerPort !== undefined ? { wakerPort: this.wakerPort } : {}),
      ...(this.trafficLogPort !== undefined ? { trafficLogPort: this.trafficLogPort } : {}),
      ...(this.httpsPort !== undefined ? { httpsPort: this.httpsPort } : {}),
      ...(s.acmeThumbprint !== undefined ? { acmeThumbprint: s.acmeThumbprint } : {}),
    });
  }

  private renderMap(s: IngressStructure): string {
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

  private waitFor<T>(what: string, aborted: () => string | undefined, probe: () => Promise<T | undefined>): Promise<T> {
    return poll(`${what} (${this.readyTimeoutMs} ms)`, Date.now() + this.readyTimeoutMs, () => logTail(this.paths), probe, { aborted, intervalMs: 50 });
  }

  private async loadState(): Promise<IngressStructure> {
    const text = await readOrEmpty(this.paths.stateJson);
    if (text === "") return { version: 1, backends: {} };
    const parsed = JSON.parse(text) as IngressStructure;
    if (parsed.version !== 1 || typeof parsed.backends !== "object") throw new Error(`unsupported ingress state in ${this.paths.stateJson}`);
    return parsed;
  }

  private async saveState(): Promise<void> {
    await writeAtomic(this.paths.stateJson, JSON.stringify(this.state, null, 2) + "\n");
  }
}

function asStepFailure(err: unknown): StepFailure {
  if (err instanceof StepFailure) return err;
  return new StepFailure("ingress_unavailable", `HAProxy ingress: ${errorMessage(err)}`, true, undefined, { cause: err });
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A map's values as the runtime API shows them (strings). */
function mapValues(m: Record<string, number>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]));
}
