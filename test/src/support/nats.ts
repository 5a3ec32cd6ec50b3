import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import net from "node:net";
import { startProcess, StopWaiting, waitFor, type Proc } from "./processes.js";

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

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const config = path.join(this.storeDir, "nats.conf");
    // JetStream in the file, not as `-js`: nats-server 2.9 shuts JetStream down on a reload otherwise.
    writeFileSync(config, `listen: "127.0.0.1:${this.port || -1}"\njetstream { store_dir: ${JSON.stringify(this.storeDir)} }\npid_file: ${JSON.stringify(this.pidFile)}\nports_file_dir: ${JSON.stringify(this.storeDir)}\ninclude "users.conf"\n`);
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
