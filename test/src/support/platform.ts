import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { connect, nkeyAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { NatsServer } from "./nats.js";
import { createTestDatabase, dropDatabasesWithPrefix } from "./postgres.js";
import { startProcess, StopWaiting, waitFor, type Proc } from "./processes.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "../../..");
const CP_MAIN = path.join(repoRoot, "apps/control-plane/dist/main.js");
export const AGENT_MAIN = path.join(repoRoot, "apps/agent/dist/main.js");

export class ApiError extends Error {
  constructor(readonly status: number, readonly body: any) {
    super(`HTTP ${status}: ${JSON.stringify(body)}`);
  }
}

/** A small REST client for tests. */
export class Api {
  constructor(readonly baseUrl: string, public token: string) {}
  async call<T = any>(method: string, p: string, body?: unknown, token: string | null = this.token): Promise<T> {
    const res = await fetch(this.baseUrl + p, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    const parsed = text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
    if (res.status >= 400) throw new ApiError(res.status, parsed);
    return parsed as T;
  }
  /** Like call, but returns status and body instead of throwing. */
  async raw(method: string, p: string, body?: unknown, token: string | null = this.token): Promise<{ status: number; body: any }> {
    try {
      return { status: 200, body: await this.call(method, p, body, token) };
    } catch (e) {
      if (e instanceof ApiError) return { status: e.status, body: e.body };
      throw e;
    }
  }
  /**
   * Deploys and waits until the deployment has run to its end: ended, and when it
   * succeeded, also the cleanup of the previous containers that follows the switch
   * (a deployment reads succeeded once switched). Returns the final deployment.
   */
  async deploy(app: string, env: string, body: unknown = {}, timeoutMs = 180_000): Promise<any> {
    const d = await this.call("POST", `/v1/apps/${app}/environments/${env}/deployments`, body);
    return this.waitDeployment(d.id, timeoutMs, { cleanedUp: true });
  }
  /** Waits until the deployment ended (with `cleanedUp`, a succeeded one's cleanup step too). */
  async waitDeployment(id: string, timeoutMs = 180_000, opts: { cleanedUp?: boolean } = {}): Promise<any> {
    return waitFor(`deployment ${id} to end${opts.cleanedUp ? " (and its cleanup after a success)" : ""}`, async () => {
      const d = await this.call("GET", `/v1/deployments/${id}`);
      if (!["succeeded", "failed", "cancelled"].includes(d.state)) return undefined;
      if (opts.cleanedUp && d.state === "succeeded") {
        const cleanup = (d.steps as Array<{ name: string; state: string }>).find((s) => s.name === "cleanup");
        if (!cleanup || cleanup.state === "running") return undefined;
      }
      return d;
    }, { timeoutMs, intervalMs: 250 });
  }
  log(id: string): Promise<string> {
    return this.call("GET", `/v1/deployments/${id}/log`);
  }
}

export interface AgentHandle {
  proc: Proc;
  stateDir: string;
  ingressPort: number;
  hostId?: string;
  /** Extra environment of the agent process; read at every start(), so a test can change it before a restart. */
  env: Record<string, string>;
  /** The agent's entry point (default: this checkout's build); read at every start(), so a test can upgrade it. */
  main?: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The built control plane and agent(s) as real processes, with a real
 * nats-server per suite and PostgreSQL (a fresh database) or PGlite.
 * The control plane binds port 0 for HTTP, gRPC and S3 and the ports it got
 * are read from its log; a restart binds the same ports again (the agents and
 * the environments know them). Agents' ingress ports are reserved (ports.ts).
 */
export class Platform {
  readonly dir = mkdtempSync(path.join(tmpdir(), "slipway-e2e-"));
  readonly nats = new NatsServer();
  readonly adminToken = `slw_test_${randomBytes(16).toString("hex")}`;
  readonly label = `e2e-${randomBytes(4).toString("hex")}`;
  cp?: Proc;
  httpPort = 0;
  grpcPort = 0;
  s3Port = 0;
  s3BackupPort = 0;
  /** Environment databases of this platform are named `<prefix>_e_<environment id hex>` on the local cluster. */
  readonly dbPrefix = `e${randomBytes(4).toString("hex")}`;
  api!: Api;
  agents: AgentHandle[] = [];
  /** The gRPC address agents are given (default: the control plane's own port; e.g. a load balancer in front of replicas). */
  agentControlPlane?: string;
  private dropDb?: () => Promise<void>;
  databaseUrl?: string;

  /** `cpMain`: the control plane's entry point (default: this checkout's build; e.g. an installed release). */
  constructor(private readonly opts: { database: "postgres" | "pglite"; cpEnv?: Record<string, string>; cpMain?: string } = { database: "postgres" }) {}

  async start(): Promise<void> {
    await this.nats.start();
    if (this.opts.database === "postgres") {
      const db = await createTestDatabase();
      this.databaseUrl = db.url;
      this.dropDb = db.drop;
    }
    await this.startControlPlane();
  }

  /** The environment of a control-plane process of this platform (every replica's but for its data directory and ports). */
  protected cpProcessEnv(dataDir: string, ports: { http: number; grpc: number; s3: number; s3Backup: number }): NodeJS.ProcessEnv {
    return {
      ...process.env,
      SLIPWAY_DATA_DIR: dataDir,
      ...(this.databaseUrl ? { DATABASE_URL: this.databaseUrl } : {}),
      NATS_URL: this.nats.url,
      SLIPWAY_NATS_USERS_FILE: this.nats.usersFile,
      SLIPWAY_NATS_RELOAD_COMMAND: this.nats.reloadCommand,
      // Replicas share the control plane's NATS identity (DECISIONS, "One NATS user per host").
      SLIPWAY_NATS_SEED_FILE: path.join(this.dir, "cp", "nats-control-plane.nk"),
      SLIPWAY_HTTP_PORT: String(ports.http),
      SLIPWAY_GRPC_PORT: String(ports.grpc),
      SLIPWAY_ADMIN_TOKEN: this.adminToken,
      SLIPWAY_HEARTBEAT_INTERVAL_MS: "1000",
      // Offline after 6 s without a beat: a loaded machine can delay a beat by two seconds or more.
      SLIPWAY_HEARTBEAT_MISS_LIMIT: "6",
      // The backup scheduler stays out unless a suite is about it (cpEnv): live's daily backup, queued at
      // the first run after live is deployed (or after whatever operation held live then), takes live's one
      // operation at a moment no test chooses, and a restore or copy into live asked for then is refused (409).
      SLIPWAY_BACKUP_SCHEDULER_INTERVAL_SECONDS: "86400",
      SLIPWAY_INGRESS_PUBLIC_PORT: "0",
      SLIPWAY_EMBEDDED_S3_PORT: String(ports.s3),
      SLIPWAY_EMBEDDED_S3_BACKUP_PORT: String(ports.s3Backup),
      SLIPWAY_DATABASE_NAME_PREFIX: this.dbPrefix,
      LOG_LEVEL: "info",
      ...this.opts.cpEnv,
    };
  }

  /** Options for the control plane's node (e.g. --cpu-prof for a benchmark). */
  protected cpNodeArgs(): string[] {
    return [];
  }

  /** Starts a control-plane process and waits for its "control plane ready" line; the ports it got. */
  private async startCpProcess(name: string, dataDir: string, ports: { http: number; grpc: number; s3: number; s3Backup: number }): Promise<{ proc: Proc; httpPort: number; grpcPort: number; s3Port?: number; s3BackupPort?: number }> {
    const logFile = path.join(this.dir, `${name}.log`);
    // A restart appends to the same log: only this start's lines count.
    const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
    const proc = startProcess(process.execPath, [...this.cpNodeArgs(), this.opts.cpMain ?? CP_MAIN], { env: this.cpProcessEnv(dataDir, ports), logFile });
    // Logged once every server listens, with the ports they got.
    const ready = await waitFor(`the ${name}'s 'control plane ready' log line`, async () => {
      if (proc.child.exitCode !== null) throw new StopWaiting(`${name} exited: ${this.tail(`${name}.log`)}`);
      return logRecords(logFile, logStart).find((r) => r.msg === "control plane ready");
    }, { timeoutMs: 60_000, intervalMs: 50 });
    const s3 = logRecords(logFile, logStart).find((r) => r.msg === "embedded S3 server started");
    const backups = logRecords(logFile, logStart).find((r) => r.msg === "embedded S3 server started (s3-backups)");
    const httpPort = Number(new URL(String(ready.address)).port);
    await waitFor(`${name} /readyz`, async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).ok, { timeoutMs: 10_000, intervalMs: 50 });
    return { proc, httpPort, grpcPort: Number(ready.grpcPort), ...(s3 ? { s3Port: Number(s3.port) } : {}), ...(backups ? { s3BackupPort: Number(backups.port) } : {}) };
  }

  async startControlPlane(): Promise<void> {
    const started = await this.startCpProcess("control-plane", path.join(this.dir, "cp"), { http: this.httpPort, grpc: this.grpcPort, s3: this.s3Port, s3Backup: this.s3BackupPort });
    this.cp = started.proc;
    this.httpPort = started.httpPort;
    this.grpcPort = started.grpcPort;
    if (started.s3Port !== undefined) this.s3Port = started.s3Port;
    if (started.s3BackupPort !== undefined) this.s3BackupPort = started.s3BackupPort;
    this.api = new Api(`http://127.0.0.1:${this.httpPort}`, this.adminToken);
  }

  /**
   * Another control-plane replica on the same PostgreSQL and NATS (issue 16): its own data
   * directory and ports, the first one's NATS identity; the same secret key when the platform's
   * cpEnv sets SLIPWAY_SECRET_KEY (replicas must share it). Its log is `control-plane-<n>.log`.
   */
  async startReplica(n: number): Promise<{ proc: Proc; httpPort: number; grpcPort: number }> {
    return this.startCpProcess(`control-plane-${n}`, path.join(this.dir, `cp-${n}`), { http: 0, grpc: 0, s3: 0, s3Backup: 0 });
  }

  /**
   * `nodeArgs`: options for the agent's node (e.g. --cpu-prof for a benchmark); `wrap`: a command
   * the agent runs under (e.g. `nsenter --net=…`: a host of its own, netns-hosts.ts); `main`: the
   * agent's entry point (default: this checkout's build), e.g. another release's.
   */
  async addAgent(env: Record<string, string> = {}, opts: { nodeArgs?: string[]; wrap?: string[]; main?: string } = {}): Promise<AgentHandle> {
    const n = this.agents.length;
    const stateDir = path.join(this.dir, `agent-${n}`);
    const ingressPort = await reservePort();
    const { token } = await this.api.call("POST", "/v1/join-tokens");
    const handle: AgentHandle = {
      proc: undefined as unknown as Proc,
      stateDir,
      ingressPort,
      env,
      ...(opts.main ? { main: opts.main } : {}),
      start: async () => {
        const logFile = path.join(this.dir, `agent-${n}.log`);
        // A restart appends to the same log: only this start's "agent ready" counts.
        const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
        const [cmd, ...args] = [...(opts.wrap ?? []), process.execPath, ...(opts.nodeArgs ?? []), handle.main ?? AGENT_MAIN];
        handle.proc = startProcess(cmd!, args, {
          env: {
            ...process.env,
            SLIPWAY_CONTROL_PLANE: this.agentControlPlane ?? `127.0.0.1:${this.grpcPort}`,
            SLIPWAY_JOIN_TOKEN: token,
            SLIPWAY_AGENT_STATE_DIR: stateDir,
            SLIPWAY_AGENT_NAME: `${this.label}-agent-${n}`,
            SLIPWAY_INGRESS_HTTP_PORT: String(ingressPort),
            SLIPWAY_AGENT_SHUTDOWN_GRACE_SECONDS: "5",
            LOG_LEVEL: "info",
            ...handle.env,
          },
          logFile: path.join(this.dir, `agent-${n}.log`),
        });
        await waitFor("agent to register and heartbeat", async () => {
          if (handle.proc.child.exitCode !== null) throw new StopWaiting(`agent exited: ${this.tail(`agent-${n}.log`)}`);
          const id = JSON.parse(readFileSync(path.join(stateDir, "identity.json"), "utf8")).hostId as string;
          const host = await this.api.call("GET", `/v1/hosts/${id}`);
          handle.hostId = id;
          return host.state === "online" && readFileSync(logFile).subarray(logStart).toString("utf8").includes("agent ready");
        }, 60_000);
      },
      stop: async () => {
        await handle.proc?.stop();
      },
    };
    this.agents.push(handle);
    await handle.start();
    return handle;
  }

  /** A NATS connection with the control plane's own identity (every permission): tests that play the control plane. */
  natsAsControlPlane(): Promise<NatsConnection> {
    const seed = readFileSync(path.join(this.dir, "cp", "nats-control-plane.nk"), "utf8").trim();
    return connect({ servers: this.nats.url, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) });
  }

  /** A NATS connection with the identity of agent `n` (its seed and inbox prefix, from its identity file). */
  natsAsAgent(n: number, opts: { reconnect?: boolean } = {}): Promise<NatsConnection> {
    const id = JSON.parse(readFileSync(path.join(this.agents[n]!.stateDir, "identity.json"), "utf8")) as { natsSeed: string; natsInboxPrefix: string };
    return connect({ servers: this.nats.url, authenticator: nkeyAuthenticator(new TextEncoder().encode(id.natsSeed)), inboxPrefix: id.natsInboxPrefix, reconnect: opts.reconnect ?? false });
  }

  tail(file: string, lines = 30): string {
    try {
      return readFileSync(path.join(this.dir, file), "utf8").trim().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** Containers on this machine created by this platform's agents. */
  containers(hostId?: string): string[] {
    const ids = hostId ? [hostId] : this.agents.map((a) => a.hostId).filter(Boolean) as string[];
    return ids.flatMap((id) =>
      execFileSync("docker", ["ps", "-aq", "--filter", `label=io.slipway.host=${id}`], { encoding: "utf8" }).split("\n").filter(Boolean),
    );
  }

  /** Stops everything and removes what the agents started (containers, networks, HAProxy). */
  async stop(): Promise<void> {
    for (const a of this.agents) await a.stop().catch(() => undefined);
    await this.cp?.stop().catch(() => undefined);
    for (const a of this.agents) {
      if (a.hostId) {
        const ids = this.containers(a.hostId);
        if (ids.length) execFileSync("docker", ["rm", "-f", ...ids], { stdio: "ignore" });
        const nets = execFileSync("docker", ["network", "ls", "-q", "--filter", `label=io.slipway.host=${a.hostId}`], { encoding: "utf8" }).split("\n").filter(Boolean);
        if (nets.length) execFileSync("docker", ["network", "rm", ...nets], { stdio: "ignore" });
      }
      stopHaproxy(path.join(a.stateDir, "haproxy"));
      releasePort(a.ingressPort);
    }
    await this.nats.stop();
    await this.dropDb?.().catch(() => undefined);
    await dropDatabasesWithPrefix(this.dbPrefix).catch(() => undefined);
  }
}

/** The JSON records (pino lines) of a log file from byte `from` on; other lines are skipped. */
function logRecords(file: string, from: number): Array<Record<string, unknown>> {
  const records: Array<Record<string, unknown>> = [];
  for (const line of readFileSync(file).subarray(from).toString("utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      records.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return records;
}

/** Stops the HAProxy an agent left running (agents leave it serving on purpose). */
export function stopHaproxy(dir: string): void {
  for (const f of ["haproxy.pid", "pid"]) {
    try {
      const pid = Number(readFileSync(path.join(dir, f), "utf8").trim().split("\n")[0]);
      if (pid > 0) process.kill(pid, "SIGTERM");
      return;
    } catch {
      // try the next name
    }
  }
}
