import { IllegalStateError } from "./errors.js";

/** Deployment lifecycle; only `switching` touches live traffic. */
export const deploymentStates = [
  "queued", "preparing", "building", "releasing", "starting", "probing", "switching",
  "succeeded", "failed", "cancelled",
] as const;
export type DeploymentState = (typeof deploymentStates)[number];

const active: DeploymentState[] = ["queued", "preparing", "building", "releasing", "starting", "probing", "switching"];
const order: DeploymentState[] = ["queued", "preparing", "building", "releasing", "starting", "probing", "switching", "succeeded"];

/**
 * Allowed deployment transitions. Steps may be skipped forward (a reused
 * image skips `building`, no release commands skip `releasing`), never
 * backward except to start over: a job redelivered after its agent died runs
 * again from `preparing` (the agent first restores the routing the
 * environment had). Any active state may fail; cancellation is refused once
 * `switching` has begun.
 */
export const deploymentTransitions: Record<DeploymentState, readonly DeploymentState[]> = Object.fromEntries(
  deploymentStates.map((s) => {
    const i = order.indexOf(s);
    if (!active.includes(s)) return [s, []];
    const forward = order.slice(i + 1);
    const restart: DeploymentState[] = i > order.indexOf("preparing") ? ["preparing"] : [];
    const extra: DeploymentState[] = s === "switching" ? ["failed"] : ["failed", "cancelled"];
    return [s, [...forward, ...restart, ...extra]];
  }),
) as unknown as Record<DeploymentState, readonly DeploymentState[]>;

export function isTerminalDeploymentState(s: DeploymentState): boolean {
  return s === "succeeded" || s === "failed" || s === "cancelled";
}
export function isActiveDeploymentState(s: DeploymentState): boolean {
  return active.includes(s);
}

export const environmentStates = ["not_deployed", "deploying", "running", "sleeping", "stopped", "failed"] as const;
export type EnvironmentState = (typeof environmentStates)[number];

export const environmentTransitions: Record<EnvironmentState, readonly EnvironmentState[]> = {
  not_deployed: ["deploying"],
  // a deployment ends in running (it serves) or back where it was; failed only when nothing serves
  deploying: ["running", "failed", "not_deployed", "stopped", "sleeping"],
  running: ["deploying", "sleeping", "stopped"],
  sleeping: ["running", "deploying", "stopped"],
  stopped: ["running", "deploying"],
  failed: ["deploying"],
};

export const jobStates = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
export type JobState = (typeof jobStates)[number];
export const jobTransitions: Record<JobState, readonly JobState[]> = {
  queued: ["running", "succeeded", "failed", "cancelled"],
  running: ["succeeded", "failed", "cancelled"],
  succeeded: [],
  failed: [],
  cancelled: [],
};
export function isTerminalJobState(s: JobState): boolean {
  return s === "succeeded" || s === "failed" || s === "cancelled";
}

export const hostStates = ["online", "offline", "cordoned", "draining"] as const;
export type HostState = (typeof hostStates)[number];

/**
 * The one place a lifecycle moves. Throws IllegalStateError on an illegal move;
 * a move to the same state is a no-op and allowed (retries are idempotent).
 */
export function transition<S extends string>(
  machine: string,
  table: Record<S, readonly S[]>,
  from: S,
  to: S,
): S {
  if (from === to) return to;
  if (!table[from]?.includes(to)) {
    throw new IllegalStateError(`${machine}: illegal transition ${from} → ${to}`, { details: { from, to } });
  }
  return to;
}

/** The deployment steps the agent reports, and the deployment state each one means. */
export const stepNames = ["source", "build", "content", "release", "start", "probe", "switch", "cleanup"] as const;
export type StepName = (typeof stepNames)[number];
export const stepToDeploymentState: Record<StepName, DeploymentState | undefined> = {
  source: "preparing",
  build: "building",
  // Content is copied between the build and the release commands; it has no state of its own.
  content: undefined,
  release: "releasing",
  start: "starting",
  probe: "probing",
  switch: "switching",
  cleanup: undefined,
};
/** The log heading of each step, e.g. `===== docker release commands =====`. */
export const stepHeadings: Record<StepName, string> = {
  source: "source",
  build: "docker build",
  content: "content copy",
  release: "docker release commands",
  start: "docker start",
  probe: "startup probe",
  switch: "switch traffic",
  cleanup: "cleanup",
};
export const stepStates = ["running", "succeeded", "failed", "skipped"] as const;
export type StepState = (typeof stepStates)[number];
