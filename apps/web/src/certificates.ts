// How a certificate's state reads in the dashboard (the environment settings' domains, the
// Certificates page): always in words, times in the browser's zone. Pure, so it is unit tested.
import type { DomainCertificate, DomainServedBy } from "./api/settings";
import { formatDuration, formatTime } from "./format";

/** "next attempt in 4 min 10 s (2026-12-06 12:04:10)", or "next attempt due now". */
export function nextAttemptText(iso: string | null, now: number): string {
  if (!iso) return "";
  const ms = Date.parse(iso) - now;
  if (!Number.isFinite(ms)) return "";
  return ms > 0 ? `next attempt in ${formatDuration(ms).replace(/\.\d s$/, " s")} (${formatTime(iso)})` : "next attempt due now";
}

/**
 * A custom domain's certificate in words: none; pending; valid until …; failed: the reason and
 * when the next attempt is. A valid certificate whose renewal failed says both; an uploaded one says so.
 */
export function certificateText(c: DomainCertificate, now: number): string {
  const next = nextAttemptText(c.nextAttemptAt, now);
  switch (c.state) {
    case "none":
      return "none: served over plain HTTP only";
    case "pending":
      return "pending: being ordered from the certificate authority";
    case "valid": {
      const until = `valid until ${c.notAfter ? formatTime(c.notAfter) : "an unknown date"}${c.source === "uploaded" ? " (uploaded)" : ""}`;
      return c.lastError ? `${until}; renewal failed: ${c.lastError}${next ? `, ${next}` : ""}` : until;
    }
    case "failed":
      return `failed: ${c.lastError ?? "no reason given"}${next ? `, ${next}` : ""}`;
    default:
      return String((c as { state: unknown }).state);
  }
}

/** Which hosts serve the domain's certificate, as their agents reported: "served by a (this certificate), b (old serial 1F)"; "" when none reported. */
export function servedByText(servedBy: readonly DomainServedBy[] | undefined): string {
  if (!servedBy || servedBy.length === 0) return "";
  return `served by ${servedBy.map((s) => `${s.host} (${s.current ? "this certificate" : `old serial ${s.serial}`})`).join(", ")}`;
}
