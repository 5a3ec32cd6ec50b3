/**
 * CPU time of processes from Linux's /proc, for the HTTPS benchmark: HAProxy's worker (the server's
 * own cost per connection, whatever the load client on the same machine costs) and this process's
 * reaped children (openssl s_time).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** utime, stime, cutime and cstime (clock ticks) from a /proc/<pid>/stat line; undefined when it is not one. */
export function parseProcStat(line: string): { utime: number; stime: number; cutime: number; cstime: number } | undefined {
  // The command name (field 2) is in parentheses and may itself hold spaces and ')': fields follow the last ')'.
  const rest = line.slice(line.lastIndexOf(")") + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state); utime is field 14.
  const [utime, stime, cutime, cstime] = [rest[11], rest[12], rest[13], rest[14]].map(Number);
  if (line.lastIndexOf(")") < 0 || ![utime, stime, cutime, cstime].every(Number.isFinite)) return undefined;
  return { utime, stime, cutime, cstime };
}

let ticksPerSecond: number | undefined;
function msPerTick(): number {
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  return 1000 / ticksPerSecond;
}

function stat(pid: number | "self") {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** User + system CPU of a process (all its threads) so far, in ms; undefined when it cannot be read. */
export function processCpuMs(pid: number): number | undefined {
  const s = stat(pid);
  return s && (s.utime + s.stime) * msPerTick();
}

/** User + system CPU of this process's children that have exited and been waited for, in ms. */
export function reapedChildrenCpuMs(): number {
  const s = stat("self");
  return s ? (s.cutime + s.cstime) * msPerTick() : NaN;
}
