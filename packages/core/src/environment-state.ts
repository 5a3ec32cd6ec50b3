import type { EnvironmentState } from "./states.js";

/**
 * What the user asked of an environment: to serve, or to be stopped by hand.
 * Written by the control plane only on a user's request (stop, start, deploy).
 */
export const desiredEnvironmentStates = ["running", "stopped"] as const;
export type DesiredEnvironmentState = (typeof desiredEnvironmentStates)[number];

/**
 * What the environment's host last reported of its containers: serving,
 * asleep (stopped until a request wakes it) or stopped. `null` until the
 * host first reports. Written from heartbeats and job results only.
 */
export const observedEnvironmentStates = ["running", "sleeping", "stopped"] as const;
export type ObservedEnvironmentState = (typeof observedEnvironmentStates)[number];

/** The state the API shows: the lifecycle state, or `unknown` while the host cannot say. */
export type EnvironmentApiState = EnvironmentState | "unknown";

/** Everything an environment's state is derived from (Nomad's desired vs client status). */
export interface EnvironmentFacts {
  desired: DesiredEnvironmentState;
  observed: ObservedEnvironmentState | null;
  /** A deployment of the environment is queued or running (not one waiting behind it). */
  deploying: boolean;
  /** A deployment succeeded and its containers are the environment's (it has an image). */
  serving: boolean;
  /** The environment's most recent finished deployment failed. */
  lastDeploymentFailed: boolean;
}

/**
 * The environment's lifecycle state, from what was asked and what was seen.
 * A running deployment owns the state; before anything serves it is
 * `not_deployed`, or `failed` when the last attempt failed; afterwards the
 * host's observation is the truth, and until the host has reported, what the
 * user asked for.
 */
export function environmentState(f: EnvironmentFacts): EnvironmentState {
  if (f.deploying) return "deploying";
  if (!f.serving) return f.lastDeploymentFailed ? "failed" : "not_deployed";
  if (f.observed) return f.observed;
  return f.desired === "stopped" ? "stopped" : "running";
}

/**
 * The state the API shows. When the host is offline (or gone) nobody knows
 * what runs, so a deployed environment that is not being deployed is
 * `unknown`, never shown as healthy.
 */
export function environmentApiState(f: EnvironmentFacts & { placed: boolean; hostOnline: boolean }): EnvironmentApiState {
  const state = environmentState(f);
  if (f.placed && !f.hostOnline && state !== "not_deployed" && state !== "deploying" && state !== "failed") return "unknown";
  return state;
}

export function isObservedEnvironmentState(s: string): s is ObservedEnvironmentState {
  return (observedEnvironmentStates as readonly string[]).includes(s);
}
