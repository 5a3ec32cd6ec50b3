import { StepFailure } from "@slipway/core";

/** The shape of errors dockerode and docker-modem throw. */
export interface DockerApiError extends Error {
  statusCode?: number;
  code?: string;
  json?: { message?: string } | null;
}

/** Socket-level failures: the daemon is down or restarting, worth a retry. */
const UNREACHABLE_CODES = new Set(["ECONNREFUSED", "ENOENT", "EACCES", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH"]);

export function statusOf(err: unknown): number | undefined {
  return (err as DockerApiError | undefined)?.statusCode;
}

export function isGone(err: unknown, ...extra: number[]): boolean {
  const s = statusOf(err);
  return s === 404 || (s !== undefined && extra.includes(s));
}

export function messageOf(err: unknown): string {
  const e = err as DockerApiError;
  return e?.json?.message ?? (e instanceof Error ? e.message : String(err));
}

/** Maps anything dockerode throws to a StepFailure the control plane can act on. */
export function toStepFailure(err: unknown, what: string): StepFailure {
  if (err instanceof StepFailure) return err;
  const e = err as DockerApiError;
  if (e?.code && UNREACHABLE_CODES.has(e.code)) {
    return new StepFailure("docker_unavailable", `${what}: docker daemon unreachable (${e.code})`, true, undefined, { cause: err });
  }
  const status = statusOf(err);
  // 4xx is the request's fault and repeats identically; 5xx and unknowns may be transient.
  const retryable = status === undefined || status >= 500;
  return new StepFailure("docker_error", `${what}: ${messageOf(err)}`, retryable, { statusCode: status }, { cause: err });
}

/** The build context's producer failed; its own StepFailure (e.g. from git) says why. */
export function contextFailure(err: unknown): StepFailure {
  if (err instanceof StepFailure) return err;
  return new StepFailure("build_context_failed", `build context: ${messageOf(err)}`, true, undefined, { cause: err });
}
