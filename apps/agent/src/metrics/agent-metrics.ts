import type { Logger } from "@slipway/core";
import type { ContainerRuntime } from "../docker/container-runtime.js";
import { ContainerSampler, type ContainerStatsReader } from "./container-stats.js";
import { MetricsReporter, type MetricsSink } from "./metrics.reporter.js";
import { TrafficAggregator, isEnvironmentBackend, withCounts, type BackendTraffic } from "./traffic.aggregator.js";
import { TrafficCounters, type CounterSource } from "./traffic-counters.js";
import { LogSampler, type SamplingTargets } from "./log-sampler.js";
import { TrafficLogReceiver } from "./traffic-log.receiver.js";

/**
 * The traffic side, started before the ingress because its log port is part of the HAProxy config.
 * Once the ingress runs, `countWith` hands it HAProxy's counters: counts then come from them
 * (exact) and the request log becomes a latency sample the collector keeps small (LogSampler).
 * Without them (an ingress that is not HAProxy), the log counts every request as before.
 */
export interface TrafficCollector {
  port: number;
  aggregator: TrafficAggregator;
  countWith(source: CounterSource, setSampling: (changes: Map<string, number>) => Promise<void>): Promise<void>;
  /** The traffic since the previous call. */
  take(): Promise<BackendTraffic[]>;
  close(): Promise<void>;
}

/** Listens for HAProxy's request log on 127.0.0.1:port (0 = any free port). */
export async function startTrafficCollector(port: number, log: Logger, opts: { sampling?: SamplingTargets; counterPollMs?: number } = {}): Promise<TrafficCollector> {
  const aggregator = new TrafficAggregator();
  const receiver = new TrafficLogReceiver((line) => aggregator.record(line), log);
  const bound = await receiver.listen(port);
  let counters: TrafficCounters | undefined;
  return {
    port: bound,
    aggregator,
    countWith: async (source, setSampling) => {
      const sampler = new LogSampler({ apply: setSampling, ...(opts.sampling ? { targets: opts.sampling } : {}), log });
      counters = new TrafficCounters({ source, log, ...(opts.counterPollMs ? { pollMs: opts.counterPollMs } : {}), onRates: (rates) => sampler.onRates(new Map([...rates].filter(([b]) => isEnvironmentBackend(b)))) });
      await counters.start();
      receiver.asSample();
    },
    take: async () => (counters ? withCounts(await counters.take(), aggregator.drain()) : aggregator.drain()),
    close: async () => {
      counters?.stop();
      await receiver.close();
    },
  };
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
    traffic: () => opts.traffic.take(),
    containers: () => sampler.sample(),
    resolve: backendResolver(opts.describe),
    intervalMs: opts.intervalMs,
    log: opts.log,
  });
  reporter.start();
  return reporter;
}
