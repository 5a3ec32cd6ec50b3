import { ConflictError } from "@slipway/core";

/**
 * A write refused by a unique constraint, named: services turn it into the
 * conflict a user reads (which constraint, not which driver text). Both
 * drivers (pg and PGlite) report SQLSTATE 23505 with the constraint's name.
 */
export class UniqueViolationError extends ConflictError {
  constructor(
    readonly constraint: string,
    options?: { cause?: unknown },
  ) {
    super(`unique constraint ${constraint} refused the write`, options);
  }
}

/** Rethrows a unique violation as UniqueViolationError, anything else as it is. */
export function rethrowUnique(err: unknown): never {
  const e = err as { code?: string; constraint?: string } | undefined;
  if (e?.code === "23505") {
    const constraint = e.constraint ?? "unknown";
    throw new UniqueViolationError(constraint, { cause: err });
  }
  throw err;
}

/** Runs one insert; a unique violation becomes UniqueViolationError. */
export async function insertOrConflict<T>(insert: Promise<T>): Promise<T> {
  try {
    return await insert;
  } catch (err) {
    rethrowUnique(err);
  }
}
