/**
 * CPU and memory of processes from /proc, for the fleet benchmark. CPU is
 * sampled every second per PID and summed per role, so processes that come
 * and go (PostgreSQL backends of a pool) are counted while they live.
 * CPU % is of one core (200 % = both cores of this machine).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

let clkTck = 0;
function ticksPerSecond(): number {
  if (!clkTck) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime + stime of a process in clock ticks; undefined when it is gone. */
export function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

/** Resident set size in bytes; 0 when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Busy (user, nice, system, irq, softirq), steal and total jiffies of the whole machine (all cores). */
function machineTicks(): { busy: number; steal: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const steal = v[7] ?? 0;
  return { busy: total - idle - steal, steal, total };
}

export interface RoleUsage {
  /** CPU over the window, % of one core. */
  cpuPct: number;
  /** RSS summed over the role's processes: at the end and the peak of the 1 s samples. */
  rssEndBytes: number;
  rssPeakBytes: number;
}

export interface UsageWindow {
  seconds: number;
  roles: Record<string, RoleUsage>;
  /** The whole machine: busy % of one core (max 100 × cores). */
  machineCpuPct: number;
  /** Machine busy minus all roles: other work on this machine during the window. */
  otherCpuPct: number;
  /** Time the hypervisor ran something else while this machine wanted to run (% of one core). */
  stealPct: number;
}

/** Samples the given roles every second until stop(). */
export class UsageSampler {
  private readonly last = new Map<number, number>();
  private readonly ticks = new Map<string, number>();
  private readonly rssPeak = new Map<string, number>();
  private readonly rssEnd = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private readonly t0 = performance.now();
  private readonly m0 = machineTicks();
  private sampling?: Promise<void>;

  constructor(private readonly roles: Record<string, () => number[] | Promise<number[]>>) {
    this.sampling = this.sample(true);
    this.timer = setInterval(() => {
      this.sampling = (this.sampling ?? Promise.resolve()).then(() => this.sample(false));
    }, 1000);
  }

  private async sample(first: boolean): Promise<void> {
    for (const [role, pids] of Object.entries(this.roles)) {
      let list: number[] = [];
      try {
        list = await pids();
      } catch {
        list = [];
      }
      let rss = 0;
      for (const pid of list) {
        const t = cpuTicks(pid);
        if (t === undefined) continue;
        const prev = this.last.get(pid);
        // A PID first seen after the start counts from its first sample.
        if (prev !== undefined && !first) this.ticks.set(role, (this.ticks.get(role) ?? 0) + (t - prev));
        this.last.set(pid, t);
        rss += rssBytes(pid);
      }
      this.rssEnd.set(role, rss);
      this.rssPeak.set(role, Math.max(this.rssPeak.get(role) ?? 0, rss));
    }
  }

  async stop(): Promise<UsageWindow> {
    clearInterval(this.timer);
    await this.sampling;
    await this.sample(false);
    const seconds = (performance.now() - this.t0) / 1000;
    const m1 = machineTicks();
    const hz = ticksPerSecond();
    const roles: Record<string, RoleUsage> = {};
    let sum = 0;
    for (const role of Object.keys(this.roles)) {
      const cpuPct = ((this.ticks.get(role) ?? 0) / hz / seconds) * 100;
      sum += cpuPct;
      roles[role] = { cpuPct, rssEndBytes: this.rssEnd.get(role) ?? 0, rssPeakBytes: this.rssPeak.get(role) ?? 0 };
    }
    const machineCpuPct = ((m1.busy - this.m0.busy) / hz / seconds) * 100;
    const stealPct = ((m1.steal - this.m0.steal) / hz / seconds) * 100;
    return { seconds, roles, machineCpuPct, otherCpuPct: Math.max(0, machineCpuPct - sum), stealPct };
  }
}
