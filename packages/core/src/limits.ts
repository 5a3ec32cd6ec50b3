import { InvalidRequestError } from "./errors.js";

/**
 * What an environment's containers may take, each of them (web and one-off alike), enforced by
 * Docker: memory (no swap beyond it: a container that needs more is killed, "out of memory"), CPU
 * (a share of the host's cores, in cores: 0.5 = half a core) and processes (fork bombs stop there).
 * Placement counts memory × replicas against a host's memory, and CPU × replicas against its cores
 * times an overcommit factor (most environments idle most of the time).
 */
export interface ResourceLimits {
  memoryMb: number;
  cpus: number;
  pids: number;
}

/** Platform defaults (SLIPWAY_DEFAULT_LIMITS; live may have its own, SLIPWAY_DEFAULT_LIVE_LIMITS). */
export const DEFAULT_LIMITS: Readonly<ResourceLimits> = Object.freeze({ memoryMb: 512, cpus: 1, pids: 512 });

export const LIMIT_BOUNDS = {
  memoryMb: { minimum: 16, maximum: 1_048_576 },
  cpus: { minimum: 0.01, maximum: 256 },
  pids: { minimum: 16, maximum: 1_000_000 },
} as const;

/** JSON schema of an environment's limits patch (`PATCH …/environments/{env}` `limits`). */
export const resourceLimitsPatchSchema = {
  anyOf: [
    {
      type: "object",
      additionalProperties: false,
      minProperties: 1,
      properties: {
        memoryMb: { type: "integer", ...LIMIT_BOUNDS.memoryMb },
        cpus: { type: "number", ...LIMIT_BOUNDS.cpus },
        pids: { type: "integer", ...LIMIT_BOUNDS.pids },
      },
    },
    { type: "null" },
  ],
} as const;

const KEYS = ["memoryMb", "cpus", "pids"] as const;

/** Throws InvalidRequestError unless every given limit is within its bounds (cpus to hundredths of a core). */
export function assertLimits(l: Partial<ResourceLimits>, where = "limits"): void {
  for (const k of KEYS) {
    const v = l[k];
    if (v === undefined) continue;
    const b = LIMIT_BOUNDS[k];
    const integral = k !== "cpus";
    if (typeof v !== "number" || !Number.isFinite(v) || v < b.minimum || v > b.maximum || (integral && !Number.isInteger(v)) || (!integral && Math.round(v * 100) !== v * 100)) {
      throw new InvalidRequestError(`${where}.${k} must be ${integral ? "an integer" : "a number of cores, to hundredths"} from ${b.minimum} to ${b.maximum}`, { details: { [`${where}.${k}`]: "out of bounds" } });
    }
  }
}

/** "memoryMb=512,cpus=0.5,pids=256" (any subset) → limits; throws naming `name` on anything else. */
export function parseLimits(spec: string, name: string): Partial<ResourceLimits> {
  const out: Partial<ResourceLimits> = {};
  for (const part of spec.split(",").map((p) => p.trim()).filter(Boolean)) {
    const m = /^(memoryMb|cpus|pids)=([0-9.]+)$/.exec(part);
    if (!m) throw new InvalidRequestError(`${name}: '${part}' is not memoryMb=<MiB>, cpus=<cores> or pids=<count>`);
    out[m[1] as keyof ResourceLimits] = Number(m[2]);
  }
  assertLimits(out, name);
  return out;
}

/** The limits an environment runs with: its own where set, the platform's default otherwise. */
export function effectiveLimits(own: Partial<ResourceLimits> | null | undefined, defaults: ResourceLimits): ResourceLimits {
  return { ...defaults, ...(own ?? {}) };
}

/** What an environment asks of its host: each limit times its replicas. */
export function requestOf(limits: ResourceLimits, replicas: number): { memoryBytes: number; cpus: number } {
  return { memoryBytes: limits.memoryMb * 1024 * 1024 * replicas, cpus: limits.cpus * replicas };
}
