import type { ContainerMetrics, EnvironmentTraffic, MetricsBatch, MetricsSample, PushMetricsResponse } from "@slipway/proto";
import type { Logger } from "@slipway/core";
import type { BackendTraffic } from "./traffic.aggregator.js";

/** Where samples go (ControlPlaneClient.pushMetrics). */
export interface MetricsSink {
  /** Stores the batch or rejects; a rejected batch is sent again later, so the receiver must tolerate repeats of unstored batches only. */
  pushMetrics(batch: MetricsBatch): Promise<PushMetricsResponse>;
}

export interface MetricsReporterOptions {
  sink: MetricsSink;
  /** Traffic since the previous call (TrafficCollector.take). */
  traffic: () => BackendTraffic[] | Promise<BackendTraffic[]>;
  /** One reading of the host's containers (ContainerSampler.sample); omitted = none. */
  containers?: () => Promise<ContainerMetrics[]>;
  /** App and environment of an ingress backend; undefined drops the backend's traffic. */
  resolve: (backend: string) => { app: string; environment: string } | undefined;
  intervalMs: number;
  /** Samples kept while the control plane is unreachable; the oldest are dropped beyond (default 360: an hour at 10 s). */
  maxBuffered?: number;
  /** Samples per PushMetrics call (default 60). */
  maxPerPush?: number;
  log: Logger;
  now?: () => Date;
}

/**
 * Every interval: takes the ingress traffic and a container reading into one
 * MetricsSample, appends it to an in-memory buffer and pushes the buffer,
 * oldest first. A failed push keeps the samples for the next interval; while
 * the buffer is full the oldest sample is dropped for each new one. Only one
 * tick runs at a time; a tick that overruns the interval delays the next.
 */
export class MetricsReporter {
  private readonly buffer: MetricsSample[] = [];
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private lastAt: Date;
  private failing = false;
  private droppingLogged = false;
  private stopped = false;
  /** Samples dropped because the buffer was full. */
  dropped = 0;
  /** Samples the control plane accepted. */
  pushed = 0;

  constructor(private readonly opts: MetricsReporterOptions) {
    this.lastAt = this.now();
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  get buffered(): number {
    return this.buffer.length;
  }

  start(): void {
    this.lastAt = this.now();
    this.timer = setInterval(() => {
      if (!this.running && !this.stopped) this.running = this.tick().finally(() => (this.running = undefined));
    }, this.opts.intervalMs);
  }

  /**
   * Stops the timer and waits for a running tick; then, unless the control
   * plane is unreachable (stopping must not wait for it), sends the traffic
   * of the unfinished interval with what is still buffered.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
    if (!this.failing) await this.tick();
  }

  /** Collects one sample and pushes the buffer. Exposed for tests; the timer calls it otherwise. */
  async tick(): Promise<void> {
    let traffic: BackendTraffic[] = [];
    try {
      traffic = await this.opts.traffic();
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, "could not read the ingress traffic for this interval");
    }
    const at = this.now();
    let containers: ContainerMetrics[] = [];
    try {
      containers = (await this.opts.containers?.()) ?? [];
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, "could not read container metrics for this interval");
    }
    const sample: MetricsSample = {
      at,
      intervalMs: Math.max(1, at.getTime() - this.lastAt.getTime()),
      containers,
      traffic: this.toTraffic(traffic),
    };
    this.lastAt = at;
    this.enqueue(sample);
    await this.flush();
  }

  private toTraffic(backends: BackendTraffic[]): EnvironmentTraffic[] {
    const out: EnvironmentTraffic[] = [];
    for (const b of backends) {
      const env = this.opts.resolve(b.backend);
      if (!env) {
        this.opts.log.debug({ backend: b.backend, requests: b.requests }, "traffic of a backend without an environment; dropped");
        continue;
      }
      out.push({
        app: env.app,
        environment: env.environment,
        requests: b.requests,
        status1xx: b.status[0],
        status2xx: b.status[1],
        status3xx: b.status[2],
        status4xx: b.status[3],
        status5xx: b.status[4],
        latencyP50Ms: b.p50,
        latencyP95Ms: b.p95,
        latencyP99Ms: b.p99,
      });
    }
    return out;
  }

  private enqueue(sample: MetricsSample): void {
    const max = this.opts.maxBuffered ?? 360;
    this.buffer.push(sample);
    const excess = this.buffer.length - max;
    if (excess > 0) {
      this.buffer.splice(0, excess);
      this.dropped += excess;
      // Once per outage: an unreachable control plane must not flood the log.
      if (!this.droppingLogged) this.opts.log.warn({ dropped: this.dropped, buffered: this.buffer.length }, "metrics buffer full; dropping the oldest samples");
      this.droppingLogged = true;
    }
  }

  /** Pushes buffered samples oldest first until the buffer is empty or a push fails. */
  private async flush(): Promise<void> {
    const per = this.opts.maxPerPush ?? 60;
    while (this.buffer.length > 0) {
      const batch = this.buffer.slice(0, per);
      try {
        await this.opts.sink.pushMetrics({ samples: batch });
      } catch (err) {
        if (!this.failing) this.opts.log.warn({ err: (err as Error).message, buffered: this.buffer.length }, "cannot push metrics; keeping them for the next interval");
        this.failing = true;
        return;
      }
      // By identity: samples dropped from the front meanwhile must not shift what is removed.
      const sent = new Set(batch);
      const kept = this.buffer.filter((s) => !sent.has(s));
      this.buffer.splice(0, this.buffer.length, ...kept);
      this.pushed += batch.length;
      if (this.failing) this.opts.log.info({ buffered: this.buffer.length, dropped: this.dropped }, "pushing metrics again");
      this.failing = false;
      this.droppingLogged = false;
    }
  }
}
