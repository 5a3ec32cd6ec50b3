import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { createLogger } from "@slipway/core";
import { openDatabase, type DatabaseHandle } from "../db/database.js";
import { buildApp, type AppDeps } from "../app.js";
import { AuthService } from "../services/auth.service.js";
import { AppService } from "../services/app.service.js";
import { DeploymentService } from "../services/deployment.service.js";
import { EnvironmentService } from "../services/environment.service.js";
import { SecretBox } from "../services/secret-box.js";
import { DataService } from "../data/data.service.js";
import { DatabaseProvisioner, dropAllWithPrefix } from "../data/provisioner.js";
import { ObjectStore, type StorageConfig } from "../data/object-store.js";
import { sharedStorage, type StorageProvider } from "../data/storage-provider.js";
import { type EnvironmentRow } from "../repositories/apps.repository.js";
import { HostService } from "../services/host.service.js";
import { PlacementService } from "../services/placement.service.js";
import { DrainService } from "../services/drain.service.js";
import { JobReportService } from "../services/job-report.service.js";
import { MetricsService } from "../metrics/metrics.service.js";
import { Lifecycle } from "../services/lifecycle.service.js";
import { createDatabaseFromTemplate, dropDatabase, pgliteTemplateDump } from "./template-database.js";

export type DbKind = "pglite" | "postgres";
const PG_ADMIN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * A migrated database of the given kind: PGlite in memory, or a fresh database on the local
 * PostgreSQL. Both start from a template migrated once per migration set (template-database.ts).
 */
export async function testDatabase(kind: DbKind): Promise<DatabaseHandle> {
  if (kind === "pglite") return openDatabase({ dataDir: "memory://", pgliteLoadDataDir: await pgliteTemplateDump() });
  const name = `slipway_unit_${randomBytes(6).toString("hex")}`;
  const handle = await openDatabase({ databaseUrl: await createDatabaseFromTemplate(PG_ADMIN, name) });
  return {
    ...handle,
    close: async () => {
      await handle.close();
      await dropDatabase(PG_ADMIN, name);
    },
  };
}

export interface TestControlPlane {
  app: FastifyInstance;
  database: DatabaseHandle;
  adminToken: string;
  services: { auth: AuthService; apps: AppService; deployments: DeploymentService; environments: EnvironmentService; data: DataService; hosts: HostService; reports: JobReportService; metrics: MetricsService };
  published: number;
  close(): Promise<void>;
}

/** The REST API over a real database, without NATS or agents (the outbox is only poked). */
export async function testControlPlane(kind: DbKind, opts: { storage?: StorageConfig; storageProvider?: StorageProvider; uploadMaxBytes?: number; streams?: AppDeps["streams"] } = {}): Promise<TestControlPlane> {
  const database = await testDatabase(kind);
  const log = createLogger("test", "silent");
  const db = database.db;
  const lifecycle = new Lifecycle(log);
  const hosts = new HostService(db, log, { lifecycle, heartbeatIntervalMs: 5000, heartbeatMissLimit: 3 });
  const placement = new PlacementService(() => hosts.onlineWindowMs());
  const auth = new AuthService(db, log);
  const box = new SecretBox(randomBytes(32));
  const apps = new AppService(db, { baseDomain: "example.test", ingressScheme: "http", ingressPublicPort: 80 }, undefined, undefined, box);
  const tcp: Partial<TestControlPlane> = { published: 0 };
  // Real provisioning on the local cluster, under a prefix of this run's own; dropped at close.
  const dbPrefix = `t${randomBytes(4).toString("hex")}`;
  const provisioner = new DatabaseProvisioner(PG_ADMIN, log, dbPrefix);
  const nowhere = { endpoint: "http://127.0.0.1:9", region: "us-east-1", accessKeyId: "k", secretAccessKey: "s" };
  const store = new ObjectStore(opts.storage ?? { media: { ...nowhere, endpointForContainers: "http://host.docker.internal:9", bucket: "media" }, backups: { ...nowhere, bucket: "backups" } });
  const data = new DataService(db, lifecycle, box, provisioner, store, opts.storageProvider ?? sharedStorage, placement, { adminUrl: PG_ADMIN, hostForContainers: "host.docker.internal", onJobQueued: () => void (tcp.published! += 1), log, ...(opts.uploadMaxBytes ? { uploadMaxBytes: opts.uploadMaxBytes } : {}) });
  const environments = new EnvironmentService(db, lifecycle, box, apps, { baseDomain: "example.test", onJobQueued: () => void (tcp.published! += 1) }, data);
  const deployments = new DeploymentService(db, lifecycle, apps, placement, () => void (tcp.published! += 1), () => environments, { ensure: (app, env) => data.ensureData(app, env), ready: (env) => data.dataReady(env) });
  const reports = new JobReportService(db, log, lifecycle);
  const metrics = new MetricsService(db, { retentionMs: 168 * 3_600_000, log });
  const adminToken = `slw_${randomBytes(24).toString("hex")}`;
  await auth.bootstrapAdmin(mkdtempSync(path.join(tmpdir(), "slipway-cp-")), adminToken);
  const drains = new DrainService(db, lifecycle, deployments, placement, log);
  const app = await buildApp({ db, log, auth, apps, deployments, environments, data, hosts, drains, joinTokenTtlMs: 60_000, metrics, readiness: [], ...(opts.streams ? { streams: opts.streams } : {}) });
  return Object.assign(tcp, {
    app,
    database,
    adminToken,
    services: { auth, apps, deployments, environments, data, hosts, reports, metrics },
    close: async () => {
      await app.close();
      await database.close();
      store.close();
      await dropAllWithPrefix(PG_ADMIN, dbPrefix);
    },
  }) as TestControlPlane;
}

/**
 * Test fixtures only: writes environment columns directly, as if earlier
 * deployments had happened (the product writes them through the lifecycle).
 */
export async function setEnvironmentRow(db: DatabaseHandle["db"], id: string, patch: Partial<Pick<EnvironmentRow, "state" | "host_id" | "current_image" | "deployed_config_revision" | "last_success_at" | "observed_state">>): Promise<void> {
  await db.updateTable("environments").set(patch).where("id", "=", id).execute();
}
