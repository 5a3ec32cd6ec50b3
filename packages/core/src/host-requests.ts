import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/**
 * Requests the control plane addresses to one host over NATS core (a runtime
 * log stream, a shell session) are signed: HMAC-SHA256 over the kind and the
 * request, keyed with the SHA-256 of the host's credential (the control plane
 * stores exactly that hash; the agent computes it from its credential). The
 * agent refuses unsigned, stale and replayed requests, so even on a NATS that
 * lets anyone publish (an external server without per-host users) nobody but
 * the control plane can make an agent stream a log or run a command.
 */
export type HostRequestKind = "logs" | "shell";

export interface SignedHostRequest<T> {
  request: T;
  signature: string;
}

/** Requests older than this (or more than 5 s in the future) are refused. */
export const HOST_REQUEST_MAX_AGE_MS = 30_000;

export function credentialHashOf(credential: string): string {
  return createHash("sha256").update(credential).digest("hex");
}

function mac(kind: HostRequestKind, credentialHash: string, request: unknown): string {
  return createHmac("sha256", credentialHash).update(`${kind}\n`).update(JSON.stringify(request)).digest("hex");
}

export function signHostRequest<T extends { issuedAt: number }>(kind: HostRequestKind, credentialHash: string, request: T): SignedHostRequest<T> {
  return { request, signature: mac(kind, credentialHash, request) };
}

/** True when `signed` is a request of `kind` signed with the host's key and issued within the last 30 s. */
export function verifyHostRequest(kind: HostRequestKind, credentialHash: string, signed: unknown, now = Date.now()): signed is SignedHostRequest<{ issuedAt: number }> {
  if (typeof signed !== "object" || signed === null) return false;
  const { request, signature } = signed as Partial<SignedHostRequest<{ issuedAt?: unknown }>>;
  if (typeof signature !== "string" || typeof request !== "object" || request === null) return false;
  const want = Buffer.from(mac(kind, credentialHash, request));
  const got = Buffer.from(signature);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return false;
  if (typeof request.issuedAt !== "number") return false;
  const age = now - request.issuedAt;
  return age >= -5_000 && age <= HOST_REQUEST_MAX_AGE_MS;
}

/** Remembers the signatures of accepted requests while they are fresh: each signed request is served once. */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  /** True when this signature was accepted before (then the request must be refused). */
  replayed(signature: string, now = Date.now()): boolean {
    for (const [s, until] of this.seen) if (until < now) this.seen.delete(s);
    if (this.seen.has(signature)) return true;
    this.seen.set(signature, now + HOST_REQUEST_MAX_AGE_MS + 10_000);
    return false;
  }
}

/** A runtime log request (on `logsSubject(hostId)`), signed as kind "logs". */
export interface LogRequest {
  app: string;
  environment: string;
  follow: boolean;
  /** Unix seconds; 0 = from the start (bounded by tail). */
  since: number;
  tail: number;
  /** Where the agent sends the lines: under the host's inbox prefix (core `logsInbox`). */
  inbox: string;
  /** Unix ms. */
  issuedAt: number;
}
