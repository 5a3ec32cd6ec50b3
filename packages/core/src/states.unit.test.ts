import { describe, expect, it } from "vitest";
import { IllegalStateError } from "./errors.js";
import { deploymentTransitions, environmentTransitions, jobTransitions, transition, type DeploymentState } from "./states.js";

describe("deployment state machine", () => {
  const legal: Array<[DeploymentState, DeploymentState]> = [
    ["queued", "preparing"],
    ["preparing", "building"],
    ["building", "releasing"],
    ["releasing", "starting"],
    ["starting", "probing"],
    ["probing", "switching"],
    ["switching", "succeeded"],
    ["preparing", "starting"], // reuse: build and release skipped
    ["queued", "cancelled"],
    ["probing", "failed"],
    ["switching", "failed"],
    ["releasing", "preparing"], // a redelivered job starts over
    ["switching", "preparing"],
  ];
  const illegal: Array<[DeploymentState, DeploymentState]> = [
    ["succeeded", "failed"],
    ["failed", "queued"],
    ["switching", "cancelled"], // traffic is moving: too late to cancel
    ["probing", "building"], // never backwards, except to start over
    ["succeeded", "preparing"],
    ["cancelled", "succeeded"],
  ];
  it.each(legal)("%s → %s is allowed", (from, to) => {
    expect(transition("deployment", deploymentTransitions, from, to)).toBe(to);
  });
  it.each(illegal)("%s → %s throws IllegalStateError", (from, to) => {
    expect(() => transition("deployment", deploymentTransitions, from, to)).toThrow(IllegalStateError);
  });
  it("treats a move to the same state as a no-op", () => {
    expect(transition("deployment", deploymentTransitions, "building", "building")).toBe("building");
  });
});

describe("environment and job machines", () => {
  it("a failed deployment of a serving environment returns it to running", () => {
    expect(transition("environment", environmentTransitions, "deploying", "running")).toBe("running");
    expect(() => transition("environment", environmentTransitions, "not_deployed", "running")).toThrow(IllegalStateError);
  });
  it("jobs end once", () => {
    expect(transition("job", jobTransitions, "queued", "running")).toBe("running");
    expect(() => transition("job", jobTransitions, "succeeded", "running")).toThrow(IllegalStateError);
  });
});
