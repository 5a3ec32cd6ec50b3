import { describe, expect, it } from "vitest";
import pino from "pino";
import { LABELS } from "@slipway/core";
import type { DiskEngine, EngineContainer, EngineImage } from "../docker/docker.disk.js";
import { DiskJanitor, summary, type KeptByEnvironment } from "./janitor.js";

const MB = 1024 * 1024;
const HOST = "host-a";
const now = () => Math.floor(Date.now() / 1000);

/** An engine of images and containers in memory; removing an image used by a container is refused, as Docker does. */
class FakeEngine implements DiskEngine {
  images_: EngineImage[] = [];
  /** Own bytes by image id (/system/df); images in use by a container. */
  own = new Map<string, number>();
  inUse = new Set<string>();
  dfCalls = 0;
  containers_: EngineContainer[] = [];
  buildkit = 0;
  free = 100 * MB;
  removedImages: string[] = [];
  removedContainers: string[] = [];
  async dataRoot() {
    return { path: "/var/lib/docker", freeBytes: this.free, totalBytes: 1000 * MB };
  }
  async images() {
    return this.images_.map((i) => ({ ...i }));
  }
  async uniqueBytes() {
    this.dfCalls++;
    return new Map(this.own);
  }
  async removeImage(id: string) {
    const img = this.images_.find((i) => i.id === id);
    if (!img) return true;
    if (this.inUse.has(id)) return false;
    this.images_ = this.images_.filter((i) => i.id !== id);
    this.removedImages.push(img.tags[0] ?? id);
    this.free += this.own.get(id) ?? img.sizeBytes;
    return true;
  }
  async containers(labels: Record<string, string>) {
    return this.containers_.filter((c) => Object.entries(labels).every(([k, v]) => c.labels[k] === v));
  }
  async removeContainer(id: string) {
    this.removedContainers.push(id);
    this.containers_ = this.containers_.filter((c) => c.id !== id);
  }
  async pruneBuildCache(keep: number) {
    const freed = Math.max(0, this.buildkit - keep);
    this.buildkit -= freed;
    return freed;
  }
  built(tag: string, ageS: number, opts: { host?: string; inUse?: boolean; mb?: number } = {}): void {
    const id = `sha256:${tag}`;
    this.images_.push({ id, tags: [tag], digests: [], labels: { [LABELS.managed]: "true", [LABELS.host]: opts.host ?? HOST }, created: now() - ageS, sizeBytes: (opts.mb ?? 10) * MB });
    if (opts.inUse) this.inUse.add(id);
  }
  /** A dangling layer of `mb` own bytes on a 100 MB base. */
  dangling(id: string, ageS: number, mb: number): void {
    this.images_.push({ id, tags: [], digests: [], labels: {}, created: now() - ageS, sizeBytes: (100 + mb) * MB });
    this.own.set(id, mb * MB);
  }
}

function janitor(engine: FakeEngine, envs: KeptByEnvironment[], opts: { keep?: number; cacheMb?: number; minFreeMb?: number } = {}) {
  return new DiskJanitor({ engine, hostId: HOST, environments: () => envs, keepImages: opts.keep ?? 3, buildCacheMaxBytes: (opts.cacheMb ?? 20) * MB, minFreeBytes: (opts.minFreeMb ?? 50) * MB, log: pino({ level: "silent" }) });
}

describe("the disk janitor", () => {
  it("keeps each environment's current image and its last N, removes this host's other builds, the oldest first", async () => {
    const e = new FakeEngine();
    for (let v = 1; v <= 6; v++) e.built(`slipway/a:v${v}`, 600 - v * 60);
    e.built("slipway/b:v1", 900);
    e.built("slipway/other-host:v1", 900, { host: "host-b" });
    e.built("slipway/a:running-elsewhere", 900, { inUse: true });
    const j = janitor(e, [{ image: "slipway/a:v6", recentImages: ["slipway/a:v6", "slipway/a:v5", "slipway/a:v4", "slipway/a:v3"], containerIds: [] }]);
    const r = await j.prune("test");
    // a:v6, v5, v4 kept (3 with the current); b (no environment here any more), a:v1–v3 go; another host's build and an image in use stay.
    expect(e.removedImages).toEqual(["slipway/b:v1", "slipway/a:v1", "slipway/a:v2", "slipway/a:v3"]);
    expect(r.images).toHaveLength(4);
    expect(r.freedBytes).toBe(40 * MB);
    // No dangling layer: the costly per-image sizes were not asked for.
    expect(e.dfCalls).toBe(0);
    expect(r.freeAfter! - r.freeBefore!).toBe(40 * MB);
    expect(summary(r)).toBe("pruned 4 images, 0 stopped containers, 0 build layers: 40 MB freed; 140 MB free");
  });

  it("never removes an image a running job holds, nor one held while a prune runs", async () => {
    const e = new FakeEngine();
    e.built("slipway/a:old", 900);
    e.built("slipway/a:new", 10);
    const j = janitor(e, []);
    await j.hold("job-1", "slipway/a:new");
    await j.prune("test");
    expect(e.removedImages).toEqual(["slipway/a:old"]);
    j.release("job-1");
    await j.prune("test");
    expect(e.removedImages).toEqual(["slipway/a:old", "slipway/a:new"]);
  });

  it("removes stopped containers of this host that no environment keeps, past their grace", async () => {
    const e = new FakeEngine();
    const labels = { [LABELS.managed]: "true", [LABELS.host]: HOST };
    e.containers_ = [
      { id: "old-exited", name: "slipway-a-release-1", state: "exited", labels, created: now() - 3600 },
      { id: "sleeping", name: "slipway-a-test-1", state: "exited", labels, created: now() - 3600 },
      { id: "fresh", name: "slipway-a-test-2", state: "created", labels, created: now() - 5 },
      { id: "running", name: "slipway-a-test-3", state: "running", labels, created: now() - 3600 },
      { id: "foreign", name: "x", state: "exited", labels: { ...labels, [LABELS.host]: "host-b" }, created: now() - 3600 },
    ];
    const r = await janitor(e, [{ image: "slipway/a:v1", containerIds: ["sleeping"] }]).prune("test");
    expect(e.removedContainers).toEqual(["old-exited"]);
    expect(r.containers).toEqual(["slipway-a-release-1"]);
  });

  it("keeps the newest dangling build layers under the cache limit, and BuildKit's cache under the same limit", async () => {
    const e = new FakeEngine();
    e.dangling("d-new", 10, 8);
    e.dangling("d-mid", 100, 8);
    e.dangling("d-old", 1000, 8);
    e.buildkit = 30 * MB;
    // Limit 20 MB: the two newest layers (16 MB) fit, the oldest goes; BuildKit's 30 MB are cut to 20.
    const r = await janitor(e, [], { cacheMb: 20 }).prune("test");
    expect(e.removedImages).toEqual(["d-old"]);
    expect(r.buildLayers).toBe(1);
    expect(r.buildCacheBytes).toBe(10 * MB);
    expect(e.buildkit).toBe(20 * MB);
    // After a build ran out of space: every layer and all of BuildKit's cache.
    const r0 = await janitor(e, []).prune("no space", 0);
    expect(e.removedImages).toEqual(["d-old", "d-new", "d-mid"]);
    expect(r0.buildCacheBytes).toBe(20 * MB);
  });

  it("leaves an untagged image pulled by digest, and a recent layer while a build runs (it may be that build's last step)", async () => {
    const e = new FakeEngine();
    e.dangling("d-fresh", 5, 8);
    e.dangling("d-old", 1000, 8);
    e.images_.push({ id: "pulled", tags: [], digests: ["postgres@sha256:abc"], labels: {}, created: now() - 5000, sizeBytes: 300 * MB });
    e.own.set("pulled", 300 * MB);
    const j = janitor(e, []);
    await j.beforeBuild(() => undefined);
    await j.prune("during a build", 0);
    expect(e.removedImages).toEqual(["d-old"]);
    j.buildEnded();
    await j.prune("after it", 0);
    expect(e.removedImages).toEqual(["d-old", "d-fresh"]);
  });

  it("prunes before a build only when space is short, and says what it freed", async () => {
    const e = new FakeEngine();
    e.built("slipway/a:old", 900, { mb: 30 });
    const said: string[] = [];
    const j = janitor(e, [], { minFreeMb: 50 });
    await j.beforeBuild((l) => said.push(l));
    expect(said).toEqual([]);
    e.free = 20 * MB;
    await j.beforeBuild((l) => said.push(l));
    expect(said[0]).toBe("only 20 MB free for Docker (below the minimum of 50 MB): pruning what no environment needs first");
    expect(said[1]).toBe("pruned 1 image, 0 stopped containers, 0 build layers: 30 MB freed; 50 MB free");
  });

  it("runs one prune at a time: a second request joins the one in progress", async () => {
    const e = new FakeEngine();
    e.built("slipway/a:old", 900);
    const j = janitor(e, []);
    const [a, b] = await Promise.all([j.prune("one"), j.prune("two")]);
    expect(a).toBe(b);
    expect(e.removedImages).toEqual(["slipway/a:old"]);
  });
});
