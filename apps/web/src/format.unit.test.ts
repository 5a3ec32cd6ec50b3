import { describe, expect, it } from "vitest";
import { durationBetween, formatDuration, isCancellable, localizeStatusLine, stateLabel } from "./format";
import { formErrors } from "./errors";
import { ApiError } from "./api";
import { isAdmin, mayChange } from "./roles";

describe("formatting", () => {
  it.each([
    [0, "0.0 s"],
    [4_240, "4.2 s"],
    [42_000, "42 s"],
    [185_000, "3 min 05 s"],
    [3_720_000, "1 h 02 min"],
    [-1, ""],
  ])("%d ms → %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("measures a running step until now", () => {
    const start = "2026-01-01T00:00:00.000Z";
    expect(durationBetween(start, "2026-01-01T00:00:02.500Z", 0)).toBe("2.5 s");
    expect(durationBetween(start, null, Date.parse(start) + 1_000)).toBe("1.0 s");
    expect(durationBetween(null, null, 0)).toBe("");
  });

  it("shows a status line's time as local time and leaves other lines alone", () => {
    expect(localizeStatusLine("Last deployment succeeded at 2026-01-01T00:00:00.000Z")).toMatch(/^Last deployment succeeded at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(localizeStatusLine("3 undeployed commits")).toBe("3 undeployed commits");
  });

  it("names states in words, and cancels only before the switch", () => {
    expect(stateLabel("not_deployed")).toBe("not deployed");
    expect(isCancellable("building")).toBe(true);
    expect(isCancellable("switching")).toBe(false);
    expect(isCancellable("succeeded")).toBe(false);
  });
});

describe("API errors in forms", () => {
  it("puts the API's message next to the field its details name, else on the form", () => {
    const named = new ApiError(400, "invalid_request", "invalid body: name must match pattern", { name: "must match pattern" });
    expect(formErrors(named, ["name", "repository"])).toEqual({ fields: { name: "invalid body: name must match pattern" } });
    const unnamed = new ApiError(409, "conflict", "app 'shop' already exists");
    expect(formErrors(unnamed, ["name"])).toEqual({ fields: {}, form: "app 'shop' already exists" });
    expect(formErrors(new Error("offline"), ["name"])).toEqual({ fields: {}, form: "offline" });
  });
});

describe("roles", () => {
  it("shows change buttons to admins and the app's deployers, never to viewers", () => {
    expect(mayChange({ name: "a", role: "admin", apps: [] }, "shop")).toBe(true);
    expect(mayChange({ name: "d", role: "deployer", apps: ["shop"] }, "shop")).toBe(true);
    expect(mayChange({ name: "d", role: "deployer", apps: ["other"] }, "shop")).toBe(false);
    expect(mayChange({ name: "v", role: "viewer", apps: ["shop"] }, "shop")).toBe(false);
    expect(mayChange(undefined, "shop")).toBe(false);
    expect(isAdmin({ name: "v", role: "viewer", apps: ["shop"] })).toBe(false);
  });
});
