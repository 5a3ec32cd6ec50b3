/**
 * The test Platform (nats-server, a fresh PostgreSQL database, the built
 * control plane as a process) with the control plane configured for the fleet
 * benchmark: the production heartbeat interval (the e2e harness uses 1 s).
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import pg from "pg";
import { Platform, repoRoot } from "../support/platform.js";

/** FLEET_CP_MAIN: another build of the control plane (a scratch copy with a change to measure). */
const CP_MAIN = process.env.FLEET_CP_MAIN || path.join(repoRoot, "apps/control-plane/dist/main.js");
const ADMIN_DSN = process.env.SLIPWAY_TEST_PG_ADMIN ?? "postgres://postgres@127.0.0.1:5432/postgres";

export class FleetPlatform extends Platform {
  constructor(private readonly fleet: { heartbeatIntervalMs: number; logLevel: string }) {
    // One secret key for every replica (FLEET_REPLICAS): they unseal what the others sealed.
    super({ database: "postgres", cpMain: CP_MAIN, cpEnv: { SLIPWAY_SECRET_KEY: randomBytes(32).toString("base64") } });
  }

  // FLEET_CP_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": where the control plane's CPU goes.
  protected override cpNodeArgs(): string[] {
    return (process.env.FLEET_CP_NODE_ARGS ?? "").split(" ").filter(Boolean);
  }

  /** The harness's environment without its NATS user management, with the production heartbeat interval and miss limit. */
  protected override cpProcessEnv(dataDir: string, ports: { http: number; grpc: number; s3: number; s3Backup: number }): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...super.cpProcessEnv(dataDir, ports), SLIPWAY_HEARTBEAT_INTERVAL_MS: String(this.fleet.heartbeatIntervalMs), SLIPWAY_HEARTBEAT_MISS_LIMIT: "3", LOG_LEVEL: this.fleet.logLevel };
    delete env.SLIPWAY_NATS_USERS_FILE;
    delete env.SLIPWAY_NATS_RELOAD_COMMAND;
    delete env.SLIPWAY_NATS_SEED_FILE;
    return env;
  }

  /** The nats-server process the harness started (its PID, for /proc). */
  natsPid(): number | undefined {
    return (this.nats as unknown as { proc?: { pid?: number } }).proc?.pid;
  }

  /**
   * Drops the environments' databases of this platform in parallel. The
   * harness drops them one by one, and every DROP DATABASE waits for a
   * checkpoint (1–3 s each on this machine); concurrent drops share them.
   */
  async dropEnvironmentDatabases(parallel = 8): Promise<number> {
    const c = new pg.Client({ connectionString: ADMIN_DSN });
    await c.connect();
    let names: string[];
    try {
      names = (await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1", [`${this.dbPrefix}\\_%`])).rows.map((r) => r.datname);
    } finally {
      await c.end();
    }
    let next = 0;
    const lane = async () => {
      const lc = new pg.Client({ connectionString: ADMIN_DSN });
      await lc.connect();
      try {
        while (next < names.length) {
          const name = names[next++]!;
          await lc.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`).catch(() => undefined);
          await lc.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(name)}`).catch(() => undefined);
        }
      } finally {
        await lc.end();
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, names.length) }, lane));
    return names.length;
  }
}
