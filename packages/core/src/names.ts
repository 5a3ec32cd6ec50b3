import { InvalidRequestError } from "./errors.js";

/** DNS label used for app and environment names. */
export const NAME_PATTERN = "^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$";
const nameRe = new RegExp(NAME_PATTERN);
export const ENV_NAME_PATTERN = "^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$";
const envNameRe = new RegExp(ENV_NAME_PATTERN);
/** POSIX environment variable names. */
export const VARIABLE_KEY_PATTERN = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";
/** A git branch name (conservative subset of git-check-ref-format). */
export const BRANCH_PATTERN = "^(?!/)(?!.*\\.\\.)(?!.*//)(?!.*@\\{)[A-Za-z0-9._/-]{1,200}(?<![/.])$";

/** Host labels (SLIPWAY_AGENT_LABELS) and an environment's placement constraints (`hostLabels`): key=value. */
export const HOST_LABEL_KEY_PATTERN = "^[a-zA-Z0-9._/-]{1,63}$";
export const HOST_LABEL_VALUE_PATTERN = "^[a-zA-Z0-9._-]{0,63}$";
/** True when the host has every label the constraints ask for, with the same value. */
export function labelsMatch(hostLabels: Record<string, string>, constraints: Record<string, string>): boolean {
  return Object.entries(constraints).every(([k, v]) => hostLabels[k] === v);
}

/** `k1=v1,k2=v2` (keys sorted), as SLIPWAY_AGENT_LABELS is written. */
export function formatLabels(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

export const DEFAULT_ENVIRONMENTS = ["test", "live"] as const;

export function isValidAppName(name: string): boolean {
  return nameRe.test(name);
}
export function isValidEnvironmentName(name: string): boolean {
  return envNameRe.test(name);
}
export function assertAppName(name: string): void {
  if (!isValidAppName(name)) {
    throw new InvalidRequestError(`invalid app name '${name}': use 1-40 of a-z, 0-9 and '-', not starting or ending with '-'`, {
      details: { name: "must match " + NAME_PATTERN },
    });
  }
}

/** The default host name of an environment: `<app>-<env>.<base domain>`. */
export function defaultHostname(app: string, env: string, baseDomain: string): string {
  return `${app}-${env}.${baseDomain}`;
}

/** The HAProxy backend name of an environment. */
export function environmentSlug(app: string, env: string): string {
  return `${app}--${env}`;
}

/**
 * The Docker network of an environment on one host. The host id is part of it
 * because hosts may share a Docker engine (tests, small set-ups): a move from
 * one host to another must not tear down the network the other one now uses.
 */
export function environmentNetwork(app: string, env: string, hostId: string): string {
  return `${app}--${env}--${hostId.replace(/-/g, "").slice(0, 8)}`;
}

/** NATS naming for jobs. */
export const JOBS_STREAM = "SLIPWAY_JOBS";
export const JOBS_SUBJECT_PREFIX = "slipway.jobs";
export function jobsSubject(hostId: string): string {
  return `${JOBS_SUBJECT_PREFIX}.${hostId}`;
}
export function jobsConsumer(hostId: string): string {
  return `agent-${hostId}`;
}

/** Container labels the agent puts on everything it starts. */
export const LABELS = {
  managed: "io.slipway.managed",
  host: "io.slipway.host",
  app: "io.slipway.app",
  environment: "io.slipway.environment",
  deployment: "io.slipway.deployment",
  role: "io.slipway.role",
} as const;
