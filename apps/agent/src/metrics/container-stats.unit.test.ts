import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { LABELS } from "@slipway/core";
import type { ContainerSummary } from "../docker/container-runtime.js";
import { ContainerSampler, cpuPercent, memoryBytes, type DockerStats } from "./container-stats.js";

const log = pino({ level: "silent" });

describe("cpuPercent", () => {
  it("is the container's share of the host's CPU time times the CPUs, like docker stats", () => {
    // 0.5 s of CPU while 4 CPUs ran 4 s in total (1 s of wall time): half a core
    const prev = { cpu_usage: { total_usage: 1e9 }, system_cpu_usage: 100e9, online_cpus: 4 };
    const cur = { cpu_usage: { total_usage: 1.5e9 }, system_cpu_usage: 104e9, online_cpus: 4 };
    expect(cpuPercent(cur, prev)).toBeCloseTo(50, 6);
  });

  it("counts CPUs from percpu_usage when online_cpus is missing (older engines)", () => {
    const prev = { cpu_usage: { total_usage: 0 }, system_cpu_usage: 10e9 };
    const cur = { cpu_usage: { total_usage: 2e9, percpu_usage: [1e9, 1e9] }, system_cpu_usage: 12e9 };
    expect(cpuPercent(cur, prev)).toBeCloseTo(200, 6);
  });

  it("is 0 without a previous reading, when time did not advance or a counter went back", () => {
    const cur = { cpu_usage: { total_usage: 5e9 }, system_cpu_usage: 50e9, online_cpus: 2 };
    expect(cpuPercent(cur, undefined)).toBe(0);
    expect(cpuPercent(cur, {})).toBe(0);
    expect(cpuPercent(cur, cur)).toBe(0);
    expect(cpuPercent(cur, { cpu_usage: { total_usage: 6e9 }, system_cpu_usage: 40e9 })).toBe(0);
  });
});

describe("memoryBytes", () => {
  it("leaves out the reclaimable page cache on cgroup v2 and v1", () => {
    expect(memoryBytes({ usage: 100, stats: { inactive_file: 30 } })).toBe(70);
    expect(memoryBytes({ usage: 100, stats: { total_inactive_file: 40 } })).toBe(60);
    expect(memoryBytes({ usage: 100 })).toBe(100);
    expect(memoryBytes({ usage: 10, stats: { inactive_file: 30 } })).toBe(10);
    expect(memoryBytes(undefined)).toBe(0);
  });
});

describe("ContainerSampler", () => {
  const container = (id: string, state = "running", env = "test"): ContainerSummary => ({
    id,
    name: id,
    state,
    labels: { [LABELS.host]: "h1", [LABELS.app]: "shop", [LABELS.environment]: env, [LABELS.role]: "web" },
  });

  it("reads running web containers of this host and averages CPU since its own previous reading", async () => {
    const listed: Array<Record<string, string>> = [];
    let readings = 0;
    const stats = new Map<string, DockerStats[]>([
      ["a", [
        { cpu_stats: { cpu_usage: { total_usage: 2e9 }, system_cpu_usage: 20e9, online_cpus: 2 }, precpu_stats: { cpu_usage: { total_usage: 1.9e9 }, system_cpu_usage: 19e9 }, memory_stats: { usage: 5000, limit: 1e9, stats: { inactive_file: 1000 } } },
        // 10 s later: 1 s of CPU over 20 s of host CPU time on 2 CPUs = 10 %
        { cpu_stats: { cpu_usage: { total_usage: 3e9 }, system_cpu_usage: 40e9, online_cpus: 2 }, precpu_stats: { cpu_usage: { total_usage: 2.99e9 }, system_cpu_usage: 39e9 }, memory_stats: { usage: 6000, limit: 1e9 } },
      ]],
    ]);
    const sampler = new ContainerSampler({
      runtime: { list: async (labels) => (listed.push(labels), [container("a"), container("b", "exited")]) },
      reader: { stats: async (id) => stats.get(id)?.[readings++] },
      hostId: "h1",
      log,
    });
    const first = await sampler.sample();
    expect(listed[0]).toEqual({ [LABELS.host]: "h1", [LABELS.role]: "web" });
    // first reading: Docker's precpu (0.1 s over 1 s on 2 CPUs = 20 %)
    expect(first).toEqual([{ containerId: "a", app: "shop", environment: "test", cpuPercent: expect.closeTo(20, 6), memoryBytes: 4000, memoryLimitBytes: 1e9 }]);
    const second = await sampler.sample();
    expect(second[0]!.cpuPercent).toBeCloseTo(10, 6);
    expect(second[0]!.memoryBytes).toBe(6000);
  });

  it("skips a container whose stats cannot be read and keeps the others", async () => {
    const sampler = new ContainerSampler({
      runtime: { list: async () => [container("gone"), container("broken"), container("ok")] },
      reader: {
        stats: async (id) => {
          if (id === "broken") throw new Error("engine hiccup");
          if (id === "gone") return undefined;
          return { cpu_stats: { cpu_usage: { total_usage: 1 }, system_cpu_usage: 1 }, memory_stats: { usage: 7 } };
        },
      },
      hostId: "h1",
      log,
    });
    expect((await sampler.sample()).map((c) => c.containerId)).toEqual(["ok"]);
  });
});
