/**
 * The HAProxy master as an operating-system process: config checks, a
 * detached start, liveness and ownership checks by pid, and stopping by pid.
 * Plus the small file helpers the adapter needs (atomic writes, tolerant reads).
 */
import { execFile, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import fs from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { StepFailure } from "@slipway/core";
import type { HaproxyPaths } from "./haproxy.config.js";

const execFileAsync = promisify(execFile);

/** Checks a config file with `haproxy -c`; throws StepFailure("ingress_invalid_config") with HAProxy's alerts. */
export async function checkConfig(bin: string, file: string): Promise<void> {
  try {
    await execFileAsync(bin, ["-c", "-q", "-f", file], { timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new StepFailure("ingress_invalid_config", `haproxy rejected the rendered config: ${(e.stderr || e.stdout || e.message).trim()}`, false);
  }
}

/** A started master: its pid, and why it exited if it already did. */
export interface SpawnedMaster {
  pid: number;
  exitReason(): string | undefined;
}

/**
 * Starts `haproxy -W -S <master.sock> -f <cfg> -p <pidfile>` in its own
 * session with output appended to the log file, so that it survives the
 * agent (and a signal to the agent's process group). Resolves once spawned,
 * not once ready.
 */
export function spawnMaster(bin: string, paths: HaproxyPaths): SpawnedMaster {
  const logFd = openSync(paths.logFile, "a", 0o600);
  let exited: string | undefined;
  try {
    const child = spawn(bin, ["-W", "-S", `${paths.masterSocket},mode,600`, "-f", paths.config, "-p", paths.pidFile], {
      detached: true,
      stdio: ["ignore", logFd, logFd],
    });
    child.once("exit", (code, signal) => (exited = `haproxy exited (${signal ?? code}) during start`));
    child.once("error", (err) => (exited = `haproxy could not be started: ${err.message}`));
    child.unref();
    if (child.pid === undefined) throw new StepFailure("ingress_start_failed", `could not start ${bin}`, false);
    return { pid: child.pid, exitReason: () => exited };
  } finally {
    closeSync(logFd);
  }
}

/** Alive and not a zombie: a stopped master whose parent has not reaped it yet counts as gone. */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readOrEmpty(`/proc/${pid}/stat`);
  if (stat === "") return false;
  const close = stat.lastIndexOf(")");
  const state = stat.slice(close + 2, close + 3);
  return state !== "Z" && state !== "X";
}

/** Guards every signal: the pid must be a live process started with this config file (pids get reused). */
export async function isOurHaproxy(pid: number, configPath: string): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  return (await readOrEmpty(`/proc/${pid}/cmdline`)).split("\0").includes(configPath);
}

/** SIGTERM (the master stops its workers), then SIGKILL after 10 s; resolves when the pid is gone. */
export async function stopByPid(pid: number): Promise<void> {
  for (const [signal, waitMs] of [["SIGTERM", 10_000], ["SIGKILL", 5_000]] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      if (!(await isAlive(pid))) return;
      await sleep(50);
    }
  }
  throw new StepFailure("ingress_stop_failed", `haproxy ${pid} is still running after SIGKILL`, true);
}

export async function readPid(file: string): Promise<number | undefined> {
  const pid = Number((await readOrEmpty(file)).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Write-then-rename, so a reader (HAProxy, the next agent) never sees half a file. */
export async function writeAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, content, { mode: 0o600 });
  await fs.rename(tmp, file);
}

/** The file's text, or "" when it does not exist. */
export async function readOrEmpty(file: string): Promise<string> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (err) {
    // ESRCH: a /proc entry whose process exited while it was read.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ESRCH") return "";
    throw err;
  }
}

/** The last lines of HAProxy's own output, for error messages. */
export async function logTail(paths: HaproxyPaths, lines = 8): Promise<string> {
  return (await readOrEmpty(paths.logFile)).trim().split("\n").slice(-lines).join(" | ");
}
