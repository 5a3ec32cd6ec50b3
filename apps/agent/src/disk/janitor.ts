import { LABELS, type Logger } from "@slipway/core";
import type { DiskEngine, EngineImage } from "../docker/docker.disk.js";
import { PeriodicTask } from "../envs/periodic-task.js";

const MB = 1024 * 1024;

/** What one environment served here needs kept. */
export interface KeptByEnvironment {
  image: string;
  /** Images of its last successful deployments here, most recent first (the current one included). */
  recentImages?: string[];
  /** Its web containers (kept stopped while it sleeps). */
  containerIds: string[];
}

export interface JanitorOptions {
  engine: DiskEngine;
  hostId: string;
  environments: () => KeptByEnvironment[];
  /** Images kept per environment for rollback: those of its last N successful deployments, the current one included. */
  keepImages: number;
  /** Build cache (dangling build layers and BuildKit's cache) is pruned down to this. */
  buildCacheMaxBytes: number;
  /** Below this much free space, a build is preceded by a prune. */
  minFreeBytes: number;
  log: Logger;
  /** Stopped containers younger than this are left alone: a deployment may have just created them. Default 10 min. */
  containerGraceSeconds?: number;
}

export interface PruneResult {
  reason: string;
  containers: string[];
  images: string[];
  /** Dangling build layers removed (the classic builder's cache). */
  buildLayers: number;
  /** BuildKit cache given back. */
  buildCacheBytes: number;
  /** Space given back: the data root's free space after minus before (the engine's figures when the data root is not visible). */
  freedBytes: number;
  freeBefore?: number;
  freeAfter?: number;
}

/** "123 MB", for people. */
export function mb(bytes: number): string {
  return `${(bytes / MB).toFixed(bytes < 10 * MB ? 1 : 0)} MB`;
}

/**
 * Keeps a host's disk from filling with what no environment needs (issue 12): images of this host's
 * builds that no environment runs and rollback does not keep, stopped containers this host owns
 * and no environment keeps, and build cache beyond its limit (the oldest first; dangling build
 * layers and BuildKit's cache each kept under it). It runs on a
 * schedule, after each deployment, before a build when space is short and after a build that ran
 * out of space; one prune at a time. An image a running job uses is held and never removed.
 * Nothing is forced: the engine refuses to remove an image a container uses, and that is fine.
 */
export class DiskJanitor {
  private readonly held = new Map<string, Set<string>>();
  /** Builds in progress: their intermediate layers look dangling between two steps. */
  private builds = 0;
  private running?: Promise<PruneResult>;
  private task?: PeriodicTask;

  constructor(private readonly opts: JanitorOptions) {}

  /** Keeps `image` while job `jobId` runs (released by release(jobId)); waits for a prune in progress first. */
  async hold(jobId: string, image: string): Promise<void> {
    await this.running?.catch(() => undefined);
    let set = this.held.get(jobId);
    if (!set) this.held.set(jobId, (set = new Set()));
    set.add(image);
  }

  release(jobId: string): void {
    this.held.delete(jobId);
  }

  private isHeld(img: EngineImage): boolean {
    for (const set of this.held.values()) for (const h of set) if (img.tags.includes(h) || img.id === h) return true;
    return false;
  }

  /** Image names no prune may remove: every environment's current image, its recent ones (rollback), and held ones. */
  keep(): Set<string> {
    const keep = new Set<string>();
    for (const e of this.opts.environments()) {
      keep.add(e.image);
      for (const i of (e.recentImages ?? []).slice(0, this.opts.keepImages)) keep.add(i);
    }
    for (const set of this.held.values()) for (const h of set) keep.add(h);
    return keep;
  }

  /** Starts the scheduled prune (0 = none). */
  start(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.task = new PeriodicTask(() => this.prune("scheduled"), () => intervalMs);
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task?.stop();
    await this.running?.catch(() => undefined);
  }

  /** Prunes now, or joins the prune in progress. `buildCacheMaxBytes` overrides the limit (0 after a build ran out of space). */
  prune(reason: string, buildCacheMaxBytes = this.opts.buildCacheMaxBytes): Promise<PruneResult> {
    this.running ??= this.run(reason, buildCacheMaxBytes).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /**
   * Before a build: prunes when the data root has less free space than the minimum, saying so
   * through `say` (a failed prune is said too, and the build goes on); then counts the build in
   * until buildEnded().
   */
  async beforeBuild(say: (line: string) => void): Promise<void> {
    try {
      const space = await this.opts.engine.dataRoot().catch(() => undefined);
      if (!space || space.freeBytes >= this.opts.minFreeBytes) return;
      say(`only ${mb(space.freeBytes)} free for Docker (below the minimum of ${mb(this.opts.minFreeBytes)}): pruning what no environment needs first`);
      say(summary(await this.prune("before a build: disk short")));
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, "prune before a build failed");
      say(`warning: could not prune before the build (${(err as Error).message})`);
    } finally {
      this.builds++;
    }
  }

  buildEnded(): void {
    this.builds = Math.max(0, this.builds - 1);
  }

  /** After a build that ran out of space (and buildEnded): gives back what it left and every build layer; says so through `say`. */
  async afterNoSpace(say: (line: string) => void): Promise<void> {
    await this.running?.catch(() => undefined);
    say(summary(await this.prune("a build ran out of space", 0)));
  }

  private async run(reason: string, cacheMax: number): Promise<PruneResult> {
    const { engine, hostId, log } = this.opts;
    const result: PruneResult = { reason, containers: [], images: [], buildLayers: 0, buildCacheBytes: 0, freedBytes: 0 };
    result.freeBefore = (await engine.dataRoot().catch(() => undefined))?.freeBytes;

    // Stopped containers of this host that no environment keeps (leftovers of failed one-offs, old replicas).
    const kept = new Set(this.opts.environments().flatMap((e) => e.containerIds));
    const graceS = this.opts.containerGraceSeconds ?? 600;
    const now = Date.now() / 1000;
    for (const c of await engine.containers({ [LABELS.managed]: "true", [LABELS.host]: hostId })) {
      if (!["exited", "dead", "created"].includes(c.state) || kept.has(c.id) || now - c.created < graceS) continue;
      await engine.removeContainer(c.id).then(
        () => result.containers.push(c.name),
        (err: unknown) => log.warn({ container: c.name, err: (err as Error).message }, "could not remove a stopped container"),
      );
    }

    // Images this host built that nothing keeps, the oldest first. The engine refuses those a container uses.
    const images = await engine.images();
    const keep = this.keep();
    const unneeded = images
      .filter((i) => i.labels[LABELS.managed] === "true" && i.labels[LABELS.host] === hostId && i.tags.length > 0 && !i.tags.some((t) => keep.has(t)))
      .sort((a, b) => a.created - b.created);
    let removedBytes = 0;
    for (const img of unneeded) {
      if (this.isHeld(img)) continue;
      if (await engine.removeImage(img.id).catch(() => false)) {
        result.images.push(img.tags[0]!);
        removedBytes += img.sizeBytes;
      }
    }

    // Build cache: dangling layers kept newest first while they fit under the limit. While a build
    // runs, recent ones may be its steps so far: they stay.
    let budget = cacheMax;
    const dangling = images
      .filter((i) => i.tags.length === 0 && i.digests.length === 0 && !(this.builds > 0 && now - i.created < graceS))
      .sort((a, b) => b.created - a.created);
    // Their own sizes only when they might not fit (sizes with shared layers bound them from above).
    const own = dangling.reduce((n, i) => n + i.sizeBytes, 0) > budget ? await engine.uniqueBytes().catch(() => new Map<string, number>()) : new Map<string, number>();
    for (const img of dangling) {
      const bytes = own.get(img.id) ?? img.sizeBytes;
      if (bytes <= budget) {
        budget -= bytes;
        continue;
      }
      budget = 0;
      if (await engine.removeImage(img.id).catch(() => false)) {
        result.buildLayers++;
        removedBytes += bytes;
      }
    }
    // BuildKit's cache (builds an operator ran by hand; Slipway's use the classic builder), to the same limit.
    result.buildCacheBytes = await engine.pruneBuildCache(cacheMax).catch(() => 0);
    removedBytes += result.buildCacheBytes;

    result.freeAfter = (await engine.dataRoot().catch(() => undefined))?.freeBytes;
    result.freedBytes = result.freeBefore !== undefined && result.freeAfter !== undefined ? Math.max(0, result.freeAfter - result.freeBefore) : removedBytes;
    const removed = result.containers.length + result.images.length + result.buildLayers + (result.buildCacheBytes > 0 ? 1 : 0);
    const fields = { reason, containers: result.containers, images: result.images, buildLayers: result.buildLayers, buildCacheBytes: result.buildCacheBytes, freedBytes: result.freedBytes, freeBytes: result.freeAfter };
    if (removed > 0) log.info(fields, `disk pruned: ${summary(result)}`);
    else log.debug(fields, "disk prune: nothing to remove");
    return result;
  }
}

/** One line on what a prune did, for logs. */
export function summary(r: PruneResult): string {
  const parts = [
    `${r.images.length} image${r.images.length === 1 ? "" : "s"}`,
    `${r.containers.length} stopped container${r.containers.length === 1 ? "" : "s"}`,
    `${r.buildLayers} build layer${r.buildLayers === 1 ? "" : "s"}`,
  ];
  const free = r.freeAfter !== undefined ? `; ${mb(r.freeAfter)} free` : "";
  return `pruned ${parts.join(", ")}${r.buildCacheBytes ? ` and ${mb(r.buildCacheBytes)} of build cache` : ""}: ${mb(r.freedBytes)} freed${free}`;
}
