import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
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
  const pidFile = path.join(storeDir, "nats-server.pid");
  await stopStale(pidFile, storeDir, opts.log);
  const child = spawn(opts.bin, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir, "-P", pidFile], { stdio: ["ignore", "ignore", "pipe"] });
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

/**
 * A control plane killed with SIGKILL leaves its embedded nats-server running on
 * the port the next start needs. The pid file says which process that is; it is
 * stopped only if it is a nats-server of this very store directory.
 */
async function stopStale(pidFile: string, storeDir: string, log: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, "utf8").trim());
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (!pid || !cmdline.some((a) => a.endsWith("nats-server")) || !cmdline.includes(storeDir)) return;
  } catch {
    return;
  }
  log.warn({ pid }, "stopping a nats-server left running by an earlier control plane of this data dir");
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 50; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(pid, "SIGKILL");
}
