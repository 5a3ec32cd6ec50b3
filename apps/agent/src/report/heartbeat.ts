import os from "node:os";
import { statfs } from "node:fs/promises";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import type { EnvironmentObservation, HeartbeatRequest, HeartbeatResponse } from "@slipway/proto";
import { LABELS, type Logger } from "@slipway/core";
import type { ControlPlaneClient } from "./control-plane.client.js";
import type { ContainerRuntime } from "../docker/container-runtime.js";
import type { IncidentQueue } from "./incidents.js";
import type { ServedCertificatesReport } from "./served-certificates.js";

/**
 * What this host offers: its cores and memory (or what the operator lets the platform place here,
 * SLIPWAY_AGENT_CPUS / SLIPWAY_AGENT_MEMORY_MB, e.g. to keep room for other services), and its disk.
 */
export async function hostCapacity(dir: string, allocatable: { cpus?: number; memoryMb?: number } = {}): Promise<{ cpus: number; memoryBytes: number; diskBytes: number }> {
  const fs = await statfs(dir).catch(() => undefined);
  return {
    cpus: allocatable.cpus ?? os.cpus().length,
    memoryBytes: allocatable.memoryMb !== undefined ? allocatable.memoryMb * 1024 * 1024 : os.totalmem(),
    diskBytes: fs ? fs.blocks * fs.bsize : 0,
  };
}

/**
 * Keeps a Heartbeat stream open and sends the host's state every interval;
 * reopens the stream with backoff when it breaks.
 */
export class Heartbeater {
  private timer?: NodeJS.Timeout;
  private stream?: ClientDuplexStream<HeartbeatRequest, HeartbeatResponse>;
  private stopped = false;
  lastAnsweredAt?: Date;

  constructor(
    private readonly client: ControlPlaneClient,
    private readonly runtime: ContainerRuntime,
    private readonly opts: {
      hostId: string;
      intervalMs: number;
      version: string;
      stateDir: string;
      /** SLIPWAY_AGENT_CPUS / SLIPWAY_AGENT_MEMORY_MB, when set. */
      allocatable?: { cpus?: number; memoryMb?: number };
      log: Logger;
      onCancelRequested?: (jobIds: string[]) => void;
      /** The environments this agent serves, sent with every beat. */
      environments?: () => EnvironmentObservation[];
      /** host:port of this host's ingress, for drains. */
      ingressAddress?: string;
      /** Incidents to report (killed containers), settled when a beat that carried them is answered. */
      incidents?: IncidentQueue;
      /** The certificates the ingress serves, sent when they changed (issue 15). */
      servedCertificates?: ServedCertificatesReport;
      /** Space on Docker's data root (what fills with images and logs); the state directory's file system when unknown. */
      dataRoot?: () => Promise<{ freeBytes: number; totalBytes: number } | undefined>;
    },
  ) {}

  start(): void {
    this.open();
    this.timer = setInterval(() => void this.beat(), this.opts.intervalMs);
    void this.beat();
  }

  private open(): void {
    if (this.stopped) return;
    const s = this.client.heartbeat();
    s.on("data", (res: HeartbeatResponse) => {
      this.lastAnsweredAt = new Date();
      this.opts.incidents?.answered();
      this.opts.servedCertificates?.answeredBeat();
      if (res.cancelRequested.length) this.opts.onCancelRequested?.(res.cancelRequested);
    });
    const reopen = (why: string) => {
      if (this.stream !== s) return;
      this.stream = undefined;
      this.opts.incidents?.reset();
      this.opts.servedCertificates?.reset();
      if (!this.stopped) {
        this.opts.log.warn({ why }, "heartbeat stream closed; reopening");
        setTimeout(() => this.open(), 1000);
      }
    };
    s.on("error", (err) => reopen(err.message));
    s.on("end", () => reopen("ended by the control plane"));
    this.stream = s;
  }

  private async beat(): Promise<void> {
    if (!this.stream || this.stopped) return;
    try {
      const containers = await this.runtime.list({ [LABELS.host]: this.opts.hostId });
      const fs = await statfs(this.opts.stateDir).catch(() => undefined);
      const cap = await hostCapacity(this.opts.stateDir, this.opts.allocatable);
      const root = await this.opts.dataRoot?.().catch(() => undefined);
      const served = await this.opts.servedCertificates?.take().catch((err: unknown) => {
        this.opts.log.warn({ err: (err as Error).message }, "cannot read the served certificates");
        return undefined;
      });
      const disk = root
        ? { total: root.totalBytes, free: root.freeBytes, used: root.totalBytes - root.freeBytes }
        : { total: cap.diskBytes, free: fs ? fs.bavail * fs.bsize : 0, used: fs ? (fs.blocks - fs.bfree) * fs.bsize : 0 };
      this.stream?.write({
        version: this.opts.version,
        ingressAddress: this.opts.ingressAddress ?? "",
        cpuLoad: os.loadavg()[0]! / Math.max(1, cap.cpus),
        memoryUsedBytes: os.totalmem() - os.freemem(),
        diskUsedBytes: disk.used,
        diskFreeBytes: disk.free,
        capacity: { ...cap, diskBytes: disk.total },
        containers: containers.map((c) => ({
          id: c.id,
          app: c.labels[LABELS.app] ?? "",
          environment: c.labels[LABELS.environment] ?? "",
          deploymentId: c.labels[LABELS.deployment] ?? "",
          state: c.state,
        })),
        environments: this.opts.environments?.() ?? [],
        incidents: this.opts.incidents?.take() ?? [],
        servedCertificates: served?.servedCertificates ?? [],
        servedCertificatesReported: served?.servedCertificatesReported ?? false,
      });
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, "heartbeat failed");
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.stream?.end();
    this.stream = undefined;
  }
}
