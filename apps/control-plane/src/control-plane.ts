import type { FastifyInstance } from "fastify";
import type { Server } from "@grpc/grpc-js";
import type { Logger } from "@slipway/core";
import type { ControlPlaneConfig } from "./config.js";
import { openDatabase, type DatabaseHandle } from "./db/database.js";
import { startEmbeddedNats, type EmbeddedNats } from "./embedded/nats-server.js";
import { NatsJobBus } from "./bus/nats.job-bus.js";
import { OutboxPublisher } from "./bus/outbox.publisher.js";
import { AuthService } from "./services/auth.service.js";
import { AppService } from "./services/app.service.js";
import { DeploymentService } from "./services/deployment.service.js";
import { EnvironmentService } from "./services/environment.service.js";
import { SecretBox, loadSecretKey } from "./services/secret-box.js";
import { HostService } from "./services/host.service.js";
import { PlacementService } from "./services/placement.service.js";
import { JobReportService } from "./services/job-report.service.js";
import { buildApp } from "./app.js";
import { agentServiceImpl, startGrpcServer } from "./grpc/agent.grpc.js";
import { sql } from "kysely";
import path from "node:path";
import { GitCommitCounter } from "./git/git.commit-counter.js";

export interface RunningControlPlane {
  httpUrl: string;
  grpcPort: number;
  natsUrl: string;
  createdAdminToken?: string;
  database: DatabaseHandle;
  app: FastifyInstance;
  stop(): Promise<void>;
}

/** Starts every part of the control plane; `stop()` undoes it in reverse order. */
export async function startControlPlane(config: Readonly<ControlPlaneConfig>, log: Logger): Promise<RunningControlPlane> {
  const cleanups: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => log.warn({ err }, "cleanup step failed"));
  };
  try {
    const database = await openDatabase({ ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}), dataDir: config.dataDir });
    cleanups.push(() => database.close());
    log.info({ database: database.kind }, "database ready");

    let embedded: EmbeddedNats | undefined;
    let natsUrl = config.natsUrl;
    if (!natsUrl) {
      embedded = await startEmbeddedNats({ dataDir: config.dataDir, bin: config.natsServerBin, ...(config.embeddedNatsPort ? { port: config.embeddedNatsPort } : {}), log });
      cleanups.push(() => embedded!.stop());
      natsUrl = embedded.url;
    }
    const bus = new NatsJobBus(natsUrl, log.child({ component: "nats" }));
    // Not awaited: an unreachable NATS must not keep the API down; jobs wait in the outbox.
    const connecting = bus.connect().catch((err: unknown) => log.error({ err }, "nats connect failed"));
    cleanups.push(async () => {
      await Promise.race([connecting, new Promise((r) => setTimeout(r, 100))]);
      await bus.close();
    });

    const db = database.db;
    const hosts = new HostService(db, log.child({ component: "hosts" }), { heartbeatIntervalMs: config.heartbeatIntervalMs, heartbeatMissLimit: config.heartbeatMissLimit });
    const placement = new PlacementService(() => hosts.onlineWindowMs());
    const publisher = new OutboxPublisher(db, bus, placement, log.child({ component: "outbox" }), config.publishIntervalMs);
    const auth = new AuthService(db, log.child({ component: "auth" }));
    const apps = new AppService(db, config, new GitCommitCounter({ dir: path.join(config.dataDir, "git"), log: log.child({ component: "git" }) }));
    const box = new SecretBox(await loadSecretKey({ ...(config.secretKey ? { configured: config.secretKey } : {}), dataDir: config.dataDir }));
    const environments = new EnvironmentService(db, box, apps, { baseDomain: config.baseDomain, onJobQueued: () => publisher.poke() });
    const deployments = new DeploymentService(db, apps, placement, () => publisher.poke(), () => environments);
    const reports = new JobReportService(db, log.child({ component: "reports" }), () => publisher.poke());

    const createdAdminToken = await auth.bootstrapAdmin(config.dataDir, config.adminToken);

    const grpc = await startGrpcServer(
      agentServiceImpl({ hosts, reports, bus, log: log.child({ component: "grpc" }), natsPublicUrl: () => config.natsPublicUrl ?? natsUrl!, heartbeatIntervalMs: config.heartbeatIntervalMs, unseal: (v) => environments.unseal(v) }),
      { host: config.grpcHost, port: config.grpcPort },
    );
    cleanups.push(() => shutdownGrpc(grpc.server));
    log.info({ port: grpc.port }, "gRPC AgentService listening");

    publisher.start();
    cleanups.push(() => publisher.stop());

    const app = await buildApp({
      db,
      log,
      auth,
      apps,
      deployments,
      environments,
      hosts,
      joinTokenTtlMs: config.joinTokenTtlMs,
      readiness: [async () => void (await sql`select 1`.execute(db))],
    });
    const address = await app.listen({ host: config.httpHost, port: config.httpPort });
    cleanups.push(() => app.close());
    log.info({ address, grpcPort: grpc.port, nats: natsUrl }, "control plane ready");
    return { httpUrl: address, grpcPort: grpc.port, natsUrl, ...(createdAdminToken ? { createdAdminToken } : {}), database, app, stop };
  } catch (err) {
    await stop();
    throw err;
  }
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
