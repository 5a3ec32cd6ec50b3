import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of the utime/stime fields in /proc (USER_HZ; 100 on Linux/x86). */
export const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** The fields after the `(comm)` of /proc/<pid>/stat (comm may contain spaces and parentheses); undefined when the process is gone. */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  return text.slice(text.lastIndexOf(")") + 2).trim().split(" ");
}

/** CPU seconds (user + system, all threads) a process has used so far; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  // After the comm: state(3) ppid(4) … utime(14) stime(15), i.e. indices 11 and 12 here.
  return f ? (Number(f[11]) + Number(f[12])) / CLK_TCK : 0;
}

/**
 * CPU seconds of this process's terminated and waited-for children so far
 * (cutime + cstime of /proc/self/stat): the CPU of a tool run with execFile,
 * such as wrk, once it has exited.
 */
export function waitedChildrenCpuSeconds(): number {
  const f = statFields(process.pid);
  // cutime(16) and cstime(17): indices 13 and 14 after the comm.
  return f ? (Number(f[13]) + Number(f[14])) / CLK_TCK : 0;
}

/** Pids whose parent is `ppid` (e.g. an HAProxy master's workers). */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f && Number(f[1]) === ppid) out.push(Number(name));
  }
  return out;
}

/** Busy and total CPU seconds of the whole machine since boot, all cores (from the first line of /proc/stat). */
export function machineCpuSeconds(): { busy: number; total: number } {
  const first = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const v = first.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is already in user)
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

/** CPU seconds of a set of processes so far (summed). */
export function cpuSecondsOf(pids: readonly number[]): number {
  return pids.reduce((s, p) => s + cpuSeconds(p), 0);
}
