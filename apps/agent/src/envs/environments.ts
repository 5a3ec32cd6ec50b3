import { LABELS, StepFailure, environmentNetwork, environmentSlug, toFailure, type Logger } from "@slipway/core";
import { AGENT_LABELS } from "../docker/labels.js";
import type { BasicAuth, EnvironmentObservation } from "@slipway/proto";
import type { ContainerRuntime, ContainerStatus, RunningContainer } from "../docker/container-runtime.js";
import type { BackendTarget, Ingress } from "../ingress/ingress.js";
import { probeContainers } from "./container-probe.js";
import type { EnvironmentAuth, EnvironmentEntry, EnvironmentRegistry, EnvironmentState } from "./environment-registry.js";
import { routeTarget, startWebContainers, stopWebContainers, STOP_GRACE_SECONDS } from "./env-containers.js";
import type { WakeService } from "./waker.js";
import { applyTls, releaseTls, sameKey, type TlsSpec } from "./env-certificates.js";

/** How many of an environment's deployed images the registry remembers (the janitor keeps the first SLIPWAY_ROLLBACK_IMAGES). */
const RECENT_IMAGES = 50;

/** Server slots per backend: room for the old and the new containers of the largest replica count (10). */
export const BACKEND_SLOTS = 20;

/** Why a request cannot be served by waking its environment. */
export class WakeRefused extends Error {
  constructor(
    readonly kind: "unknown" | "stopped" | "failed",
    message: string,
  ) {
    super(message);
    this.name = "WakeRefused";
  }
}

/** Which environment a job acts on: identified by its id; app and environment names are for people (logs, labels). */
export interface EnvironmentRef {
  app: string;
  environment: string;
  environmentId: string;
}

/** The realm browsers show for an environment's basic auth: `<app>-<env>`, for people only. */
export function authRealm(ref: Pick<EnvironmentRef, "app" | "environment">): string {
  return `${ref.app}-${ref.environment}`;
}

/** What the control plane sends for routes: host names, basic auth, sleep setting. */
export interface RoutesChange extends EnvironmentRef {
  hostnames: string[];
  basicAuth: EnvironmentAuth | null;
  sleepAfterSeconds: number;
  /** The host names' certificates and the ACME thumbprint (issue 15). */
  tls?: TlsSpec;
}

/** Options of the environment service. */
export interface EnvironmentsOptions {
  hostId: string;
  registry: EnvironmentRegistry;
  runtime: ContainerRuntime;
  ingress: Ingress;
  log: Logger;
  /** Pause between two startup probes during a wake (default 20 ms: a wake is waited for by a client). */
  wakeProbeIntervalMs?: number;
  /** Drain limit when an environment goes to sleep or is stopped (default 30 s). */
  drainTimeoutMs?: number;
}

/** The proto's optional BasicAuth as the registry keeps it. */
export function authOf(a: BasicAuth | undefined): EnvironmentAuth | null {
  return a && a.digest ? { username: a.username, digest: a.digest } : null;
}

/**
 * The life cycle of the environments this agent serves: record a deployment,
 * sleep, wake, stop, start, change routes, remove, adopt after a restart.
 * Every change of one environment runs under that environment's lock, so a
 * sleep never interleaves with a deployment's switch or a wake; concurrent
 * wakes of one environment share one promise.
 */
export class Environments implements WakeService {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly wakes = new Map<string, Promise<BackendTarget[]>>();
  /** When each environment last became active in this process (deploy, wake, start): a fresh wake is never idle. */
  private readonly activeAt = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly opts: EnvironmentsOptions) {
    this.log = opts.log;
  }

  /** Runs fn while holding the environment's lock (FIFO). Not re-entrant. */
  exclusive<T>(slug: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(slug) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(slug, tail);
    void tail.then(() => {
      if (this.locks.get(slug) === tail) this.locks.delete(slug);
    });
    return run;
  }

  get(slug: string): EnvironmentEntry | undefined {
    return this.opts.registry.get(slug);
  }

  /**
   * The slug of the environment with this id: the one recorded for it (environments an
   * older agent recorded keep their `<app>--<env>` backend and network, so an upgrade
   * moves no traffic), else core's environmentSlug(environmentId). Never derived from names.
   */
  slugFor(environmentId: string): string {
    return this.opts.registry.slugOf(environmentId) ?? environmentSlug(environmentId);
  }

  all(): EnvironmentEntry[] {
    return this.opts.registry.all();
  }

  /** Milliseconds since the environment last became active in this process, or undefined. */
  activeSinceMs(slug: string): number | undefined {
    const at = this.activeAt.get(slug);
    return at === undefined ? undefined : Date.now() - at;
  }

  /** What the heartbeat reports. */
  observations(): EnvironmentObservation[] {
    return this.all().map((e) => ({ app: e.app, environment: e.environment, environmentId: e.environmentId, state: e.state, deploymentId: e.deploymentId }));
  }

  /** Records the environment after a deployment switched traffic to its containers. Call under the lock. */
  async recordDeployment(entry: Omit<EnvironmentEntry, "state" | "recentImages">, variables: Record<string, string>): Promise<void> {
    const before = this.opts.registry.get(entry.slug);
    const recentImages = [entry.image, ...(before?.recentImages ?? (before ? [before.image] : [])).filter((i) => i !== entry.image)].slice(0, RECENT_IMAGES);
    const tlsCertificates = entry.tlsCertificates ?? before?.tlsCertificates;
    await this.opts.registry.put({ ...entry, recentImages, state: "running", ...(tlsCertificates ? { tlsCertificates } : {}) }, variables);
    this.activeAt.set(entry.slug, Date.now());
  }

  /**
   * Applies a spec's HTTPS part (thumbprint, certificates) for an environment serving `hostnames`
   * and removes the certificates it owned for names it no longer serves; resolves with what it
   * owns from now on (record it in the entry). Never throws. Call under the lock.
   */
  applyTls(slug: string, tls: TlsSpec | undefined, hostnames: string[], logLine: (line: string) => void): Promise<string[][]> {
    return applyTls({ ingress: this.opts.ingress, backend: slug, tls, hostnames, owned: this.get(slug)?.tlsCertificates ?? [], ownedElsewhere: this.ownedElsewhere(slug), logLine, log: this.log });
  }

  /** Whether another environment recorded the certificate of these host names. */
  ownedElsewhere(slug: string): (key: string[]) => boolean {
    return (key) => this.all().some((e) => e.slug !== slug && (e.tlsCertificates ?? []).some((k) => sameKey(k, key)));
  }

    describe(slug: string): { app: string; environment: string; state: EnvironmentState } | undefined {
    const e = this.get(slug);
    return e && { app: e.app, environment: e.environment, state: e.state };
  }

  /**
   * The targets to send a request for this environment to, waking it first
   * when it sleeps. All callers during one wake share it. Throws WakeRefused
   * when the environment is unknown, stopped, or cannot be woken.
   */
  ensureAwake(slug: string): Promise<BackendTarget[]> {
    const inflight = this.wakes.get(slug);
    if (inflight) return inflight;
    const wake = this.exclusive(slug, async () => {
      const e = this.get(slug);
      if (!e) throw new WakeRefused("unknown", `no environment ${slug} on this host`);
      if (e.state === "stopped") throw new WakeRefused("stopped", `environment ${e.app}/${e.environment} is stopped`);
      if (e.state === "running") return this.runningTargets(e);
      const started = Date.now();
      try {
        const targets = await this.bringUp(e, (line) => this.log.info({ env: slug }, line));
        this.log.info({ env: slug, ms: Date.now() - started }, "environment woken");
        return targets;
      } catch (err) {
        this.log.warn({ env: slug, err: (err as Error).message }, "wake failed; the environment stays asleep");
        throw new WakeRefused("failed", `environment ${e.app}/${e.environment} could not be woken: ${(err as Error).message}`);
      }
    }).finally(() => this.wakes.delete(slug));
    this.wakes.set(slug, wake);
    return wake;
  }

  /**
   * Puts a running environment to sleep if `stillIdle` (checked under the
   * lock) agrees: all slots to maintenance so the waker takes the next
   * request, then `docker stop` (containers kept for a fast wake).
   */
  sleep(slug: string, stillIdle: () => Promise<boolean>): Promise<boolean> {
    return this.exclusive(slug, async () => {
      const e = this.get(slug);
      if (!e || e.state !== "running" || !(await stillIdle())) return false;
      await this.takeDown(e, "sleeping");
      this.log.info({ env: slug, containers: e.containerIds.length }, "environment is asleep");
      return true;
    });
  }

  /** Stops an environment by hand: requests get 503 until it is started. Missing is fine. */
  stop(ref: EnvironmentRef, logLine: (line: string) => void): Promise<void> {
    const { app, environment } = ref;
    const slug = this.slugFor(ref.environmentId);
    return this.exclusive(slug, async () => {
      const e = this.get(slug);
      if (!e) return logLine(`${app}/${environment} has no containers on this host; nothing to stop`);
      if (e.state === "stopped") return logLine(`${app}/${environment} is already stopped`);
      await this.takeDown(e, "stopped");
      logLine(`traffic for ${e.hostnames.join(", ")} now gets 503; ${e.containerIds.length} container(s) stopped and kept`);
    });
  }

  /**
   * Starts a sleeping or stopped environment (start, probe, switch); running is a no-op. `tls`
   * (the spec's certificates and thumbprint) is applied to the environment's recorded host names.
   */
  start(ref: EnvironmentRef, logLine: (line: string) => void, tls?: TlsSpec): Promise<void> {
    const { app, environment } = ref;
    const slug = this.slugFor(ref.environmentId);
    return this.exclusive(slug, async () => {
      const e = this.get(slug);
      if (!e) return logLine(`${app}/${environment} has not been deployed on this host; the next deployment starts it`);
      if (e.state === "running") logLine(`${app}/${environment} is already running`);
      else {
        const targets = await this.bringUp(e, logLine);
        logLine(`traffic for ${e.hostnames.join(", ")} now goes to ${targets.length} container(s)`);
      }
      if (tls) await this.opts.registry.update(slug, { tlsCertificates: await this.applyTls(slug, tls, e.hostnames, logLine) });
    });
  }

  /**
   * Applies host names, basic auth and the sleep setting. Host-name-only
   * changes are runtime map edits at the ingress (no reload). Without a
   * backend there is nothing to route yet: the next deployment brings them.
   */
  routes(change: RoutesChange, logLine: (line: string) => void): Promise<void> {
    const slug = this.slugFor(change.environmentId);
    return this.exclusive(slug, async () => {
      const e = this.get(slug);
      if (!e && (await this.opts.ingress.stats(slug)) === undefined) {
        // The thumbprint is the host's, not the environment's: challenges can be answered before a deployment.
        if (change.tls?.acmeThumbprint) await this.applyTls(slug, { certificates: [], acmeThumbprint: change.tls.acmeThumbprint }, [], logLine);
        return logLine(`${change.app}/${change.environment} is not routed on this host yet; the next deployment applies these routes`);
      }
      await this.opts.ingress.ensureBackend({ name: slug, realm: authRealm(change), hostnames: change.hostnames, basicAuth: change.basicAuth, maxServers: BACKEND_SLOTS });
      if (e) await this.opts.registry.update(slug, { hostnames: change.hostnames, basicAuth: change.basicAuth, sleepAfterSeconds: change.sleepAfterSeconds });
      logLine(`routes: ${change.hostnames.join(", ") || "(no host names)"}; basic auth ${change.basicAuth ? `on (user ${change.basicAuth.username})` : "off"}; ${change.sleepAfterSeconds > 0 ? `sleeps after ${change.sleepAfterSeconds} s without requests` : "never sleeps"}`);
      // HTTPS after the routes: a certificate that cannot be installed leaves them applied.
      // Certificates are recorded in the entry; without one (nothing deployed here) only the thumbprint is set.
      const tls = e ? change.tls : change.tls && { certificates: [], acmeThumbprint: change.tls.acmeThumbprint };
      const tlsCertificates = await this.applyTls(slug, tls, change.hostnames, logLine);
      if (e) await this.opts.registry.update(slug, { tlsCertificates });
    });
  }

  /**
   * After the environment moved to another host (drain): its host names keep
   * working here by forwarding them to the new host's ingress (the Host header
   * is kept), then the containers, network and entry go. Requests in flight on
   * the old containers complete (the switch drains them). HTTPS keeps
   * terminating here: `tls` (the names' certificates) is installed or replaced,
   * so a certificate issued or renewed after the move is served here too (the
   * control plane sends the handoff again). Idempotent.
   */
  handoff(ref: EnvironmentRef, forwardTo: { host: string; port: number }, hostnames: string[], logLine: (line: string) => void, tls?: TlsSpec): Promise<void> {
    const slug = this.slugFor(ref.environmentId);
    return this.exclusive(slug, async () => {
      const { ingress } = this.opts;
      await ingress.ensureBackend({ name: slug, realm: authRealm(ref), hostnames, basicAuth: null, maxServers: BACKEND_SLOTS });
      await ingress.switchTraffic(slug, [{ id: `forward:${forwardTo.host}:${forwardTo.port}`, host: forwardTo.host, port: forwardTo.port }]);
      logLine(`traffic for ${hostnames.join(", ")} now forwarded to ${forwardTo.host}:${forwardTo.port}`);
      const owned = this.get(slug)?.tlsCertificates ?? [];
      await this.forget(ref, slug, logLine);
      // Not recorded (the entry is gone): remove() finds a forward's certificates by its host names.
      if (tls) await applyTls({ ingress, backend: slug, tls, hostnames, owned, ownedElsewhere: this.ownedElsewhere(slug), logLine, log: this.log });
    });
  }

  /**
   * Removes the backend, every container of the environment on this host (all roles), its network
   * and its entry, and the certificates only it used: those its entry recorded or, for a host that
   * only forwarded it (no entry), those served for exactly its `hostnames`. Idempotent.
   */
  remove(ref: EnvironmentRef, logLine: (line: string) => void, hostnames: string[] = []): Promise<void> {
    const slug = this.slugFor(ref.environmentId);
    return this.exclusive(slug, async () => {
      await this.opts.ingress.removeBackend(slug);
      const entry = this.get(slug);
      const owned = entry ? (entry.tlsCertificates ?? []) : await this.servedOnlyFor(hostnames);
      const left = await releaseTls({ ingress: this.opts.ingress, owned, ownedElsewhere: this.ownedElsewhere(slug), logLine, log: this.log });
      if (left.length > 0) this.log.warn({ env: slug, certificates: left }, "certificates of a removed environment left on the ingress");
      const removed = await this.forget(ref, slug, logLine);
      logLine(`${ref.app}/${ref.environment} removed from this host: backend, ${removed} container(s), network`);
    });
  }

  /** The served certificates whose every name is one of `hostnames` (exact names only, never a wildcard). */
  private async servedOnlyFor(hostnames: string[]): Promise<string[][]> {
    const store = this.opts.ingress.tls;
    if (!store || hostnames.length === 0) return [];
    const names = new Set(hostnames.map((h) => h.toLowerCase()));
    try {
      return (await store.list()).map((c) => c.hostnames).filter((key) => key.length > 0 && key.every((n) => names.has(n.toLowerCase())));
    } catch (err) {
      this.log.warn({ failure: toFailure(err) }, "cannot list the served certificates");
      return [];
    }
  }

  /**
   * Every container (all roles) of the environment on this host, found by its id label, its
   * network and its registry entry; returns how many containers. Caller holds the lock.
   */
  private async forget(ref: EnvironmentRef, slug: string, logLine: (line: string) => void): Promise<number> {
    const { runtime, registry, hostId } = this.opts;
    const containers = await runtime.list({ [LABELS.host]: hostId, [AGENT_LABELS.environmentId]: ref.environmentId });
    await Promise.all(containers.map((c) => runtime.stopAndRemove(c.id, STOP_GRACE_SECONDS)));
    for (const c of containers) logLine(`removed ${c.name}`);
    await runtime.removeNetwork(environmentNetwork(slug, hostId));
    await registry.delete(slug);
    this.activeAt.delete(slug);
    return containers.length;
  }

  /**
   * After an agent start: re-applies each entry's routing if the ingress lost
   * it, points running environments at their containers' current ports, and
   * treats a running environment whose containers are not running (a host
   * reboot) as sleeping, so the next request wakes it.
   */
  async adopt(): Promise<void> {
    await Promise.all(this.all().map((e) => this.exclusive(e.slug, () => this.adoptOne(e)).catch((err: unknown) => {
      this.log.error({ env: e.slug, err: (err as Error).message }, "could not adopt environment");
    })));
  }

  private async adoptOne(e: EnvironmentEntry): Promise<void> {
    const { ingress, runtime } = this.opts;
    if ((await ingress.stats(e.slug)) === undefined) {
      this.log.warn({ env: e.slug }, "ingress lost the environment's backend; restoring it from the registry");
      await ingress.ensureBackend({ name: e.slug, realm: authRealm(e), hostnames: e.hostnames, basicAuth: e.basicAuth, maxServers: BACKEND_SLOTS });
    }
    const statuses = await Promise.all(e.containerIds.map((id) => runtime.inspect(id)));
    if (e.state === "running" && (await this.repoint(e, statuses)) !== "not_running") {
      this.activeAt.set(e.slug, Date.now());
      return;
    }
    if ((await ingress.current(e.slug)).length > 0) await ingress.switchTraffic(e.slug, [], { drainTimeoutMs: 1000 });
    await stopWebContainers(runtime, statuses.filter((s) => s?.running).map((s) => s!.id));
    if (e.state === "running") {
      await this.opts.registry.update(e.slug, { state: "sleeping" });
      this.log.warn({ env: e.slug }, "environment's containers are not running; treating it as sleeping until the next request");
    }
  }

  /**
   * Re-points running environments whose containers are running on other
   * host ports than the ingress routes to: Docker gives a container a new
   * ephemeral port whenever it starts again (dockerd restarted it under its
   * restart policy, or someone restarted it by hand). Environments whose
   * containers are not all running are left alone: the restart policy may
   * still bring them back, and a request wakes them otherwise. Called
   * periodically; never throws; returns the slugs it re-pointed.
   */
  async reconcile(): Promise<string[]> {
    const repointed: string[] = [];
    for (const { slug } of this.all()) {
      await this.exclusive(slug, async () => {
        const e = this.get(slug);
        if (e?.state !== "running") return;
        const statuses = await Promise.all(e.containerIds.map((id) => this.opts.runtime.inspect(id)));
        if ((await this.repoint(e, statuses)) === "repointed") repointed.push(slug);
      }).catch((err: unknown) => this.log.warn({ env: slug, err: (err as Error).message }, "could not check the environment's routes"));
    }
    return repointed;
  }

  /** Under the lock: routes a running environment to its containers' current ports when they all run. */
  private async repoint(e: EnvironmentEntry, statuses: Array<ContainerStatus | undefined>): Promise<"same" | "repointed" | "not_running"> {
    if (statuses.length === 0 || !statuses.every((s) => s?.running && (s.address || s.hostPort))) return "not_running";
    const targets = statuses.map((s) => routeTarget(s!, e.webPort));
    const routed = await this.opts.ingress.current(e.slug);
    if (routed.length === targets.length && targets.every((t) => routed.some((r) => r.id === t.id && r.host === t.host && r.port === t.port))) return "same";
    await this.opts.ingress.switchTraffic(e.slug, targets, { drainTimeoutMs: 1000 });
    this.log.warn({ env: e.slug, from: routed.map((r) => `${r.host}:${r.port}`), to: targets.map((t) => `${t.host}:${t.port}`) }, "routed the environment to its containers' current ports");
    return "repointed";
  }

  /** Under the lock: start the kept containers (or new ones), probe them, switch traffic to them, state running. */
  private async bringUp(e: EnvironmentEntry, logLine: (line: string) => void): Promise<BackendTarget[]> {
    const { runtime, registry, hostId } = this.opts;
    const containers = await startWebContainers(runtime, hostId, e, registry.variablesOf(e.slug), logLine);
    const ids = containers.map((c) => c.id);
    try {
      await probeContainers(containers, { runtime, probe: e.probe, webPort: e.webPort, logLine, intervalMs: this.opts.wakeProbeIntervalMs ?? 20 });
      const targets = containers.map((c: RunningContainer) => routeTarget(c, e.webPort));
      await this.switchTo(e, targets);
      await registry.update(e.slug, { state: "running", containerIds: ids });
      this.activeAt.set(e.slug, Date.now());
      return targets;
    } catch (err) {
      await stopWebContainers(runtime, ids).catch(() => undefined);
      await registry.update(e.slug, { containerIds: ids });
      throw err;
    }
  }

  /** Switches traffic, restoring the backend first when the ingress has lost it. */
  private async switchTo(e: EnvironmentEntry, targets: BackendTarget[]): Promise<void> {
    try {
      await this.opts.ingress.switchTraffic(e.slug, targets, { drainTimeoutMs: this.opts.drainTimeoutMs ?? 30_000 });
    } catch (err) {
      if (!(err instanceof StepFailure && err.type === "ingress_unknown_backend")) throw err;
      await this.opts.ingress.ensureBackend({ name: e.slug, realm: authRealm(e), hostnames: e.hostnames, basicAuth: e.basicAuth, maxServers: BACKEND_SLOTS });
      await this.opts.ingress.switchTraffic(e.slug, targets);
    }
  }

  /** Under the lock: all slots to maintenance (the waker answers), containers stopped and kept. */
  private async takeDown(e: EnvironmentEntry, state: "sleeping" | "stopped"): Promise<void> {
    if ((await this.opts.ingress.stats(e.slug)) !== undefined) await this.opts.ingress.switchTraffic(e.slug, [], { drainTimeoutMs: this.opts.drainTimeoutMs ?? 30_000 });
    await stopWebContainers(this.opts.runtime, e.containerIds);
    await this.opts.registry.update(e.slug, { state });
    this.activeAt.delete(e.slug);
  }

  /** A running environment's targets for the waker: what the ingress routes, else its containers' ports. */
  private async runningTargets(e: EnvironmentEntry): Promise<BackendTarget[]> {
    const routed = await this.opts.ingress.current(e.slug);
    if (routed.length > 0) return routed;
    const statuses = await Promise.all(e.containerIds.map((id) => this.opts.runtime.inspect(id)));
    const targets = statuses.filter((s) => s?.running && (s.address || s.hostPort)).map((s) => routeTarget(s!, e.webPort));
    if (targets.length === 0) throw new WakeRefused("failed", `environment ${e.app}/${e.environment} has no running container`);
    return targets;
  }
}
