/**
 * The error catalogue shared by both apps. Services throw these; the REST edge
 * maps them to `{error: {code, message, details}}` with `httpStatus`, the gRPC
 * edge to a gRPC status. Nothing below the edges throws HTTP errors.
 */
export type ErrorCode =
  | "invalid_request"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "precondition_failed"
  | "payload_too_large"
  | "too_many_requests"
  | "illegal_state"
  | "unavailable"
  | "internal";

export class SlipwayError extends Error {
  readonly code: ErrorCode = "internal";
  readonly httpStatus: number = 500;
  readonly details?: unknown;
  constructor(message: string, options?: { cause?: unknown; details?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    if (options?.details !== undefined) this.details = options.details;
  }
}

export class InvalidRequestError extends SlipwayError {
  override readonly code = "invalid_request";
  override readonly httpStatus = 400;
}
export class UnauthenticatedError extends SlipwayError {
  override readonly code = "unauthenticated";
  override readonly httpStatus = 401;
}
export class ForbiddenError extends SlipwayError {
  override readonly code = "forbidden";
  override readonly httpStatus = 403;
}
export class NotFoundError extends SlipwayError {
  override readonly code = "not_found";
  override readonly httpStatus = 404;
}
export class ConflictError extends SlipwayError {
  override readonly code = "conflict";
  override readonly httpStatus = 409;
}
export class PreconditionFailedError extends SlipwayError {
  override readonly code = "precondition_failed";
  override readonly httpStatus = 422;
}
/** A request body beyond what the route takes (an uploaded backup over the configured limit). */
export class PayloadTooLargeError extends SlipwayError {
  override readonly code = "payload_too_large";
  override readonly httpStatus = 413;
}
/** More of something at once than a caller may have (live streams per token). */
export class TooManyRequestsError extends SlipwayError {
  override readonly code = "too_many_requests";
  override readonly httpStatus = 429;
}
/** An illegal state transition: a bug or a race, never the user's fault. */
export class IllegalStateError extends SlipwayError {
  override readonly code = "illegal_state";
  override readonly httpStatus = 409;
}
export class UnavailableError extends SlipwayError {
  override readonly code = "unavailable";
  override readonly httpStatus = 503;
}

export const errorCatalogue = [
  InvalidRequestError,
  UnauthenticatedError,
  ForbiddenError,
  NotFoundError,
  ConflictError,
  PreconditionFailedError,
  PayloadTooLargeError,
  TooManyRequestsError,
  IllegalStateError,
  UnavailableError,
] as const;

/**
 * A failure travelling from agent to control plane as data. Retryability is
 * decided where the failure happens; nobody matches on message text.
 */
export interface FailureData {
  type: string;
  message: string;
  retryable: boolean;
  details?: unknown;
}

/** An error raised by a job step that knows what kind of failure it is. */
export class StepFailure extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly retryable = false,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "StepFailure";
  }
}

export function toFailure(err: unknown): FailureData {
  if (err instanceof StepFailure) {
    return { type: err.type, message: err.message, retryable: err.retryable, details: err.details };
  }
  if (err instanceof Error) return { type: "internal", message: err.message, retryable: true };
  return { type: "internal", message: String(err), retryable: true };
}

export function fromFailure(f: FailureData): StepFailure {
  return new StepFailure(f.type, f.message, f.retryable, f.details);
}
