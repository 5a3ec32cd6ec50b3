import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import type { Logger } from "@slipway/core";
import { stopChild } from "./child.js";

export interface EmbeddedNats {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
}

/**
 * Starts `nats-server -js` on loopback with its store in `<dataDir>/nats`, for
 * the embedded default (NATS_URL unset). The port is stable across restarts
 * when `port` is given, so agents reconnect to the same address.
 */
export async function startEmbeddedNats(opts: { dataDir: string; bin: string; port?: number; log: Logger }): Promise<EmbeddedNats> {
  const storeDir = path.join(opts.dataDir, "nats");
  mkdirSync(storeDir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const child = spawn(opts.bin, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  const spawned = await new Promise<Error | null>((resolve) => {
    child.once("spawn", () => resolve(null));
    child.once("error", (e) => resolve(e));
  });
  if (spawned) throw new Error(`cannot start ${opts.bin}: ${spawned.message} (install nats-server or set NATS_URL)`);
  try {
    await waitForPort(port, child, 15_000);
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }
  opts.log.info({ port, pid: child.pid, storeDir }, "embedded nats-server started");
  return {
    url: `nats://127.0.0.1:${port}`,
    pid: child.pid!,
    stop: () => stopChild(child),
  };
}
