import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomInt } from "node:crypto";
import { tmpdir } from "node:os";
import net from "node:net";
import path from "node:path";

/**
 * Ports for tests whose children cannot bind port 0 and report what they got:
 * the agent's ingress (HAProxy binds it, and it must stay the same across agent
 * restarts) and `npm run up` (a script with fixed ports). For the agent's
 * integration tests and the e2e tests (`@slipway/agent/testing/ports`); the
 * agent itself never calls it.
 *
 * A port probed with listen(0) and handed on is a race under parallel tests:
 * the kernel may give the same port to any other bind(0) or outgoing connection
 * before the child binds it. So these come from below the kernel's ephemeral
 * range (never handed out automatically), and a lock file per port, created
 * exclusively, keeps parallel test processes apart. A lock whose process is gone
 * is taken over. Locks are released by releasePort() or when the process exits.
 */
// Shared by every test process on the machine: scripts/test gives each run a temporary directory of
// its own and names this one outside it.
const LOCK_DIR = process.env.SLIPWAY_TEST_PORTS_DIR ?? path.join(tmpdir(), "slipway-test-ports");
const LOWEST = 20_000;
const held = new Set<number>();

function ephemeralLow(): number {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function claim(port: number): boolean {
  const lock = path.join(LOCK_DIR, String(port));
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: "wx" });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const owner = Number(readFileSync(lock, "utf8").trim());
      if (owner && alive(owner)) return false;
      rmSync(lock, { force: true });
    }
  }
  return false;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    // The wildcard address: free there means free on every address (HAProxy may bind 0.0.0.0).
    srv.listen({ port, host: "0.0.0.0", exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A port no other test process holds and nothing listens on; held until releasePort() or exit. */
export async function reservePort(): Promise<number> {
  mkdirSync(LOCK_DIR, { recursive: true });
  const highest = Math.min(ephemeralLow(), 32_768) - 1;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = randomInt(LOWEST, highest + 1);
    if (held.has(port) || !claim(port)) continue;
    if (await bindable(port)) {
      held.add(port);
      return port;
    }
    rmSync(path.join(LOCK_DIR, String(port)), { force: true });
  }
  throw new Error(`no free port to reserve in ${LOWEST}–${highest}`);
}

/** Gives a reserved port back (idempotent). */
export function releasePort(port: number): void {
  if (!held.delete(port)) return;
  rmSync(path.join(LOCK_DIR, String(port)), { force: true });
}

process.once("exit", () => {
  for (const port of held) rmSync(path.join(LOCK_DIR, String(port)), { force: true });
});
