/**
 * Pinning the HAProxy this agent runs to a set of cores (docker/cpuset.ts says which), live:
 * sched_setaffinity of every thread through util-linux's `taskset -a`, no reload. A worker
 * HAProxy forks at a reload inherits its master's cores; a master started again is pinned at the
 * next pass.
 */
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import type { Logger } from "pino";
import { parseCpuset } from "../docker/cpuset.js";

/** The cores each thread of a process may run on (`/proc/<pid>/task/<tid>/status`); undefined when it is gone or /proc is not Linux's. */
export async function threadCores(pid: number): Promise<number[][] | undefined> {
  try {
    const tids = await fs.readdir(`/proc/${pid}/task`);
    const out: number[][] = [];
    for (const tid of tids) {
      const status = await fs.readFile(`/proc/${pid}/task/${tid}/status`, "utf8").catch(() => undefined);
      const line = status?.split("\n").find((l) => l.startsWith("Cpus_allowed_list:"));
      if (line) out.push(parseCpuset(line.slice("Cpus_allowed_list:".length).trim()));
    }
    return out;
  } catch {
    return undefined;
  }
}

const same = (a: number[], b: number[]) => a.length === b.length && a.every((c, i) => c === b[i]);

/**
 * Pins every thread of these processes to `cores` ("0,1"), touching only those not pinned so
 * already. Resolves with the PIDs changed; a process gone meanwhile is skipped, a failure logged
 * once per kind (a host without taskset keeps working, unpartitioned).
 */
export class ProcessPinner {
  private warned = new Set<string>();
  constructor(private readonly log: Logger) {}

  async pin(cores: string, pids: number[]): Promise<number[]> {
    const want = parseCpuset(cores);
    const changed: number[] = [];
    for (const pid of pids) {
      const threads = await threadCores(pid);
      if (!threads || threads.every((t) => same(t, want))) continue;
      try {
        await new Promise<void>((resolve, reject) =>
          execFile("taskset", ["-a", "-p", "-c", cores, String(pid)], { timeout: 10_000 }, (err, _out, errOut) => (err ? reject(new Error(`${err.message} ${errOut}`.trim())) : resolve())),
        );
        changed.push(pid);
      } catch (err) {
        // Exited since it was listed: nothing to pin.
        if ((await threadCores(pid)) === undefined) continue;
        const kind = (err as Error).message.includes("ENOENT") ? "missing" : "failed";
        if (!this.warned.has(kind)) {
          this.warned.add(kind);
          this.log.warn({ pid, cores, err: (err as Error).message }, kind === "missing" ? "taskset (util-linux) is not installed: HAProxy stays on every core" : "cannot pin a process to its cores");
        }
      }
    }
    return changed;
  }
}
