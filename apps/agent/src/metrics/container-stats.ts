import type { ContainerMetrics } from "@slipway/proto";
import { LABELS, type Logger } from "@slipway/core";
import type { ContainerRuntime } from "../docker/container-runtime.js";
import type { ContainerStatsReader, CpuStats, DockerStats } from "../docker/container-access.js";

// The stats' shape and the reader are the docker adapter's (DockerRuntime reads them).
export type { ContainerStatsReader, CpuStats, DockerStats };

/**
 * CPU use in percent of one core between two readings, as `docker stats`
 * computes it: the container's share of the host's CPU time over the same
 * period, times the number of CPUs. 0 when either reading lacks a counter or
 * time did not advance (the first reading of a container has an empty
 * precpu_stats).
 */
export function cpuPercent(cur: CpuStats | undefined, prev: CpuStats | undefined): number {
  const usage = (cur?.cpu_usage?.total_usage ?? 0) - (prev?.cpu_usage?.total_usage ?? 0);
  const system = (cur?.system_cpu_usage ?? 0) - (prev?.system_cpu_usage ?? 0);
  if (!prev?.system_cpu_usage || !cur?.system_cpu_usage || system <= 0 || usage < 0) return 0;
  const cpus = cur.online_cpus || cur.cpu_usage?.percpu_usage?.length || 1;
  return (usage / system) * cpus * 100;
}

/**
 * Memory in use without the reclaimable page cache, as `docker stats` shows
 * it: cgroup v2 reports `inactive_file`, v1 `total_inactive_file`.
 */
export function memoryBytes(m: DockerStats["memory_stats"]): number {
  const usage = m?.usage ?? 0;
  const inactive = m?.stats?.["inactive_file"] ?? m?.stats?.["total_inactive_file"] ?? 0;
  return inactive < usage ? usage - inactive : usage;
}

/**
 * Per-container CPU and memory of this host's running web containers. CPU is
 * averaged over the whole time since the previous sample of the same
 * container (its own earlier reading), falling back to Docker's precpu_stats
 * (about a second) for a container seen for the first time.
 */
export class ContainerSampler {
  private previous = new Map<string, CpuStats>();

  constructor(
    private readonly opts: {
      runtime: Pick<ContainerRuntime, "list">;
      reader: ContainerStatsReader;
      hostId: string;
      log: Logger;
      /** Stats read at once; Docker takes about a second for each (default 8). */
      concurrency?: number;
    },
  ) {}

  /** One reading of every running web container of this host. Not to be called concurrently with itself. */
  async sample(): Promise<ContainerMetrics[]> {
    const containers = (await this.opts.runtime.list({ [LABELS.host]: this.opts.hostId, [LABELS.role]: "web" })).filter((c) => c.state === "running");
    const out: ContainerMetrics[] = [];
    const next = new Map<string, CpuStats>();
    const queue = [...containers];
    const worker = async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const app = c.labels[LABELS.app];
        const environment = c.labels[LABELS.environment];
        if (!app || !environment) continue;
        let s: DockerStats | undefined;
        try {
          s = await this.opts.reader.stats(c.id);
        } catch (err) {
          this.opts.log.warn({ containerId: c.id, err: (err as Error).message }, "could not read container stats");
          continue;
        }
        if (!s?.cpu_stats) continue;
        next.set(c.id, s.cpu_stats);
        out.push({
          containerId: c.id,
          app,
          environment,
          cpuPercent: cpuPercent(s.cpu_stats, this.previous.get(c.id) ?? s.precpu_stats),
          memoryBytes: memoryBytes(s.memory_stats),
          memoryLimitBytes: s.memory_stats?.limit ?? 0,
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency ?? 8, Math.max(1, containers.length)) }, worker));
    // Only containers seen now: removed ones must not accumulate.
    this.previous = next;
    return out;
  }
}
