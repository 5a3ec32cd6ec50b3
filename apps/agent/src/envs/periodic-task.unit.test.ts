import { describe, expect, it } from "vitest";
import { setTimeout as sleep } from "node:timers/promises";
import { PeriodicTask } from "./periodic-task.js";

describe("PeriodicTask", () => {
  it("runs one pass at a time, keeps going after a failing pass, and stop waits for the pass in progress", async () => {
    let running = 0;
    let overlapped = false;
    let passes = 0;
    let finished = 0;
    const task = new PeriodicTask(async () => {
      passes++;
      running++;
      if (running > 1) overlapped = true;
      await sleep(15);
      running--;
      finished++;
      if (passes === 2) throw new Error("a failing pass");
    }, () => 5);
    expect(task.stopped).toBe(true);
    task.start();
    expect(task.stopped).toBe(false);
    await sleep(120);
    await task.stop();
    expect(task.stopped).toBe(true);
    expect(passes).toBeGreaterThanOrEqual(3);
    expect(overlapped).toBe(false);
    // Nothing is left running after stop, and no pass starts afterwards.
    expect(finished).toBe(passes);
    const after = passes;
    await sleep(40);
    expect(passes).toBe(after);
  });
});
