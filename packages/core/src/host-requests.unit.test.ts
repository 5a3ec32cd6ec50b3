import { describe, expect, it } from "vitest";
import { HOST_REQUEST_MAX_AGE_MS, ReplayGuard, credentialHashOf, signHostRequest, verifyHostRequest } from "./host-requests.js";
import { hostInboxPrefix, isHostInbox, logsInbox, natsHostPermissions, shellInbox } from "./protocol.js";

const key = credentialHashOf("slwagent_secret");
const now = 1_800_000_000_000;
const request = { app: "a", environment: "test", follow: true, since: 0, tail: 10, inbox: "_INBOX_h.logs.1", issuedAt: now };

describe("requests the control plane signs for one host", () => {
  it("verifies a request signed with the host's key, of the same kind, within its age", () => {
    const signed = signHostRequest("logs", key, request);
    expect(verifyHostRequest("logs", key, signed, now)).toBe(true);
    expect(verifyHostRequest("logs", key, signed, now + HOST_REQUEST_MAX_AGE_MS)).toBe(true);
  });

  it("refuses another kind, another key, a changed field, a stale or future request, and malformed input", () => {
    const signed = signHostRequest("logs", key, request);
    expect(verifyHostRequest("shell", key, signed, now)).toBe(false);
    expect(verifyHostRequest("logs", credentialHashOf("slwagent_other"), signed, now)).toBe(false);
    expect(verifyHostRequest("logs", key, { ...signed, request: { ...request, inbox: "_INBOX_h.logs.2" } }, now)).toBe(false);
    expect(verifyHostRequest("logs", key, { ...signed, request: { ...request, app: "b" } }, now)).toBe(false);
    expect(verifyHostRequest("logs", key, signed, now + HOST_REQUEST_MAX_AGE_MS + 1)).toBe(false);
    expect(verifyHostRequest("logs", key, signed, now - 5_001)).toBe(false);
    for (const bad of [null, undefined, "x", 1, {}, { request }, { signature: signed.signature }, { request: null, signature: signed.signature }, { request, signature: 5 }, { request, signature: "" }]) {
      expect(verifyHostRequest("logs", key, bad, now)).toBe(false);
    }
    const noTime = signHostRequest("logs", key, { ...request, issuedAt: "soon" as unknown as number });
    expect(verifyHostRequest("logs", key, noTime, now)).toBe(false);
  });

  it("serves each signed request once while it is fresh", () => {
    const guard = new ReplayGuard();
    expect(guard.replayed("sig-1", now)).toBe(false);
    expect(guard.replayed("sig-1", now + 1000)).toBe(true);
    expect(guard.replayed("sig-2", now + 1000)).toBe(false);
    // Long after it went stale it is forgotten (memory stays bounded); the age check refuses it anyway.
    expect(guard.replayed("sig-1", now + HOST_REQUEST_MAX_AGE_MS + 20_000)).toBe(false);
  });
});

describe("a host's NATS subjects", () => {
  const A = "6f1c0d9e-0000-4000-8000-00000000000a";
  const B = "6f1c0d9e-0000-4000-8000-00000000000b";

  it("puts every inbox of a host under its prefix, and nothing of another host", () => {
    expect(isHostInbox(A, logsInbox(A, "ab12"))).toBe(true);
    expect(isHostInbox(A, shellInbox(A, "ab12"))).toBe(true);
    expect(shellInbox(A, "x").startsWith(`${hostInboxPrefix(A)}.`)).toBe(true);
    for (const other of [logsInbox(B, "ab12"), hostInboxPrefix(A), `${hostInboxPrefix(A)}x.y`, `${hostInboxPrefix(A)}.>`, `${hostInboxPrefix(A)}.*`, `${hostInboxPrefix(A)}.a b`, "_INBOX.x", 7, undefined]) {
      expect(isHostInbox(A, other), String(other)).toBe(false);
    }
  });

  it("allows a host exactly its own jobs consumer, requests and inboxes", () => {
    const p = natsHostPermissions(A);
    for (const subject of [...p.publish, ...p.subscribe]) {
      expect(subject).toContain(A);
      expect(subject).not.toContain(B);
      // No wildcard beyond its own prefixes.
      if (subject.includes(">")) expect(subject.endsWith(`${A}.>`)).toBe(true);
    }
    expect(p.subscribe).toContain(`slipway.logs.${A}`);
    expect(p.subscribe).toContain(`slipway.shell.${A}`);
    expect(p.publish).toContain(`$JS.API.CONSUMER.MSG.NEXT.SLIPWAY_JOBS.agent-${A}`);
    expect(p.publish.some((s) => s.startsWith("$JS.API.STREAM"))).toBe(false);
  });
});
