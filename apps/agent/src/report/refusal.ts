import { status } from "@grpc/grpc-js";

/**
 * The control plane refused a call for good: the job does not exist (any
 * more) or is not this host's. Retrying cannot help; anything else (the
 * control plane restarting, a network failure) may pass.
 */
export function refusedForGood(err: unknown): boolean {
  const code = (err as { code?: number } | undefined)?.code;
  return code === status.NOT_FOUND || code === status.PERMISSION_DENIED;
}

/** The control plane refused a request itself (revoked credential, bad or taken key): asking again cannot help. */
export function refusedByControlPlane(err: unknown): boolean {
  const code = (err as { code?: number } | undefined)?.code;
  return refusedForGood(err) || code === status.UNAUTHENTICATED || code === status.INVALID_ARGUMENT || code === status.FAILED_PRECONDITION;
}
