import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { LABELS, type Logger } from "@slipway/core";
import type { AgentConfig } from "./config.js";
import { ControlPlaneClient } from "./report/control-plane.client.js";
import { refusedByControlPlane, refusedForGood } from "./report/refusal.js";
import { Heartbeater, hostCapacity } from "./report/heartbeat.js";
import { JobReporter } from "./report/job-reporter.js";
import { IncidentQueue } from "./report/incidents.js";
import { ServedCertificatesReport } from "./report/served-certificates.js";
import { AGENT_LABELS } from "./docker/labels.js";
import { JobConsumer, type JobHandler } from "./jobs/job-consumer.js";
import { runDeployment } from "./jobs/deploy.runner.js";
import { runEnvironmentJob } from "./jobs/environment.runner.js";
import { EnvironmentRegistry } from "./envs/environment-registry.js";
import { Environments } from "./envs/environments.js";
import { Sleeper } from "./envs/sleeper.js";
import { Reconciler } from "./envs/reconciler.js";
import { Waker } from "./envs/waker.js";
import { CANCEL_REASON } from "./steps/context.js";
import { runDataJob } from "./data/data.runner.js";
import { LogServer } from "./logs/log-server.js";
import { connectRequests, createNatsSeed, natsPublicKey, type AgentNats } from "./nats/connection.js";
import { ShellServer } from "./logs/shell-server.js";
import { DockerRuntime } from "./docker/docker.runtime.js";
import { ProcessPinner } from "./ingress/process-pinner.js";
import { BUSY_SHARE, ingressCores } from "./docker/cpuset.js";
import { GitSource } from "./git/git.source.js";
import { HaproxyIngress } from "./ingress/haproxy.ingress.js";
import { startMetricsReporting, startTrafficCollector } from "./metrics/agent-metrics.js";
import type { ContainerRuntime } from "./docker/container-runtime.js";
import type { Ingress } from "./ingress/ingress.js";
import { DiskJanitor } from "./disk/janitor.js";
import type { SourceRepository } from "./git/source-repository.js";

/** What the agent keeps in its state dir after registering (mode 0600). */
export interface AgentIdentity {
  hostId: string;
  credential: string;
  natsUrl: string;
  jobsStream: string;
  jobsConsumer: string;
  heartbeatIntervalMs: number;
  /** This host's NATS nkey seed (generated here; only its public key leaves the agent). */
  natsSeed?: string;
  /** The inbox prefix this host's NATS user may use, as the control plane last answered. */
  natsInboxPrefix?: string;
}

export interface RunningAgent {
  identity: AgentIdentity;
  ingress: Ingress;
  /** The environments this agent serves (sleep, wake, stop, start). */
  envs: Environments;
  /** Port of the waker on 127.0.0.1. */
  wakerPort: number;
  /**
   * Stops consuming, lets running jobs finish within the grace period, stops
   * the sleeper and the waker. Leaves HAProxy and containers serving (a
   * sleeping environment cannot wake until the agent is back).
   */
  stop(): Promise<void>;
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

function identityFile(config: AgentConfig): string {
  return path.join(config.stateDir, "identity.json");
}

async function saveIdentity(config: AgentConfig, identity: AgentIdentity): Promise<void> {
  const file = identityFile(config);
  await writeFile(file + ".tmp", JSON.stringify(identity, null, 2), { mode: 0o600 });
  await rename(file + ".tmp", file);
}

async function loadOrRegister(config: AgentConfig, client: ControlPlaneClient, log: Logger): Promise<AgentIdentity> {
  const file = identityFile(config);
  try {
    return JSON.parse(await readFile(file, "utf8")) as AgentIdentity;
  } catch {
    // not registered yet
  }
  if (!config.joinToken) throw new Error("this agent is not registered yet: set SLIPWAY_JOIN_TOKEN (create one with POST /v1/join-tokens)");
  const res = await client.register({
    joinToken: config.joinToken,
    hostname: config.name,
    labels: config.labels,
    capacity: await hostCapacity(config.stateDir, allocatableOf(config)),
    version: config.version,
    ingressAddress: config.ingressAdvertise,
  });
  const identity: AgentIdentity = {
    hostId: res.hostId,
    credential: res.credential,
    natsUrl: res.natsUrl,
    jobsStream: res.jobsStream,
    jobsConsumer: res.jobsConsumer,
    heartbeatIntervalMs: res.heartbeatIntervalMs,
  };
  await saveIdentity(config, identity);
  log.info({ hostId: identity.hostId }, "registered with the control plane");
  return identity;
}

/**
 * This host's NATS identity: an nkey pair generated here on first use (the seed stays in the
 * identity file), whose public key the control plane makes this host's NATS user, allowed only
 * its own subjects and inbox prefix. Asked at every start (the control plane answers at once when
 * nothing changed); when the control plane cannot be reached, what it answered last is used.
 */
async function configureNats(config: AgentConfig, client: ControlPlaneClient, identity: AgentIdentity, log: Logger): Promise<AgentNats> {
  if (!identity.natsSeed) {
    identity.natsSeed = createNatsSeed();
    await saveIdentity(config, identity);
  }
  const seed = identity.natsSeed;
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await client.configureNats(natsPublicKey(seed));
      if (identity.natsInboxPrefix !== res.inboxPrefix || identity.natsUrl !== res.natsUrl) {
        identity.natsInboxPrefix = res.inboxPrefix;
        identity.natsUrl = res.natsUrl;
        await saveIdentity(config, identity);
      }
      if (!res.perHostUsers) log.warn("the control plane does not give this host its own NATS user (an external NATS it does not configure)");
      return { url: config.natsUrl ?? res.natsUrl, seed, inboxPrefix: res.inboxPrefix };
    } catch (err) {
      if (refusedByControlPlane(err)) throw new Error(`the control plane refused this host's NATS key: ${(err as Error).message}`);
      if (identity.natsInboxPrefix) {
        log.warn({ err: (err as Error).message }, "cannot reach the control plane to confirm this host's NATS key; using the one it accepted last");
        return { url: config.natsUrl ?? identity.natsUrl, seed, inboxPrefix: identity.natsInboxPrefix };
      }
      log.warn({ err: (err as Error).message, attempt }, "cannot configure this host's NATS user yet; retrying in 2 s");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

/** Starts the agent: identity, ingress, heartbeats, job consumption. */
export async function startAgent(
  config: Readonly<AgentConfig>,
  log: Logger,
  adapters: { runtime?: ContainerRuntime; git?: SourceRepository; ingress?: Ingress } = {},
): Promise<RunningAgent> {
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const client = new ControlPlaneClient(config.controlPlane, {
    ...(config.grpcTlsCa ? { tlsCaFile: config.grpcTlsCa } : {}),
    ...(config.grpcTlsCert ? { tlsCertFile: config.grpcTlsCert } : {}),
    ...(config.grpcTlsKey ? { tlsKeyFile: config.grpcTlsKey } : {}),
  });
  const identity = await loadOrRegister(config, client, log);
  client.setCredential(identity.credential);
  const hostLog = log.child({ hostId: identity.hostId });
  const nats = await configureNats(config, client, identity, hostLog);

  // Runtime logs, shells and container stats always read the local engine, also when tests fake the runtime.
  const docker = new DockerRuntime({ logger: hostLog, logRotation: { maxMb: config.containerLogMaxMb, maxFiles: config.containerLogMaxFiles } });
  const runtime = adapters.runtime ?? docker;
  const git = adapters.git ?? new GitSource({ dir: path.join(config.stateDir, "git"), logger: hostLog });
  // The waker listens first: its port is part of the HAProxy config.
  const waker = new Waker(hostLog.child({ component: "waker" }));
  const wakerPort = await waker.listen(config.wakerPort);
  // Likewise the traffic log receiver: HAProxy sends it one line per request.
  const traffic = await startTrafficCollector(config.metricsLogPort, hostLog.child({ component: "metrics" }));
  const ingress =
    adapters.ingress ??
    new HaproxyIngress({
      dir: path.join(config.stateDir, "haproxy"),
      httpPort: config.ingressHttpPort,
      ...(config.ingressHttpsPort !== undefined ? { httpsPort: config.ingressHttpsPort } : {}),
      bindAddress: config.ingressBind,
      wakerPort,
      trafficLogPort: traffic.port,
      logger: hostLog.child({ component: "ingress" }),
    });
  await ingress.start();
  // Counts from HAProxy's own counters, the request log thinned to a latency sample (issue 10).
  if (ingress instanceof HaproxyIngress) {
    await traffic.countWith(ingress.counterSource(), (changes) => ingress.setLogSampling(changes)).catch((err: unknown) =>
      hostLog.warn({ err: (err as Error).message }, "cannot read HAProxy's counters; counting requests from the log"),
    );
  }
  // HAProxy kept off the cores of confined containers that use their whole limit (docker/cpuset.ts).
  const stopIngressCores = runtime === docker && ingress instanceof HaproxyIngress ? keepIngressOffBusyCores(docker, ingress, identity.hostId, hostLog.child({ component: "cpu" })) : () => undefined;
  const registry = new EnvironmentRegistry(config.stateDir);
  await registry.load();
  const envs = new Environments({ hostId: identity.hostId, registry, runtime, ingress, log: hostLog.child({ component: "environments" }) });
  await envs.adopt();
  waker.serve(envs);
  const sleeper = new Sleeper({ envs, ingress, log: hostLog.child({ component: "sleeper" }) });
  sleeper.start();
  const reconciler = new Reconciler({ envs, log: hostLog.child({ component: "reconcile" }), intervalMs: config.reconcileIntervalMs });
  reconciler.start();

  // Web containers killed for memory: logged here, reported with the next heartbeats (the engine restarts them).
  const incidents = new IncidentQueue();
  // The engine may report one kill more than once (an event per process the kernel killed in the container).
  const lastKill = new Map<string, number>();
  const stopWatchingOom = docker.watchOomKills({ [LABELS.managed]: "true", [LABELS.host]: identity.hostId, [LABELS.role]: "web" }, (kill) => {
    const seen = lastKill.get(kill.id);
    if (seen !== undefined && kill.at.getTime() - seen < 5000) return;
    lastKill.set(kill.id, kill.at.getTime());
    for (const [id, at] of lastKill) if (kill.at.getTime() - at > 60_000) lastKill.delete(id);
    hostLog.warn({ container: kill.name, app: kill.labels[LABELS.app], environment: kill.labels[LABELS.environment] }, "container killed: out of memory (the engine restarts it)");
    incidents.add({ environmentId: kill.labels[AGENT_LABELS.environmentId] ?? "", container: kill.name, reason: "killed: out of memory", at: kill.at });
  });

  // Per running job: aborting with CANCEL_REASON cancels it at once (a release command is killed, a probe stops).
  const cancellers = new Map<string, AbortController>();
  // Disk hygiene (issue 12): what no environment needs goes, on a schedule, after deployments and when space is short.
  const diskEngine = docker.disk();
  const janitor = new DiskJanitor({
    engine: diskEngine,
    hostId: identity.hostId,
    environments: () => envs.all(),
    keepImages: config.rollbackImages,
    buildCacheMaxBytes: config.buildCacheMaxMb * 1024 * 1024,
    minFreeBytes: config.diskMinFreeMb * 1024 * 1024,
    log: hostLog.child({ component: "disk" }),
  });
  janitor.start(config.pruneIntervalMs);
  const heartbeater = new Heartbeater(client, runtime, {
    hostId: identity.hostId,
    intervalMs: identity.heartbeatIntervalMs,
    version: config.version,
    stateDir: config.stateDir,
    allocatable: allocatableOf(config),
    log: hostLog.child({ component: "heartbeat" }),
    onCancelRequested: (ids) => ids.forEach((id) => cancellers.get(id)?.abort(CANCEL_REASON)),
    environments: () => envs.observations(),
    ingressAddress: config.ingressAdvertise,
    incidents,
    // Read again when the store changed, and once a minute in case the proxy restarted.
    servedCertificates: new ServedCertificatesReport(ingress.tls, { refreshMs: 60_000 }),
    dataRoot: () => diskEngine.dataRoot(),
  });
  heartbeater.start();
  const metrics = startMetricsReporting({
    sink: client,
    traffic,
    runtime,
    reader: docker,
    hostId: identity.hostId,
    describe: (slug) => envs.describe(slug),
    intervalMs: config.metricsIntervalMs,
    log: hostLog.child({ component: "metrics" }),
  });

  const handler: JobHandler = async (job, signal) => {
    const jlog = hostLog.child({ jobId: job.jobId, deploymentId: job.deploymentId });
    let spec;
    try {
      spec = await client.getJobSpec(job.jobId);
    } catch (err) {
      if (refusedForGood(err)) {
        jlog.error({ err: (err as Error).message }, "job spec refused; dropping the job");
        return "term";
      }
      jlog.warn({ err: (err as Error).message }, "cannot fetch the job spec yet; redelivering in 5 s");
      return { nakDelayMs: 5000 };
    }
    if (TERMINAL.has(spec.state)) {
      jlog.info({ state: spec.state }, "job already finished; acknowledging without running it again");
      return "ack";
    }
    const jobSpec = spec.spec;
    if (jobSpec?.$case !== "deploy" && jobSpec?.$case !== "environment" && jobSpec?.$case !== "data") {
      jlog.error({ kind: spec.kind }, "unknown job kind; dropping it");
      return "term";
    }
    const reporter = new JobReporter(client, job.jobId, spec.lastSeq, jlog);
    const ac = new AbortController();
    const onShutdown = () => ac.abort("shutdown");
    signal.addEventListener("abort", onShutdown);
    reporter.onCancelRequested = () => ac.abort(CANCEL_REASON);
    cancellers.set(job.jobId, ac);
    try {
      if (jobSpec.$case === "environment") {
        await runEnvironmentJob({ spec: jobSpec.value, envs, report: reporter, log: jlog });
      } else if (jobSpec.$case === "data") {
        await runDataJob(jobSpec.value, { report: reporter, log: jlog, signal: ac.signal });
      } else {
        const outcome = await runDeployment({
          spec: jobSpec.value,
          hostId: identity.hostId,
          jobId: job.jobId,
          runtime,
          ingress,
          git,
          envs,
          report: reporter,
          log: jlog,
          signal: ac.signal,
          started: [],
          switched: false,
          earlierAttempt: spec.lastSeq > 0,
          pauseBeforeSwitchMs: config.testPauseBeforeSwitchMs,
          pauseMidSwitchMs: config.testPauseMidSwitchMs,
          disk: janitor,
        });
        // The images it replaced may now be beyond what rollback keeps.
        if (outcome === "succeeded") void janitor.prune("after a deployment").catch((err: unknown) => jlog.warn({ err: (err as Error).message }, "disk prune failed"));
      }
      await reporter.flush(10 * 60_000);
      return "ack";
    } catch (err) {
      jlog.error({ err: (err as Error).message }, "could not report the job's final state; it will be redelivered");
      return { nakDelayMs: 5000 };
    } finally {
      janitor.release(job.jobId);
      cancellers.delete(job.jobId);
      signal.removeEventListener("abort", onShutdown);
      reporter.close();
    }
  };

  const consumer = new JobConsumer(
    { nats, stream: identity.jobsStream, consumer: identity.jobsConsumer, concurrency: config.jobConcurrency, log: hostLog.child({ component: "jobs" }) },
    handler,
  );
  await consumer.start();
  // Runtime logs and shells are NATS core requests addressed to this host: one connection serves both.
  const requests = await connectRequests(nats, identity.hostId);
  const logServer = new LogServer({ nc: requests, hostId: identity.hostId, credential: identity.credential, log: hostLog.child({ component: "logs" }), containers: docker });
  logServer.start();
  const shellServer = new ShellServer({ nc: requests, hostId: identity.hostId, credential: identity.credential, log: hostLog.child({ component: "shell" }), containers: docker });
  shellServer.start();
  hostLog.info({ ingressPort: ingress.httpPort, wakerPort, nats: nats.url }, "agent ready");

  return {
    identity,
    ingress,
    envs,
    wakerPort,
    stop: async () => {
      logServer.stop();
      shellServer.stop();
      await requests.drain().catch(() => undefined);
      await consumer.stop(config.shutdownGraceMs);
      await sleeper.stop();
      await reconciler.stop();
      heartbeater.stop();
      stopIngressCores();
      await janitor.stop();
      stopWatchingOom();
      await metrics.stop();
      await traffic.close();
      await waker.close();
      client.close();
    },
  };
}

/** Every 2 s: what confined containers use, and HAProxy pinned to the cores none of them keeps busy (docker/cpuset.ts); returns the stop. */
function keepIngressOffBusyCores(docker: DockerRuntime, ingress: HaproxyIngress, hostId: string, log: Logger): () => void {
  const pinner = new ProcessPinner(log);
  let last = "";
  let running = false;
  const pass = async () => {
    if (running) return;
    running = true;
    try {
      const { cores, confined } = await docker.confinedUse(hostId);
      const want = ingressCores(cores, confined);
      const changed = await pinner.pin(want, await ingress.processIds());
      if (want !== last && changed.length > 0) log.info({ cores: want, pids: changed, busy: confined.filter((c) => c.usedCpus >= BUSY_SHARE * c.cpus).map((c) => c.cpuset.join(",")) }, "ingress moved to the cores no confined container keeps busy");
      last = want;
    } catch (err) {
      log.warn({ err: (err as Error).message }, "cannot place the ingress by the cores' load");
    } finally {
      running = false;
    }
  };
  void pass();
  const timer = setInterval(() => void pass(), 2000);
  timer.unref();
  return () => clearInterval(timer);
}

/** The operator's SLIPWAY_AGENT_CPUS / SLIPWAY_AGENT_MEMORY_MB. */
function allocatableOf(config: AgentConfig): { cpus?: number; memoryMb?: number } {
  return { ...(config.allocatableCpus !== undefined ? { cpus: config.allocatableCpus } : {}), ...(config.allocatableMemoryMb !== undefined ? { memoryMb: config.allocatableMemoryMb } : {}) };
}
