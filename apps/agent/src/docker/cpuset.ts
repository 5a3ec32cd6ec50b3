/**
 * Which cores a container with a CPU limit may run on. A quota alone bounds a container's CPU time,
 * not how many cores it takes at once: a container of half a core with two busy threads runs on
 * both cores of a 2-core host in bursts (its 50 ms of each 100 ms period spent in 25 ms on both),
 * and every neighbour waits meanwhile (measured through HAProxy: a neighbour's p99 from ~0.6 ms to
 * 2.6–4.1 ms). Confined to ceil(limit) cores, it leaves the other cores to its neighbours whatever
 * it does (test/src/limits.serial.test.ts: busy p99 1.4–1.8× the idle figure, what remains being
 * the wake-ups that land on its core and wait out the scheduler's slice). The cores are those with
 * the least CPU already given to confined containers.
 *
 * HAProxy, which every request crosses, is kept off the cores of confined containers that use
 * their whole limit (ingressCores): with EEVDF (Linux ≥ 6.6), an ingress thread running on a core
 * where a container burns its quota shares that core with it in slices, and a neighbour's p99
 * through the ingress went from ~1.4 ms to 3.5–4.3 ms on this 2-core machine (the limits test,
 * kernel 6.18; the neighbour itself on the other core). Which cores are busy changes by the
 * second, so the agent measures it (every 2 s) rather than reserving cores: a reservation would
 * cost a small host a core for good, and with the default limit of one core every container of a
 * 2-core host is confined anyway.
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

/** A confined container's cores, its limit and what it used over the last interval, in cores. */
export interface ConfinedUse {
  cpuset: number[];
  cpus: number;
  usedCpus: number;
}

/** A container counts as busy from this share of its limit. */
export const BUSY_SHARE = 0.8;

/**
 * The cores HAProxy should run on, as a cpuset ("0,2"): all but those of confined containers
 * using at least BUSY_SHARE of their limit; every core when that leaves none.
 */
export function ingressCores(cores: number, confined: ConfinedUse[]): string {
  const busy = new Set(confined.filter((c) => c.cpus > 0 && c.usedCpus >= BUSY_SHARE * c.cpus).flatMap((c) => c.cpuset));
  const free = [...Array(cores).keys()].filter((c) => !busy.has(c));
  return (free.length > 0 ? free : [...Array(cores).keys()]).join(",");
}
