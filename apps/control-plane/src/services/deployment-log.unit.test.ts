import { describe, expect, it } from "vitest";
import { logComplete } from "./deployment.service.js";
import type { DeploymentRow } from "../repositories/deployments.repository.js";

const at = new Date("2026-11-26T10:00:00Z");
const row = (state: string, steps: Array<{ name: string; state: string }>, finishedAt: Date | null = at) =>
  ({ state, steps: steps.map((s) => ({ ...s, startedAt: null, finishedAt: null })), finished_at: finishedAt }) as unknown as DeploymentRow;

describe("logComplete: a followed log ends once every line is in", () => {
  it.each<[string, DeploymentRow, number, boolean]>([
    ["a running deployment", row("probing", [{ name: "probe", state: "running" }], null), 0, false],
    ["a failed one, at once", row("failed", [{ name: "probe", state: "failed" }]), 0, true],
    ["a cancelled one, at once", row("cancelled", []), 0, true],
    ["a success before its cleanup was reported", row("succeeded", [{ name: "switch", state: "succeeded" }]), 100, false],
    ["a success while its cleanup runs", row("succeeded", [{ name: "cleanup", state: "running" }]), 100, false],
    ["a success whose cleanup ended", row("succeeded", [{ name: "cleanup", state: "succeeded" }]), 100, true],
    ["a success whose cleanup failed", row("succeeded", [{ name: "cleanup", state: "failed" }]), 100, true],
    ["a success whose cleanup never came (its agent stopped)", row("succeeded", [{ name: "switch", state: "succeeded" }]), 16_000, true],
  ])("%s", (_name, d, afterMs, want) => {
    expect(logComplete(d, at.getTime() + afterMs)).toBe(want);
  });
});
