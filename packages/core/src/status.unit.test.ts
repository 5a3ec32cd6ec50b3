import { describe, expect, it } from "vitest";
import { environmentStatus, environmentStatusMessage } from "./status.js";

const at = new Date("2026-11-22T10:00:00.000Z");
const ok = { state: "succeeded" as const, finishedAt: at };
const failed = { state: "failed" as const, finishedAt: at };
const cancelled = { state: "cancelled" as const, finishedAt: at };

describe("environment status line", () => {
  it.each([
    [{ everSucceeded: false, unappliedChanges: false }, "Server not deployed yet"],
    [{ everSucceeded: false, unappliedChanges: false, lastDeployment: cancelled }, "Server not deployed yet"],
    [{ everSucceeded: true, unappliedChanges: false, undeployedCommits: 0, lastDeployment: ok }, "Last deployment succeeded at 2026-11-22T10:00:00.000Z"],
    [{ everSucceeded: true, unappliedChanges: false, lastDeployment: failed, undeployedCommits: 4 }, "Last deployment failed at 2026-11-22T10:00:00.000Z"],
    [{ everSucceeded: false, unappliedChanges: false, lastDeployment: failed }, "Last deployment failed at 2026-11-22T10:00:00.000Z"],
    [{ everSucceeded: true, unappliedChanges: false, undeployedCommits: 3, lastDeployment: ok }, "3 undeployed commits"],
    [{ everSucceeded: true, unappliedChanges: false, undeployedCommits: 1, lastDeployment: ok }, "1 undeployed commit"],
    [{ everSucceeded: true, unappliedChanges: true, undeployedCommits: 2, lastDeployment: ok }, "2 undeployed commits and unapplied changes"],
    [{ everSucceeded: true, unappliedChanges: true, undeployedCommits: 0, lastDeployment: ok }, "All commits deployed, unapplied changes"],
    [{ everSucceeded: true, unappliedChanges: false, undeployedCommits: 0, lastDeployment: cancelled }, "All commits deployed"],
  ])("%j → %s", (facts, message) => {
    expect(environmentStatusMessage(facts)).toBe(message);
  });

  it("gives both lines for a full view", () => {
    expect(environmentStatus({ everSucceeded: true, unappliedChanges: false, undeployedCommits: 0, lastDeployment: ok }).lines).toEqual([
      "Last deployment succeeded at 2026-11-22T10:00:00.000Z",
      "All commits deployed",
    ]);
  });
});
