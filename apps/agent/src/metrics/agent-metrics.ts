import type { Logger } from "@slipway/core";
import type { ContainerRuntime } from "../docker/container-runtime.js";
import { ContainerSampler, type ContainerStatsReader } from "./container-stats.js";
import { MetricsReporter, type MetricsSink } from "./metrics.reporter.js";
import { TrafficAggregator } from "./traffic.aggregator.js";
import { TrafficLogReceiver } from "./traffic-log.receiver.js";

/** The traffic side, started before the ingress because its port is part of the HAProxy config. */
export interface TrafficCollector {
  port: number;
  aggregator: TrafficAggregator;
  close(): Promise<void>;
}

/** Listens for HAProxy's request log on 127.0.0.1:port (0 = any free port). */
export async function startTrafficCollector(port: number, log: Logger): Promise<TrafficCollector> {
  const aggregator = new TrafficAggregator();
  const receiver = new TrafficLogReceiver((line) => aggregator.record(line), log);
  const bound = await receiver.listen(port);
  return { port: bound, aggregator, close: () => receiver.close() };
}

/**
 * App and environment of a backend: from the environments this agent serves,
 * else (a backend whose deployment has not been recorded yet) split at the
 * first `--` of a name an older agent gave (`<app>--<env>`); backends named
 * after the environment's id (`env-<hex>`) have none and are not guessed.
 */
export function backendResolver(describe: (slug: string) => { app: string; environment: string } | undefined) {
  return (backend: string): { app: string; environment: string } | undefined => {
    const known = describe(backend);
    if (known) return { app: known.app, environment: known.environment };
    const i = backend.indexOf("--");
    if (i <= 0 || i + 2 >= backend.length) return undefined;
    return { app: backend.slice(0, i), environment: backend.slice(i + 2) };
  };
}

/** Starts sampling containers and traffic every interval and pushing to the control plane; `stop()` sends the last interval. */
export function startMetricsReporting(opts: {
  sink: MetricsSink;
  traffic: TrafficCollector;
  runtime: Pick<ContainerRuntime, "list">;
  reader: ContainerStatsReader;
  hostId: string;
  describe: (slug: string) => { app: string; environment: string } | undefined;
  intervalMs: number;
  log: Logger;
}): MetricsReporter {
  const sampler = new ContainerSampler({ runtime: opts.runtime, reader: opts.reader, hostId: opts.hostId, log: opts.log });
  const reporter = new MetricsReporter({
    sink: opts.sink,
    traffic: () => opts.traffic.aggregator.drain(),
    containers: () => sampler.sample(),
    resolve: backendResolver(opts.describe),
    intervalMs: opts.intervalMs,
    log: opts.log,
  });
  reporter.start();
  return reporter;
}
