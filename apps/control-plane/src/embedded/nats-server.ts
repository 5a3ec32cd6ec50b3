import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import type { Logger } from "@slipway/core";
import { stopChild } from "./child.js";

export interface EmbeddedNats {
  url: string;
  pid: number;
  /** Asks the server to read its configuration again (SIGHUP): new users take effect, removed ones are disconnected. */
  reload(): Promise<void>;
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
 * when `port` is given, so agents reconnect to the same address. Its
 * configuration file (`<dataDir>/nats/nats.conf`, rewritten at every start)
 * includes the users file the control plane keeps (`usersFile`, see
 * bus/nats-users.ts), which must exist before the start.
 */
export async function startEmbeddedNats(opts: { dataDir: string; bin: string; port?: number; usersFile: string; log: Logger }): Promise<EmbeddedNats> {
  const storeDir = path.join(opts.dataDir, "nats");
  mkdirSync(storeDir, { recursive: true });
  const configFile = path.join(storeDir, "nats.conf");
  const port = opts.port || (await freePort());
  const pidFile = path.join(storeDir, "nats-server.pid");
  await stopStale(pidFile, [storeDir, configFile], opts.log);
  // Everything in the file, nothing as flags: a reload (SIGHUP, for new users) re-reads the file only,
  // and nats-server 2.9 shuts JetStream down on a reload when it was enabled by `-js` alone.
  const q = (v: string) => JSON.stringify(v);
  writeFileSync(
    configFile,
    [
      "# Written by the Slipway control plane at every start.",
      `listen: ${q(`127.0.0.1:${port}`)}`,
      `jetstream { store_dir: ${q(storeDir)} }`,
      `pid_file: ${q(pidFile)}`,
      `include ${q(path.relative(storeDir, opts.usersFile))}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const child = spawn(opts.bin, ["-c", configFile], { stdio: ["ignore", "ignore", "pipe"] });
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
    reload: async () => {
      if (child.exitCode !== null || !child.kill("SIGHUP")) throw new Error("the embedded nats-server is not running");
    },
    stop: () => stopChild(child),
  };
}

/**
 * A control plane killed with SIGKILL leaves its embedded nats-server running on
 * the port the next start needs. The pid file says which process that is; it is
 * stopped only if it is a nats-server of this very store directory (or its configuration file).
 */
async function stopStale(pidFile: string, ownArgs: string[], log: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, "utf8").trim());
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    if (!pid || !cmdline.some((a) => a.endsWith("nats-server")) || !cmdline.some((a) => ownArgs.includes(a))) return;
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
