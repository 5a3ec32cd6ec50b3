import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import net from "node:net";

/**
 * A port that was free a moment ago. Racy under parallel tests when handed to a child
 * (anything may take it before the child binds): prefer a child that binds port 0 and
 * reports it, else reservePort() (ports.ts).
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A fixed pause. Only where the time itself is what is tested (an idle time, a
 * refresh interval, a redelivery delay): say so beside the call. To wait for
 * something to happen, use waitFor.
 */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface WaitOptions {
  /** Give up after this long (default 60 s); the error names what was awaited. */
  timeoutMs?: number;
  /** Pause between probes (default 200 ms). */
  intervalMs?: number;
}

/**
 * Polls `probe` until it returns a value other than undefined/false and returns
 * that value; a probe that throws counts as "not yet" and its error is quoted if
 * the deadline passes. A probe still running at the deadline is not awaited
 * further: the wait fails at its deadline, not whenever a hung request ends.
 * A probe throws StopWaiting to fail at once.
 * (Positional `timeoutMs, intervalMs` are accepted too.)
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, opts: WaitOptions | number = {}, intervalArg?: number): Promise<T> {
  const { timeoutMs = 60_000, intervalMs = intervalArg ?? 200 } = typeof opts === "number" ? { timeoutMs: opts } : opts;
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<typeof EXPIRED>((r) => (timer = setTimeout(() => r(EXPIRED), Math.max(0, deadline - Date.now()))));
    try {
      const v = await Promise.race([probe(), expired]);
      if (v === EXPIRED) break;
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      if (err instanceof StopWaiting) throw new Error(`gave up waiting for ${what}: ${err.message}`, { cause: err });
      lastErr = err;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() + intervalMs >= deadline) break;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `; last error: ${(lastErr as Error).message}` : ""}`);
}
const EXPIRED = Symbol("expired");

/** Thrown by a waitFor probe when waiting longer is pointless (the process exited): waitFor rethrows it at once. */
export class StopWaiting extends Error {}

/** A child process the test started; stop() ends it by PID (SIGTERM, then SIGKILL). */
export interface Proc {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

export function startProcess(cmd: string, args: string[], opts: { env: NodeJS.ProcessEnv; logFile: string; cwd?: string }): Proc {
  const out = createWriteStream(opts.logFile, { flags: "a" });
  const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(t);
  };
  return { child, pid: child.pid!, exited, stop, kill: () => stop("SIGKILL", 0) };
}
