import { describe, expect, it } from "vitest";
import { environmentStatusMessage } from "./status.js";

const at = new Date("2026-11-22T10:00:00.000Z");

describe("environment status line", () => {
  it.each([
    [{ everSucceeded: false, unappliedChanges: false }, "Server not deployed yet"],
    [{ everSucceeded: true, unappliedChanges: false, lastDeployment: { state: "succeeded" as const, finishedAt: at } }, "Last deployment succeeded at 2026-11-22T10:00:00.000Z"],
    [{ everSucceeded: true, unappliedChanges: false, lastDeployment: { state: "failed" as const, finishedAt: at } }, "Last deployment failed at 2026-11-22T10:00:00.000Z"],
    [{ everSucceeded: false, unappliedChanges: false, lastDeployment: { state: "failed" as const, finishedAt: at } }, "Last deployment failed at 2026-11-22T10:00:00.000Z"],
    [{ everSucceeded: true, unappliedChanges: false, undeployedCommits: 3, lastDeployment: { state: "succeeded" as const, finishedAt: at } }, "3 undeployed commits"],
    [{ everSucceeded: true, unappliedChanges: false, undeployedCommits: 1, lastDeployment: { state: "succeeded" as const, finishedAt: at } }, "1 undeployed commit"],
    [{ everSucceeded: true, unappliedChanges: true, undeployedCommits: 2, lastDeployment: { state: "succeeded" as const, finishedAt: at } }, "2 undeployed commits and unapplied changes"],
    [{ everSucceeded: true, unappliedChanges: false, undeployedCommits: 0 }, "All commits deployed"],
  ])("%j → %s", (facts, message) => {
    expect(environmentStatusMessage(facts)).toBe(message);
  });
});
