import { DEFAULT_LIMITS, effectiveLimits, type ResourceLimits } from "@slipway/core";

/**
 * The platform's resource rules: the limits an environment gets when it sets none (live may
 * have its own), and how far CPU is overcommitted when placing (limits are caps, and most
 * environments idle most of the time; memory is never overcommitted).
 */
export interface ResourcePolicy {
  defaults: ResourceLimits;
  liveDefaults: ResourceLimits;
  cpuOvercommit: number;
}

export const DEFAULT_RESOURCE_POLICY: ResourcePolicy = Object.freeze({ defaults: DEFAULT_LIMITS, liveDefaults: DEFAULT_LIMITS, cpuOvercommit: 8 });

/** The limits an environment runs with. */
export function limitsOf(policy: ResourcePolicy, env: { name: string; limits: Partial<ResourceLimits> | null }): ResourceLimits {
  return effectiveLimits(env.limits, env.name === "live" ? policy.liveDefaults : policy.defaults);
}
