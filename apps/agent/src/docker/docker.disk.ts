import { statfs } from "node:fs/promises";
import type Dockerode from "dockerode";
import { isGone, statusOf } from "./docker.errors.js";
import { labelFilters } from "./labels.js";

/** Space on the file system of Docker's data root (images, containers, their logs, build cache). */
export interface DataRootSpace {
  path: string;
  freeBytes: number;
  totalBytes: number;
}

export interface EngineImage {
  id: string;
  /** "repo:tag" names; empty for a dangling image. */
  tags: string[];
  /** Registry digests (an image pulled by digest has no tag but is not dangling). */
  digests: string[];
  labels: Record<string, string>;
  /** Seconds since the epoch. */
  created: number;
  /** Its size, layers shared with other images included (what removing it gives back is at most this). */
  sizeBytes: number;
}

export interface EngineContainer {
  id: string;
  name: string;
  state: string;
  labels: Record<string, string>;
  /** Seconds since the epoch. */
  created: number;
}

/** What the disk janitor needs of the engine (DockerDisk; a fake in unit tests). */
export interface DiskEngine {
  /** undefined when the data root is not visible from here (a remote engine). */
  dataRoot(): Promise<DataRootSpace | undefined>;
  /** Top-level images (a cheap listing). */
  images(): Promise<EngineImage[]>;
  /** Each image's own bytes, those no other image shares (/system/df: costly on a busy host, so asked only when needed). */
  uniqueBytes(): Promise<Map<string, number>>;
  /** False when the engine refused (the image is in use, or has dependent children). */
  removeImage(id: string): Promise<boolean>;
  containers(labels: Record<string, string>): Promise<EngineContainer[]>;
  removeContainer(id: string): Promise<void>;
  /** Prunes BuildKit's cache down to `keepBytes`; returns what it freed. */
  pruneBuildCache(keepBytes: number): Promise<number>;
}

interface DfImage {
  Id: string;
  Size: number;
  SharedSize: number;
}

/** DiskEngine on the Docker Engine API. */
export class DockerDisk implements DiskEngine {
  private root?: Promise<string>;

  constructor(private readonly docker: Dockerode) {}

  async dataRoot(): Promise<DataRootSpace | undefined> {
    this.root ??= this.docker.info().then((i: { DockerRootDir?: string }) => i.DockerRootDir ?? "/var/lib/docker");
    const path = await this.root.catch(() => {
      this.root = undefined; // asked again next time: the engine may be restarting
      return undefined;
    });
    if (!path) return undefined;
    const fs = await statfs(path).catch(() => undefined);
    if (!fs) return undefined;
    return { path, freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
  }

  async images(): Promise<EngineImage[]> {
    const list = await this.docker.listImages({ all: false });
    return list.map((i) => ({
      id: i.Id,
      tags: (i.RepoTags ?? []).filter((t) => t !== "<none>:<none>"),
      digests: (i.RepoDigests ?? []).filter((d) => !d.startsWith("<none>@")),
      labels: i.Labels ?? {},
      created: i.Created,
      sizeBytes: i.Size,
    }));
  }

  async uniqueBytes(): Promise<Map<string, number>> {
    const df = (await this.docker.df()) as { Images?: DfImage[] | null };
    return new Map((df.Images ?? []).map((i) => [i.Id, Math.max(0, i.Size - Math.max(0, i.SharedSize))]));
  }

  async removeImage(id: string): Promise<boolean> {
    try {
      await this.docker.getImage(id).remove({ force: false, noprune: false });
      return true;
    } catch (err) {
      if (isGone(err)) return true;
      if (statusOf(err) === 409) return false;
      throw err;
    }
  }

  async containers(labels: Record<string, string>): Promise<EngineContainer[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: labelFilters(labels) } });
    return list.map((c) => ({ id: c.Id, name: (c.Names?.[0] ?? c.Id).replace(/^\//, ""), state: c.State, labels: c.Labels ?? {}, created: c.Created }));
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: false, v: true });
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }

  async pruneBuildCache(keepBytes: number): Promise<number> {
    const res = await new Promise<{ SpaceReclaimed?: number }>((resolve, reject) => {
      this.docker.modem.dial(
        { path: "/build/prune?", method: "POST", options: { "keep-storage": keepBytes }, statusCodes: { 200: true, 500: "server error" } },
        (err: unknown, data: unknown) => (err ? reject(err) : resolve((data ?? {}) as { SpaceReclaimed?: number })),
      );
    });
    return res.SpaceReclaimed ?? 0;
  }
}
