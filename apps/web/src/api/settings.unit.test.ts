import { describe, expect, it } from "vitest";
import { ApiError } from "../api";
import { settingsErrors } from "./settings";

describe("settingsErrors", () => {
  const fields = ["replicas", "limits.memoryMb", "limits", "hostLabels"];
  it("puts the API's message next to the field its details name, also by a part of it", () => {
    expect(settingsErrors(new ApiError(400, "invalid_request", "invalid body: replicas must be >= 1", { replicas: "must be >= 1" }), fields)).toEqual({ fields: { replicas: "invalid body: replicas must be >= 1" } });
    expect(settingsErrors(new ApiError(400, "invalid_request", "m", { "limits.memoryMb": "x" }), fields)).toEqual({ fields: { "limits.memoryMb": "m" } });
    expect(settingsErrors(new ApiError(400, "invalid_request", "m", { "hostLabels.zone": "x" }), fields)).toEqual({ fields: { hostLabels: "m" } });
  });
  it("gives the form the message when no field is named, or for any other failure", () => {
    expect(settingsErrors(new ApiError(409, "conflict", "busy"), fields)).toEqual({ fields: {}, form: "busy" });
    expect(settingsErrors(new ApiError(400, "invalid_request", "m", { other: "x" }), fields)).toEqual({ fields: {}, form: "m" });
    expect(settingsErrors(new Error("offline"), fields)).toEqual({ fields: {}, form: "offline" });
  });
});
