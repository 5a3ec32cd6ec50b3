import type { FastifyInstance } from "fastify";
import type { Server } from "@grpc/grpc-js";
import type { Logger } from "@slipway/core";
import { plaintextListenerWarnings, type ControlPlaneConfig } from "./config.js";
import { openDatabase, ping, type DatabaseHandle } from "./db/database.js";
import { startEmbeddedNats, type EmbeddedNats } from "./embedded/nats-server.js";
import { NatsJobBus } from "./bus/nats.job-bus.js";
import { NatsUserDirectory, accessWithSeed, loadOrCreateSeed, reloadByCommand, type NatsAccess } from "./bus/nats-users.js";
import { listNatsUsers } from "./repositories/hosts.repository.js";
import type { Db } from "./db/database.js";
import { OutboxPublisher } from "./bus/outbox.publisher.js";
import { AuthService } from "./services/auth.service.js";
import { SessionService } from "./services/session.service.js";
import { AppService } from "./services/app.service.js";
import { DeploymentService } from "./services/deployment.service.js";
import { EnvironmentService } from "./services/environment.service.js";
import { SecretBox, loadSecretKey } from "./services/secret-box.js";
import { DataService } from "./data/data.service.js";
import { DatabaseProvisioner } from "./data/provisioner.js";
import { ObjectStore, type StorageConfig } from "./data/object-store.js";
import { sharedStorage, type StorageProvider } from "./data/storage-provider.js";
import { RadosGwProvider } from "./data/radosgw.provider.js";
import { S3RVER_CREDENTIALS, startEmbeddedS3 } from "./embedded/s3-server.js";
import { getAppByName, pruneWebhookDeliveries } from "./repositories/apps.repository.js";
import { HostService } from "./services/host.service.js";
import { PlacementService } from "./services/placement.service.js";
import { JobReportService } from "./services/job-report.service.js";
import { MetricsService } from "./metrics/metrics.service.js";
import { DrainService } from "./services/drain.service.js";
import { LogRelay } from "./bus/log-relay.js";
import { ShellRelay } from "./bus/shell-relay.js";
import { buildApp } from "./app.js";
import { agentServiceImpl, startGrpcServer, type AgentGrpcDeps } from "./grpc/agent.grpc.js";
import { startAgentThread, type AgentThreadShared } from "./agent-thread-host.js";
import path from "node:path";
import { readFileSync } from "node:fs";
import { GitAccess } from "./git/git-access.js";
import { RepositoryMirrors } from "./git/repository-mirrors.js";
import { SourceSync } from "./git/source-sync.js";
import { HookService } from "./hooks/hook.service.js";
import { Lifecycle } from "./services/lifecycle.service.js";
import { CertificateService } from "./tls/certificate.service.js";
import { Lease, databaseLeaseStore, every, replicaName } from "./cluster/lease.js";

export interface RunningControlPlane {
  httpUrl: string;
  grpcPort: number;
  natsUrl: string;
  createdAdminToken?: string;
  database: DatabaseHandle;
  app: FastifyInstance;
  stop(): Promise<void>;
}

/** What the agent thread is given by the main one, with the NATS users' sync it asks the main thread for. */
type AgentPartShared = AgentThreadShared & { natsUsers?: { sync(): Promise<void> } };

/** Undoes what was started, last first; a failed step is logged and the rest still run. */
async function runCleanups(cleanups: Array<() => Promise<void>>, log: Logger): Promise<void> {
  for (const c of cleanups.reverse()) await c().catch((err: unknown) => log.warn({ err }, "cleanup step failed"));
}

/** The services both threads build, each on its own database pool and NATS connection. */
async function buildCore(config: Readonly<ControlPlaneConfig>, log: Logger, cleanups: Array<() => Promise<void>>, shared?: AgentPartShared) {
  const database = await openDatabase({
    ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}),
    dataDir: config.dataDir,
    onIdleError: (err) => log.warn({ err: err.message }, "an idle database connection failed; it will be replaced"),
    // The main thread migrated the database before it started the agent thread.
    migrate: !shared,
  });
  cleanups.push(() => database.close());
  log.info({ database: database.kind }, "database ready");

  const db = database.db;
  const nats: { access: NatsAccess; users?: { sync(): Promise<void> } } = shared
    ? { access: shared.natsSeeded ? accessWithSeed(shared.natsUrl, await loadOrCreateSeed(config.natsSeedFile)) : { url: shared.natsUrl }, ...(shared.natsUsers ? { users: shared.natsUsers } : {}) }
    : await startNats(config, db, log, cleanups);
  const bus = new NatsJobBus(nats.access, log.child({ component: "nats" }), { ackWaitMs: config.jobAckWaitMs, replicas: config.natsReplicas });
  // Not awaited: an unreachable NATS must not keep the API down; jobs wait in the outbox.
  const connecting = bus.connect().catch((err: unknown) => log.error({ err }, "nats connect failed"));
  cleanups.push(async () => {
    await Promise.race([connecting, new Promise((r) => setTimeout(r, 100))]);
    await bus.close();
  });

  const lifecycle = new Lifecycle(log.child({ component: "lifecycle" }));
  const hosts = new HostService(db, log.child({ component: "hosts" }), { lifecycle, heartbeatIntervalMs: config.heartbeatIntervalMs, heartbeatMissLimit: config.heartbeatMissLimit, heartbeatFlushMs: config.heartbeatFlushMs, resources: config.resources, onRevoked: async (id) => {
    // Its NATS user goes at once (its connections are closed), then its consumer.
    await nats.users?.sync();
    await bus.deleteConsumer(id);
  } });
  // Runs after the gRPC server closed (cleanups run in reverse): the last beats are written before the database closes.
  cleanups.push(() => hosts.flushHeartbeats());
  const placement = new PlacementService(() => hosts.onlineWindowMs(), config.resources);
  const publisher = new OutboxPublisher(db, lifecycle, bus, placement, log.child({ component: "outbox" }), config.publishIntervalMs);
  cleanups.push(() => publisher.stop());
  const box = new SecretBox(await loadSecretKey({ ...(config.secretKey ? { configured: config.secretKey } : {}), dataDir: config.dataDir }));
  const gitAccess = new GitAccess(db, box, log.child({ component: "git" }));
  const sources = new SourceSync(db, new RepositoryMirrors({ dir: path.join(config.dataDir, "git"), log: log.child({ component: "git" }) }), gitAccess, config.gitPollSeconds);
  const apps = new AppService(db, config, sources, () => hosts.onlineWindowMs(), box);
  const storage = shared ? shared.storage : await startStorage(config, log, cleanups);
  const store = new ObjectStore(storage);
  const provider = storageProvider(config, storage, log, { warn: !shared });
  cleanups.push(async () => store.close());
  const provisioner = new DatabaseProvisioner(config.databaseAdminUrl, log.child({ component: "provisioner" }), config.databaseNamePrefix);
  const data = new DataService(db, lifecycle, box, provisioner, store, provider, placement, { adminUrl: config.databaseAdminUrl, hostForContainers: config.databaseHostForContainers, onJobQueued: () => publisher.poke(), log: log.child({ component: "data" }), uploadMaxBytes: config.backupUploadMaxBytes });
  // Automatic HTTPS (issue 15): issuing and renewing only when ACME is configured (config.acme).
  const certificates: CertificateService = new CertificateService(db, box, log.child({ component: "certificates" }), {
    ...(config.acme ? { acme: config.acme } : {}),
    onResult: (r): Promise<void> => environments.certificateAttempt(r),
    // An uploaded (or removed) certificate reaches every host serving a name it covers.
    deliver: (names) => environments.deliverCertificate(names),
  });
  const environments = new EnvironmentService(db, lifecycle, box, apps, { baseDomain: config.baseDomain, onJobQueued: () => publisher.poke() }, data, certificates);
  const metrics = new MetricsService(db, { retentionMs: config.metricsRetentionMs, log: log.child({ component: "metrics" }) });
  // What the agents' calls need: built only by the part that serves them (the agent thread, or the
  // main thread when there is none).
  const agentDeps = (): AgentGrpcDeps => {
    const reports = new JobReportService(db, log.child({ component: "reports" }), lifecycle, () => publisher.poke(), (trx, envId, from, to) => environments.handoff(trx, envId, from, to));
    return { hosts, reports, bus, log: log.child({ component: "grpc" }), natsPublicUrl: () => config.natsPublicUrl ?? nats.access.url, ...(nats.users ? { natsUsers: nats.users } : {}), heartbeatIntervalMs: config.heartbeatIntervalMs, unseal: (v) => environments.unseal(v), repositoryAccess: async (name) => gitAccess.forGit(await getAppByName(db, name)), dataSpec: (spec) => data.dataSpec(spec), metrics, tls: (hostnames) => certificates.tlsFor(hostnames) };
  };
  return { database, db, nats, bus, lifecycle, hosts, placement, publisher, box, gitAccess, sources, apps, storage, store, data, certificates, environments, metrics, agentDeps };
}

/** The agents' gRPC server, in this thread. */
async function serveAgents(config: Readonly<ControlPlaneConfig>, deps: AgentGrpcDeps, cleanups: Array<() => Promise<void>>): Promise<number> {
  const grpc = await startGrpcServer(agentServiceImpl(deps), {
    host: config.grpcHost,
    port: config.grpcPort,
    ...(config.grpcTlsCert && config.grpcTlsKey
      ? { tls: { cert: readFileSync(config.grpcTlsCert), key: readFileSync(config.grpcTlsKey), ...(config.grpcTlsClientCa ? { ca: readFileSync(config.grpcTlsClientCa) } : {}) } }
      : {}),
  });
  cleanups.push(() => shutdownGrpc(grpc.server));
  return grpc.port;
}

/**
 * The agent thread's part (agent-thread.ts): the gRPC AgentService and what it needs, on the
 * database and NATS the main thread started. No REST, no scheduled work, no outbox runs of its
 * own beyond the pokes of job reports (safe beside the main thread's, as beside a replica's).
 */
export async function startAgentServer(config: Readonly<ControlPlaneConfig>, log: Logger, shared: AgentPartShared): Promise<{ grpcPort: number; stop(): Promise<void> }> {
  const cleanups: Array<() => Promise<void>> = [];
  const stop = () => runCleanups(cleanups, log);
  try {
    const core = await buildCore(config, log, cleanups, shared);
    const grpcPort = await serveAgents(config, core.agentDeps(), cleanups);
    return { grpcPort, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Starts every part of the control plane; `stop()` undoes it in reverse order. */
export async function startControlPlane(config: Readonly<ControlPlaneConfig>, log: Logger): Promise<RunningControlPlane> {
  const cleanups: Array<() => Promise<void>> = [];
  const stop = () => runCleanups(cleanups, log);
  // Loud on purpose: the first lines an operator sees.
  for (const warning of plaintextListenerWarnings(config)) log.warn({ insecure: true }, warning);
  try {
    const core = await buildCore(config, log, cleanups);
    const { db, database, nats, lifecycle, hosts, placement, publisher, box, gitAccess, sources, apps, store, data, certificates, environments, metrics } = core;
    const natsUrl = nats.access.url;
    const auth = new AuthService(db, log.child({ component: "auth" }));
    const sessions = new SessionService(db, auth, log.child({ component: "sessions" }), { ttlMs: config.sessionTtlMs });
    // Work that must run once among several replicas (issue 16) runs on the one holding this lease;
    // it is started below, once everything it runs exists, and stopped (and released) before the rest.
    const singletons = new Lease(databaseLeaseStore(db), { name: "scheduler", holder: replicaName(), ttlMs: config.leaseTtlMs, renewEveryMs: Math.round(config.leaseTtlMs / 3), tryEveryMs: Math.round(config.leaseTtlMs / 3), log: log.child({ component: "lease" }) });
    // Expired sessions and those of revoked or expired tokens (refused on use anyway) are deleted every 10 minutes.
    const pruneSessions = () => sessions.prune().catch((err: unknown) => log.warn({ err }, "session pruning failed"));
    singletons.add(every("session pruning", 10 * 60_000, pruneSessions));
    const sealedRepositories = await apps.sealStoredRepositoryCredentials();
    if (sealedRepositories > 0) log.info({ apps: sealedRepositories }, "repository credentials moved out of plain text into the encrypted column");
    await store.ensureBuckets();
    const deployments = new DeploymentService(db, lifecycle, apps, placement, (job) => (job ? publisher.publishCommitted(job) : publisher.poke()), () => environments, { ensure: (app, env) => data.ensureData(app, env), ready: (env) => data.dataReady(env) }, config.rollbackImages);
    singletons.add(every("backup scheduler", config.backupSchedulerIntervalMs, () => data.runSchedule().catch((err: unknown) => log.warn({ err }, "backup schedule run failed"))));
    // Retention is in hours; pruning every 10 minutes keeps each delete small (about ten rows per environment and host).
    const pruneMetrics = () => metrics.prune().catch((err: unknown) => log.warn({ err }, "metrics pruning failed"));
    singletons.add(every("metrics pruning", 10 * 60_000, pruneMetrics, { atStart: true }));
    const drains = new DrainService(db, lifecycle, deployments, placement, log.child({ component: "drain" }));
    const logRelay = new LogRelay(() => nats.access, log.child({ component: "logs" }));
    cleanups.push(() => logRelay.close());
    const shellRelay = new ShellRelay(() => logRelay.conn(), log.child({ component: "shell" }));

    const createdAdminToken = await auth.bootstrapAdmin(config.dataDir, config.adminToken);

    const grpcPort = config.agentThread
      ? await startAgentThread(config, { natsUrl, natsSeeded: nats.users !== undefined, storage: core.storage }, nats.users, log, cleanups)
      : await serveAgents(config, core.agentDeps(), cleanups);
    log.info({ port: grpcPort, thread: config.agentThread }, "gRPC AgentService listening");

    publisher.start();
    sources.start();
    cleanups.push(async () => sources.stop());
    // Ticks (issues and renews) only while the lease is held; serving certificates needs no lease.
    singletons.add({ name: "certificate renewal", start: () => certificates.start(), stop: () => certificates.stop() });
    if (config.acme) log.info({ directoryUrl: config.acme.directoryUrl, intervalMs: config.acme.tickIntervalMs }, "automatic HTTPS on: custom domains get certificates");

    const hooks = new HookService(db, box, sources, gitAccess, deployments, log.child({ component: "hooks" }), { ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}), defaultPollSeconds: config.gitPollSeconds });
    // A redelivery after a week is a new push (and the table stays small).
    singletons.add(every("webhook delivery pruning", 3_600_000, () => pruneWebhookDeliveries(db, new Date(Date.now() - 7 * 86_400_000)).catch((err: unknown) => log.warn({ err }, "webhook delivery pruning failed"))));
    singletons.start();
    cleanups.push(() => singletons.stop());
    const app = await buildApp({
      db,
      hooks: { hooks, access: gitAccess },
      log,
      auth,
      sessions,
      ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
      apps,
      deployments,
      environments,
      data,
      hosts,
      metrics,
      drains,
      logs: logRelay,
      shells: shellRelay,
      joinTokenTtlMs: config.joinTokenTtlMs,
      readiness: [() => ping(db)],
      ...(config.httpTlsCert && config.httpTlsKey ? { https: { cert: readFileSync(config.httpTlsCert), key: readFileSync(config.httpTlsKey) } } : {}),
      ...(config.webDir ? { webDir: config.webDir } : {}),
      certificates,
    });
    const address = await app.listen({ host: config.httpHost, port: config.httpPort });
    cleanups.push(() => app.close());
    log.info({ address, grpcPort, nats: natsUrl }, "control plane ready");
    return { httpUrl: address, grpcPort, natsUrl, ...(createdAdminToken ? { createdAdminToken } : {}), database, app, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * NATS with one user per host: the embedded server (its users file written before it starts),
 * or an external one whose users file and reload command are configured. An external server
 * the control plane does not configure is used as it is, with a warning.
 */
async function startNats(config: Readonly<ControlPlaneConfig>, db: Db, log: Logger, cleanups: Array<() => Promise<void>>): Promise<{ access: NatsAccess; users?: NatsUserDirectory }> {
  const nlog = log.child({ component: "nats-users" });
  const hostUsers = async () => (await listNatsUsers(db)).map((h) => ({ hostId: h.id, publicKey: h.nats_public_key }));
  if (config.natsUrl && !config.natsUsersFile) {
    log.warn(
      { insecure: true },
      "INSECURE: the external NATS (NATS_URL) is used as it is: the control plane does not give each host its own NATS user, so every agent gets whatever access the server grants. " +
        "Set SLIPWAY_NATS_USERS_FILE (included by the server's configuration) and SLIPWAY_NATS_RELOAD_COMMAND to let the control plane manage one user per host.",
    );
    return { access: { url: config.natsUrl } };
  }
  const seed = await loadOrCreateSeed(config.natsSeedFile);
  const access: NatsAccess = accessWithSeed(config.natsUrl ?? "", seed);
  let reload: () => Promise<void>;
  let embedded: EmbeddedNats | undefined;
  const usersFile = config.natsUsersFile ?? path.join(config.dataDir, "nats", "users.conf");
  if (config.natsUrl) reload = reloadByCommand(config.natsReloadCommand!);
  else reload = () => (embedded ? embedded.reload() : Promise.reject(new Error("the embedded nats-server is not running")));
  const users = new NatsUserDirectory({ file: usersFile, controlPlaneSeed: seed, hosts: hostUsers, reload, url: () => access.url, log: nlog });
  if (!config.natsUrl) {
    await users.writeInitial();
    embedded = await startEmbeddedNats({ dataDir: config.dataDir, bin: config.natsServerBin, usersFile, ...(config.embeddedNatsPort ? { port: config.embeddedNatsPort } : {}), log });
    cleanups.push(() => embedded!.stop());
    access.url = embedded.url;
  } else {
    // Not awaited: an unreachable NATS must not keep the API down (connections retry until the server runs the file).
    void users.sync().catch((err: unknown) => nlog.error({ err: (err as Error).message }, "could not update the NATS users yet; retrying every 30 s"));
  }
  // Another replica may have changed the fleet, or a sync failed: checked every 30 s (a write only when something changed).
  const resync = setInterval(() => void users.sync().catch((err: unknown) => nlog.error({ err: (err as Error).message }, "could not update the NATS users")), 30_000);
  cleanups.push(async () => clearInterval(resync));
  return { access, users };
}

function shutdownGrpc(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 3000);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * The configured S3 endpoint(s), or the embedded ones: two s3rvers, one for media that containers
 * reach through the host gateway, one for backups on loopback only (s3rver has one key for
 * everything, so the backups' protection is that no container can reach that server at all).
 */
async function startStorage(config: Readonly<ControlPlaneConfig>, log: Logger, cleanups: Array<() => Promise<void>>): Promise<StorageConfig> {
  const region = config.s3Region;
  if (config.s3Endpoint) {
    const media = { endpoint: config.s3Endpoint, region, accessKeyId: config.s3AccessKeyId!, secretAccessKey: config.s3SecretAccessKey! };
    return {
      media: { ...media, bucket: config.s3MediaBucket, endpointForContainers: config.s3EndpointForContainers ?? config.s3Endpoint },
      backups: {
        ...(config.s3BackupEndpoint ? { endpoint: config.s3BackupEndpoint, region, accessKeyId: config.s3BackupAccessKeyId!, secretAccessKey: config.s3BackupSecretAccessKey! } : media),
        bucket: config.s3BackupBucket,
      },
    };
  }
  const s3 = await startEmbeddedS3({ dataDir: config.dataDir, name: "s3", address: config.embeddedS3Bind, port: config.embeddedS3Port, buckets: [config.s3MediaBucket], log });
  cleanups.push(() => s3.stop());
  const backups = await startEmbeddedS3({ dataDir: config.dataDir, name: "s3-backups", address: "127.0.0.1", port: config.embeddedS3BackupPort, buckets: [config.s3BackupBucket], log });
  cleanups.push(() => backups.stop());
  return {
    media: { endpoint: s3.endpoint, region, ...S3RVER_CREDENTIALS, bucket: config.s3MediaBucket, endpointForContainers: config.s3EndpointForContainers ?? `http://${config.databaseHostForContainers}:${s3.port}` },
    backups: { endpoint: backups.endpoint, region, ...S3RVER_CREDENTIALS, bucket: config.s3BackupBucket },
  };
}

/** Who hands out the environments' media keys, and the warning the shared one deserves. */
function storageProvider(config: Readonly<ControlPlaneConfig>, storage: StorageConfig, log: Logger, opts: { warn: boolean }): StorageProvider {
  if (config.s3Provider === "radosgw") {
    return new RadosGwProvider({ endpoint: storage.media.endpoint, region: storage.media.region, admin: storage.media, log: log.child({ component: "storage" }) });
  }
  const backupsApart = storage.backups.endpoint !== storage.media.endpoint || storage.backups.accessKeyId !== storage.media.accessKeyId;
  if (opts.warn) log.warn(
    { insecure: !backupsApart, storageProvider: "shared" },
    `${backupsApart ? "" : "INSECURE: "}media storage is shared: every environment's containers get the same S3 key (DEFAULT_STORAGE_DSN), so any app can read and change every app's media` +
      (backupsApart ? "; backups are on another S3 server or key, out of their reach." : " AND every backup (same endpoint and key).") +
      " Set SLIPWAY_S3_PROVIDER=radosgw (a Ceph Object Gateway) to give each environment its own key and bucket.",
  );
  return sharedStorage;
}
