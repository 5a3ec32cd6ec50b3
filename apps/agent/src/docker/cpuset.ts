/**
 * Which cores a container with a CPU limit may run on. A quota alone bounds a container's CPU time,
 * not how many cores it takes at once: a container of half a core with two busy threads runs on
 * both cores of a 2-core host in bursts (its 50 ms of each 100 ms period spent in 25 ms on both),
 * and every neighbour waits meanwhile (measured through HAProxy: a neighbour's p99 from ~0.6 ms to
 * 2.6–4.1 ms). Confined to ceil(limit) cores, it leaves the other cores to its neighbours whatever
 * it does (test/src/limits.serial.test.ts: busy p99 1.4–1.8× the idle figure, what remains being
 * the wake-ups that land on its core and wait out the scheduler's slice). The cores are those with
 * the least CPU already given to confined containers.
 */

/** "0-2,5" → [0, 1, 2, 5]; "" → []. */
export function parseCpuset(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [a, b] = part.split("-").map(Number);
    if (!Number.isInteger(a)) continue;
    for (let c = a!; c <= (Number.isInteger(b) ? b! : a!); c++) out.push(c);
  }
  return out;
}

/** What confined containers already take of each core: each spreads its CPU limit evenly over its cores. */
export function coreLoad(cores: number, confined: Array<{ cpus: number; cpuset: number[] }>): number[] {
  const load = new Array<number>(cores).fill(0);
  for (const c of confined) {
    const on = c.cpuset.filter((i) => i >= 0 && i < cores);
    for (const i of on) load[i]! += c.cpus / on.length;
  }
  return load;
}

/**
 * The cores for a container limited to `cpus` on a host of `cores`: the ceil(cpus) least loaded
 * (lowest index on ties), as Docker's CpusetCpus ("0,3"); undefined when it would get every core
 * anyway (nothing to confine).
 */
export function chooseCpuset(cpus: number, load: number[]): string | undefined {
  const k = Math.ceil(cpus - 1e-9);
  if (k >= load.length) return undefined;
  return load
    .map((l, i) => ({ l, i }))
    .sort((a, b) => a.l - b.l || a.i - b.i)
    .slice(0, Math.max(1, k))
    .map((x) => x.i)
    .sort((a, b) => a - b)
    .join(",");
}
