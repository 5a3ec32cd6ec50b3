import { describe, expect, it } from "vitest";
import { afterFailure, afterSuccess, failureBackoffMs, invalidHostname, isDue, normalizeHostnames, renewalDueAt } from "./renewal-policy.js";

const day = 86_400_000;

describe("renewal policy", () => {
  it("is due when a third of the lifetime is left", () => {
    const nb = new Date("2026-01-01T00:00:00Z");
    expect(renewalDueAt(nb, new Date(nb.getTime() + 90 * day)).toISOString()).toBe("2026-03-02T00:00:00.000Z");
    expect(renewalDueAt(nb, new Date(nb.getTime() + 6 * day)).getTime()).toBe(nb.getTime() + 4 * day);
    expect(renewalDueAt(nb, new Date(nb.getTime() + 90_000)).getTime()).toBe(nb.getTime() + 60_000);
  });

  it("backs off from a floor, doubling up to a ceiling", () => {
    const b = { minMs: 300_000, maxMs: 3_600_000 };
    expect([1, 2, 3, 4, 5, 6, 50].map((n) => failureBackoffMs(n, b))).toEqual([300_000, 600_000, 1_200_000, 2_400_000, 3_600_000, 3_600_000, 3_600_000]);
    expect(failureBackoffMs(0, b)).toBe(300_000);
  });

  it("a success resets the failures and schedules the renewal; a failure schedules the backoff", () => {
    const nb = new Date("2026-01-01T00:00:00Z");
    const na = new Date(nb.getTime() + 90 * day);
    expect(afterSuccess(nb, na)).toEqual({ status: "valid", attempts: 0, nextAttemptAt: renewalDueAt(nb, na), lastError: null });
    const now = new Date("2026-01-10T00:00:00Z");
    const b = { minMs: 1000, maxMs: 8000 };
    expect(afterFailure({ attempts: 0, notAfter: null }, now, "boom", b)).toEqual({ status: "failed", attempts: 1, nextAttemptAt: new Date(now.getTime() + 1000), lastError: "boom" });
    expect(afterFailure({ attempts: 2, notAfter: null }, now, "boom", b).nextAttemptAt.getTime()).toBe(now.getTime() + 4000);
    // A renewal that fails while the certificate is still valid keeps serving it.
    expect(afterFailure({ attempts: 0, notAfter: na }, now, "boom", b).status).toBe("valid");
    expect(afterFailure({ attempts: 0, notAfter: nb }, now, "boom", b).status).toBe("failed");
  });

  it("is due at or after the next attempt", () => {
    const t = new Date("2026-01-01T00:00:00Z");
    expect(isDue({ status: "valid", nextAttemptAt: t, notAfter: null }, t)).toBe(true);
    expect(isDue({ status: "failed", nextAttemptAt: new Date(t.getTime() + 1), notAfter: null }, t)).toBe(false);
  });

  it("normalizes and checks host names", () => {
    expect(normalizeHostnames(["WWW.Example.com.", "example.com", "www.example.com"])).toEqual(["example.com", "www.example.com"]);
    expect(invalidHostname(["example.com", "*.example.com"])).toBeUndefined();
    expect(invalidHostname(["example.com", "exa mple.com"])).toBe("exa mple.com");
    expect(invalidHostname(["localhost"])).toBe("localhost");
  });
});
