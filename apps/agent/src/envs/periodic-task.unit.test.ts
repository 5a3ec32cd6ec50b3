import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PeriodicTask } from "./periodic-task.js";

// Fake time, so the counts below are exact: a pass takes 15 ms and the pause is 5 ms.
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

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
      await new Promise((r) => setTimeout(r, 15));
      running--;
      finished++;
      if (passes === 2) throw new Error("a failing pass");
    }, () => 5);
    expect(task.stopped).toBe(true);
    task.start();
    expect(task.stopped).toBe(false);
    // Passes start at 5, 25, 45, 65, 85 and 105 ms: the pause counts from the end of the previous pass.
    await vi.advanceTimersByTimeAsync(110);
    expect([passes, finished]).toEqual([6, 5]);
    expect(overlapped).toBe(false);

    let stopped = false;
    const stopping = task.stop().then(() => {
      stopped = true;
    });
    expect(task.stopped).toBe(true);
    await vi.advanceTimersByTimeAsync(5);
    expect(stopped).toBe(false); // the sixth pass ends at 120 ms
    await vi.advanceTimersByTimeAsync(5);
    await stopping;
    expect(finished).toBe(6);
    // No pass starts after stop.
    await vi.advanceTimersByTimeAsync(100);
    expect(passes).toBe(6);
  });
});
