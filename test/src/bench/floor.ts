import http from "node:http";
import { randomBytes } from "node:crypto";
import Dockerode from "dockerode";

/** Label on every container the benchmark starts itself, so it can remove exactly those. */
export const BENCH_LABEL = "io.slipway.bench";

export interface FloorRun {
  /** create call → first HTTP answer, ms */
  totalMs: number;
  createMs: number;
  startMs: number;
  inspectMs: number;
  /** after inspect until the first HTTP answer, ms */
  firstAnswerMs: number;
  polls: number;
  status: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function getOnce(port: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/**
 * The floor: the same image started directly through the Docker API
 * (create with an init and the web port published on an ephemeral loopback
 * port, start, inspect for the port), then GET / every 20 ms until the first
 * HTTP answer. Every container it creates is tracked in `created` and removed.
 */
export class Floor {
  readonly docker = new Dockerode();
  readonly created = new Set<string>();
  private networkName?: string;
  constructor(private readonly runLabel: string) {}

  /** A user-defined bridge network of this run (as the agent gives each environment one), created once. */
  async network(): Promise<string> {
    if (!this.networkName) {
      const name = `slipway-bench-${this.runLabel}`;
      await this.docker.createNetwork({ Name: name, Labels: { [BENCH_LABEL]: this.runLabel } });
      this.networkName = name;
    }
    return this.networkName;
  }

  /** `network`: attach to that network instead of the default bridge (a variant, to attribute the agent's start step). */
  async runOnce(image: string, opts: { network?: string; webPort?: number; deadlineMs?: number } = {}): Promise<FloorRun> {
    const webPort = opts.webPort ?? 8080;
    const deadlineMs = opts.deadlineMs ?? 30_000;
    const name = `slipway-bench-floor-${randomBytes(4).toString("hex")}`;
    const t0 = performance.now();
    const container = await this.docker.createContainer({
      name,
      Image: image,
      Labels: { [BENCH_LABEL]: this.runLabel },
      ExposedPorts: { [`${webPort}/tcp`]: {} },
      HostConfig: {
        Init: true,
        ...(opts.network ? { NetworkMode: opts.network } : {}),
        PortBindings: { [`${webPort}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: "" }] },
      },
    });
    this.created.add(container.id);
    try {
      const t1 = performance.now();
      await container.start();
      const t2 = performance.now();
      const info = await container.inspect();
      const binding = info.NetworkSettings.Ports?.[`${webPort}/tcp`]?.[0];
      const port = Number(binding?.HostPort);
      if (!port) throw new Error(`floor container ${name} has no published port for ${webPort}/tcp`);
      const t3 = performance.now();
      let polls = 0;
      for (;;) {
        polls++;
        try {
          const status = await getOnce(port, 1000);
          const t4 = performance.now();
          return { totalMs: t4 - t0, createMs: t1 - t0, startMs: t2 - t1, inspectMs: t3 - t2, firstAnswerMs: t4 - t3, polls, status };
        } catch {
          if (performance.now() - t0 > deadlineMs) throw new Error(`floor container ${name} did not answer within ${deadlineMs} ms`);
          await sleep(20);
        }
      }
    } finally {
      await this.remove(container.id);
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true });
      this.created.delete(id);
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) this.created.delete(id);
      else throw err;
    }
  }

  /** Removes every container this benchmark run created that is still there. */
  async removeAll(): Promise<void> {
    for (const id of [...this.created]) await this.remove(id).catch(() => undefined);
    const left = await this.docker.listContainers({ all: true, filters: { label: [`${BENCH_LABEL}=${this.runLabel}`] } }).catch(() => []);
    for (const c of left) await this.remove(c.Id).catch(() => undefined);
    if (this.networkName) {
      await this.docker.getNetwork(this.networkName).remove().catch(() => undefined);
      this.networkName = undefined;
    }
  }
}
