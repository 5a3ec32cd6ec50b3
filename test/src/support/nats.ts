import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import net from "node:net";
import { freePort, startProcess, waitFor, type Proc } from "./processes.js";

/** A real nats-server with JetStream on a random loopback port, restartable on the same port and store. */
export class NatsServer {
  private proc?: Proc;
  readonly storeDir = mkdtempSync(path.join(tmpdir(), "slipway-nats-"));
  port = 0;

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    this.proc = startProcess("nats-server", ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.storeDir], { env: process.env, logFile: path.join(this.storeDir, "nats.log") });
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
