import { ConflictError } from "@slipway/core";

/**
 * A write refused by a unique constraint, named: services turn it into the
 * conflict a user reads (which constraint, not which driver text). Both
 * drivers report SQLSTATE 23505; pg names the constraint in a field, PGlite
 * only in its (untranslated, server-side) message.
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
  const e = err as { code?: string; constraint?: string; message?: string } | undefined;
  if (e?.code === "23505") {
    const constraint = e.constraint ?? /unique constraint "([^"]+)"/.exec(e.message ?? "")?.[1] ?? "unknown";
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
