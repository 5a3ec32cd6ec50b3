import { describe, expect, it } from "vitest";
import { LogBook } from "./log";
import { timelineOf } from "./timeline";

function book(lines: string[]): LogBook {
  const b = new LogBook();
  lines.forEach((text, i) => b.add({ seq: i + 1, text }));
  return b;
}

describe("timelineOf", () => {
  it("reads each release command with its duration, and each container's probe attempts", () => {
    const b = book([
      "===== docker build =====",
      "----- not a command: in the build -----",
      "===== docker release commands =====",
      "----- migrate -----",
      "$ ./manage.py migrate",
      "Applying 0001... OK",
      "(migrate: exit 0 in 2.4 s)",
      "----- warm cache -----",
      "$ ./warm",
      "(warm cache: exit 0 in 0.3 s)",
      "===== startup probe =====",
      "slipway-shop-test-web-1: GET / answered 200 after 3 probe(s) in 1.52 s",
      "slipway-shop-test-web-2: GET /health answered 204 after 1 probe(s) in 0.10 s",
    ]);
    expect(timelineOf(b.sections)).toEqual({
      releaseCommands: [
        { label: "migrate", state: "succeeded", seconds: 2.4 },
        { label: "warm cache", state: "succeeded", seconds: 0.3 },
      ],
      probes: [
        { container: "slipway-shop-test-web-1", status: 200, attempts: 3, seconds: 1.52 },
        { container: "slipway-shop-test-web-2", status: 204, attempts: 1, seconds: 0.1 },
      ],
    });
  });

  it("keeps a command that has not finished running, or failed when its step failed", () => {
    const lines = ["===== docker release commands =====", "----- migrate -----", "(migrate: exit 0 in 1.0 s)", "----- seed -----", "$ ./seed", "boom"];
    expect(timelineOf(book(lines).sections).releaseCommands).toEqual([
      { label: "migrate", state: "succeeded", seconds: 1 },
      { label: "seed", state: "running" },
    ]);
    expect(timelineOf(book(lines).sections, true).releaseCommands[1]).toEqual({ label: "seed", state: "failed" });
  });

  it("does not take a command's output that looks like the agent's line for another command", () => {
    const b = book(["===== docker release commands =====", "----- a -----", "(b: exit 0 in 9.0 s)"]);
    expect(timelineOf(b.sections).releaseCommands).toEqual([{ label: "a", state: "running" }]);
  });
});
