/**
 * When certificates are ordered again: pure functions, no I/O (issue 15).
 *
 * One date drives the scheduler, `next_attempt_at`: after a success it is the renewal point
 * (a third of the lifetime left, so 30 days before the end of a 90-day certificate and 2 days
 * before the end of a 6-day one); after a failure it is the backoff, which grows from a floor
 * and never exceeds a ceiling, so a CA is never asked more than once per interval.
 */

export type CertificateStatus = "pending" | "valid" | "failed";

export interface BackoffSettings {
  /** The first retry waits this long (the floor: never more than one attempt per this interval). */
  minMs: number;
  /** The wait stops doubling here. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = Object.freeze({ minMs: 5 * 60_000, maxMs: 60 * 60_000 });

/** The moment a certificate valid from `notBefore` to `notAfter` is due for renewal: a third of its lifetime left. */
export function renewalDueAt(notBefore: Date, notAfter: Date): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  return new Date(notAfter.getTime() - Math.max(0, lifetime) / 3);
}

/** The wait after the `failures`-th failure in a row (1 = the first): floor × 2^(failures−1), at most the ceiling. */
export function failureBackoffMs(failures: number, backoff: BackoffSettings = DEFAULT_BACKOFF): number {
  const n = Math.max(1, Math.floor(failures));
  // 2^30 × a 5-minute floor overflows nothing, but caps the exponent before Math.pow grows silly.
  const wait = backoff.minMs * 2 ** Math.min(n - 1, 30);
  return Math.max(backoff.minMs, Math.min(backoff.maxMs, wait));
}

/** What a row says about when to order: the subset of the certificates table the policy reads. */
export interface RenewalState {
  status: CertificateStatus;
  nextAttemptAt: Date;
  notAfter: Date | null;
}

/** Due when the next attempt's time has come (renewal point or end of backoff). */
export function isDue(state: RenewalState, now: Date): boolean {
  return state.nextAttemptAt.getTime() <= now.getTime();
}

/** The row's fields after a certificate was issued at `now`. */
export function afterSuccess(notBefore: Date, notAfter: Date): { status: CertificateStatus; attempts: number; nextAttemptAt: Date; lastError: null } {
  return { status: "valid", attempts: 0, nextAttemptAt: renewalDueAt(notBefore, notAfter), lastError: null };
}

/**
 * The row's fields after a failed attempt at `now`. A certificate still valid keeps status
 * "valid" (it is still what the ingress serves; the error is shown beside it); without one the
 * status is "failed".
 */
export function afterFailure(previous: { attempts: number; notAfter: Date | null }, now: Date, error: string, backoff: BackoffSettings = DEFAULT_BACKOFF): { status: CertificateStatus; attempts: number; nextAttemptAt: Date; lastError: string } {
  const attempts = previous.attempts + 1;
  const stillValid = previous.notAfter !== null && previous.notAfter.getTime() > now.getTime();
  return { status: stillValid ? "valid" : "failed", attempts, nextAttemptAt: new Date(now.getTime() + failureBackoffMs(attempts, backoff)), lastError: error };
}

/**
 * The canonical form of a set of host names: lower-cased, without a trailing dot, unique and
 * sorted. Its join with "," is the key of the certificate row and of the order lock.
 */
export function normalizeHostnames(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => n.trim().toLowerCase().replace(/\.$/, "")))].sort();
}

const HOSTNAME = /^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The first name of the set that is not a DNS name a CA would issue for, or undefined. */
export function invalidHostname(names: readonly string[]): string | undefined {
  return names.find((n) => !HOSTNAME.test(n));
}
