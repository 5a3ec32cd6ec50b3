import { describe, expect, it } from "vitest";
import type { DomainCertificate } from "./api/settings";
import { certificateText, servedByText } from "./certificates";
import { formatTime } from "./format";

const NOW = Date.parse("2026-12-06T12:00:00Z");
const none: DomainCertificate = { state: "none", serial: null, notAfter: null, lastError: null, nextAttemptAt: null };

describe("certificateText", () => {
  it("says each state in words: none, pending, valid until (uploaded or not)", () => {
    expect(certificateText(none, NOW)).toBe("none: served over plain HTTP only");
    expect(certificateText({ ...none, state: "pending", nextAttemptAt: "2026-12-06T12:00:00Z" }, NOW)).toBe("pending: being ordered from the certificate authority");
    const notAfter = "2027-03-01T10:00:00Z";
    expect(certificateText({ ...none, state: "valid", serial: "ab", notAfter, nextAttemptAt: "2027-01-30T10:00:00Z", source: "acme" }, NOW)).toBe(`valid until ${formatTime(notAfter)}`);
    expect(certificateText({ ...none, state: "valid", serial: "ab", notAfter, source: "uploaded" }, NOW)).toBe(`valid until ${formatTime(notAfter)} (uploaded)`);
  });
  it("gives a failure's reason and when the next attempt is; a valid certificate whose renewal failed says both", () => {
    const at = "2026-12-06T12:04:10Z";
    expect(certificateText({ ...none, state: "failed", lastError: "the CA said no", nextAttemptAt: at }, NOW)).toBe(`failed: the CA said no, next attempt in 4 min 10 s (${formatTime(at)})`);
    expect(certificateText({ ...none, state: "failed", lastError: "the CA said no", nextAttemptAt: "2026-12-06T11:59:00Z" }, NOW)).toBe("failed: the CA said no, next attempt due now");
    expect(certificateText({ ...none, state: "failed", lastError: "the uploaded certificate expired", source: "uploaded" }, NOW)).toBe("failed: the uploaded certificate expired");
    const notAfter = "2026-12-20T00:00:00Z";
    expect(certificateText({ ...none, state: "valid", notAfter, lastError: "the CA said no", nextAttemptAt: "2026-12-06T12:00:05Z" }, NOW)).toBe(`valid until ${formatTime(notAfter)}; renewal failed: the CA said no, next attempt in 5 s (${formatTime("2026-12-06T12:00:05Z")})`);
  });
});

describe("servedByText", () => {
  it("names each host serving the domain and whether it serves the current certificate; nothing when no host reported", () => {
    expect(servedByText(undefined)).toBe("");
    expect(servedByText([])).toBe("");
    expect(servedByText([{ hostId: "h1", host: "a", serial: "1E", notAfter: "2027-01-01T00:00:00Z", current: true }, { hostId: "h2", host: "b", serial: "1F", notAfter: "2026-12-10T00:00:00Z", current: false }])).toBe("served by a (this certificate), b (old serial 1F)");
  });
});
