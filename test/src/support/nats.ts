import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import net from "node:net";
import { startProcess, StopWaiting, waitFor, type Proc } from "./processes.js";
import { releasePort, reservePort } from "@slipway/agent/testing/ports";

/**
 * A real nats-server with JetStream on a loopback port, restartable on the same port and store.
 * The first start binds port 0 (nats-server's `-p -1`) and reads the port it got from the
 * ports file nats-server writes; a restart binds that port again (clients reconnect to it).
 *
 * Configured as an operator would configure an external NATS for Slipway: its configuration
 * includes `usersFile`, which the control plane fills with one user per host
 * (SLIPWAY_NATS_USERS_FILE) and reloads with `reloadCommand` (SLIPWAY_NATS_RELOAD_COMMAND).
 * Until the control plane first writes it the file is empty and the server open.
 */
export class NatsServer {
  private proc?: Proc;
  readonly storeDir = mkdtempSync(path.join(tmpdir(), "slipway-nats-"));
  readonly usersFile = path.join(this.storeDir, "users.conf");
  readonly pidFile = path.join(this.storeDir, "nats-server.pid");
  readonly reloadCommand = `nats-server --signal reload=${this.pidFile}`;
  port = 0;
  /** The address it listens on (e.g. "0.0.0.0" for agents in network namespaces); clients here use 127.0.0.1. */
  listenHost = "127.0.0.1";

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const config = path.join(this.storeDir, "nats.conf");
    // JetStream in the file, not as `-js`: nats-server 2.9 shuts JetStream down on a reload otherwise.
    writeFileSync(config, `listen: "${this.listenHost}:${this.port || -1}"\njetstream { store_dir: ${JSON.stringify(this.storeDir)} }\npid_file: ${JSON.stringify(this.pidFile)}\nports_file_dir: ${JSON.stringify(this.storeDir)}\ninclude "users.conf"\n`);
    if (!existsSync(this.usersFile)) writeFileSync(this.usersFile, "");
    const proc = startProcess("nats-server", ["-c", config], { env: process.env, logFile: path.join(this.storeDir, "nats.log") });
    this.proc = proc;
    const portsFile = path.join(this.storeDir, `nats-server_${proc.pid}.ports`);
    this.port = await waitFor("nats-server's ports file", async () => {
      if (proc.child.exitCode !== null) throw new StopWaiting(`nats-server exited: ${readFileSync(path.join(this.storeDir, "nats.log"), "utf8").slice(-1000)}`);
      const { nats } = JSON.parse(readFileSync(portsFile, "utf8")) as { nats: string[] };
      return Number(new URL(nats[0]!).port);
    }, { timeoutMs: 20_000, intervalMs: 50 });
    await waitFor(`nats on ${this.port}`, () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(this.port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(false));
      }),
    );
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
    this.proc = undefined;
  }
}

/**
 * Three nats-server nodes with JetStream clustered on loopback (issue 16), each with its own
 * store directory and fixed client and route ports (reserved: a killed node restarts on the
 * same addresses, which the control plane and agents were given). Configured as an operator
 * would run a NATS cluster for Slipway: every node includes the same `usersFile`, and
 * `reloadCommand` reloads every node that runs (a node that is down reads the file when it
 * starts again). Nodes are stopped by PID, also when a test fails (stop()).
 */
export class NatsCluster {
  readonly dir = mkdtempSync(path.join(tmpdir(), "slipway-nats-cluster-"));
  readonly usersFile = path.join(this.dir, "users.conf");
  readonly nodes: NatsClusterNode[] = [];
  private readonly ports: number[] = [];

  constructor(readonly size = 3, readonly name = "slipway") {}

  /** Every node's client address, comma-separated: what NATS_URL takes for a cluster. */
  get url(): string {
    return this.nodes.map((n) => n.url).join(",");
  }

  /** Reloads every node whose PID file names a live process; fails if one of those fails. */
  get reloadCommand(): string {
    const files = this.nodes.map((n) => JSON.stringify(n.pidFile)).join(" ");
    return `rc=0; for f in ${files}; do if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then nats-server --signal reload="$f" || rc=1; fi; done; exit $rc`;
  }

  node(serverName: string): NatsClusterNode {
    const n = this.nodes.find((x) => x.serverName === serverName);
    if (!n) throw new Error(`no node named ${serverName} in ${this.nodes.map((x) => x.serverName).join(", ")}`);
    return n;
  }

  /** Starts every node at once (JetStream waits for a quorum of the cluster to elect its meta leader). */
  async start(): Promise<void> {
    if (this.nodes.length === 0) {
      for (let i = 0; i < this.size * 2; i++) this.ports.push(await reservePort());
      if (!existsSync(this.usersFile)) writeFileSync(this.usersFile, "");
      for (let i = 0; i < this.size; i++) {
        const routes = this.ports.filter((_, j) => j % 2 === 1 && j !== i * 2 + 1).map((p) => `nats-route://127.0.0.1:${p}`);
        this.nodes.push(new NatsClusterNode(this.dir, `n${i + 1}`, this.name, this.ports[i * 2]!, this.ports[i * 2 + 1]!, routes));
      }
    }
    await Promise.all(this.nodes.map((n) => n.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop().catch(() => undefined)));
    for (const p of this.ports) releasePort(p);
  }
}

/** One node of a NatsCluster: its configuration sits beside the shared users file (nats-server resolves `include` relative to it). */
export class NatsClusterNode {
  private proc?: Proc;
  readonly storeDir: string;
  readonly pidFile: string;
  readonly logFile: string;

  constructor(private readonly dir: string, readonly serverName: string, clusterName: string, readonly port: number, readonly routePort: number, routes: string[]) {
    this.storeDir = path.join(dir, serverName);
    mkdirSync(this.storeDir, { recursive: true });
    this.pidFile = path.join(this.storeDir, "nats-server.pid");
    this.logFile = path.join(this.storeDir, "nats.log");
    writeFileSync(
      this.configFile(),
      [
        `server_name: ${serverName}`,
        `listen: "127.0.0.1:${port}"`,
        // JetStream in the file, not as `-js`: nats-server 2.9 shuts JetStream down on a reload otherwise.
        `jetstream { store_dir: ${JSON.stringify(this.storeDir)} }`,
        `cluster { name: ${clusterName}, listen: "127.0.0.1:${routePort}", routes: [${routes.map((r) => JSON.stringify(r)).join(", ")}] }`,
        `pid_file: ${JSON.stringify(this.pidFile)}`,
        `include "users.conf"`,
        "",
      ].join("\n"),
    );
  }

  private configFile(): string {
    return path.join(this.dir, `${this.serverName}.conf`);
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.child.exitCode === null && this.proc.child.signalCode === null;
  }

  async start(): Promise<void> {
    const proc = startProcess("nats-server", ["-c", this.configFile()], { env: process.env, logFile: this.logFile });
    this.proc = proc;
    await waitFor(`nats node ${this.serverName} on ${this.port}`, () =>
      new Promise<boolean>((resolve, reject) => {
        if (proc.child.exitCode !== null) return reject(new StopWaiting(`nats-server ${this.serverName} exited: ${readFileSync(this.logFile, "utf8").slice(-1000)}`));
        const s = net.connect(this.port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(false));
      }),
    { timeoutMs: 20_000, intervalMs: 50 });
  }

  /** SIGKILL: the node dies as a crashed machine would, without leaving the cluster. */
  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
    this.proc = undefined;
  }
}
